"""Wave lengths, levels and mixing, on numpy arrays or torch tensors alike: pad, trim or loop to a
length, RMS, gain in dB, scaling noise to an SNR and mixing, peak and RMS normalisation.

Decoding and resampling are in ``ier.audio``, which re-exports these.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import torch
from torch import nn

Wave = TypeVar("Wave", np.ndarray, torch.Tensor)


def pad_or_trim(wave: Wave, n_samples: int) -> Wave:
    """Zero-pad at the end or cut the last axis to exactly ``n_samples``."""
    length = wave.shape[-1]
    if length >= n_samples:
        return wave[..., :n_samples]
    if isinstance(wave, torch.Tensor):
        return nn.functional.pad(wave, (0, n_samples - length))
    pad = [(0, 0)] * (wave.ndim - 1) + [(0, n_samples - length)]
    return np.pad(wave, pad)


def _power(wave: np.ndarray | torch.Tensor) -> float:
    if isinstance(wave, torch.Tensor):
        return float(wave.detach().double().pow(2).mean()) if wave.numel() else 0.0
    wave = np.asarray(wave)
    return float(np.mean(np.square(wave, dtype=np.float64))) if wave.size else 0.0


def rms(wave: np.ndarray | torch.Tensor) -> float:
    """Root-mean-square amplitude of all samples (0 for an empty wave)."""
    return math.sqrt(_power(wave))


def apply_gain_db(wave: Wave, gain_db: float) -> Wave:
    """Scale by ``10 ** (gain_db / 20)`` (+6 dB is about x1.995). No clipping."""
    return wave * (10.0 ** (gain_db / 20.0))


def loop_to_length(wave: Wave, n_samples: int) -> Wave:
    """Repeat (tile) or cut the last axis to exactly ``n_samples``."""
    length = wave.shape[-1]
    if length == 0:
        raise ValueError("cannot loop an empty wave")
    reps = -(-n_samples // length)
    if reps > 1:
        tile = [1] * (wave.ndim - 1) + [reps]
        wave = wave.repeat(*tile) if isinstance(wave, torch.Tensor) else np.tile(wave, tile)
    return wave[..., :n_samples]


def scale_to_snr(signal: Wave, noise: Wave, snr_db: float) -> Wave:
    """Loop/trim ``noise`` to the signal length and scale it to the requested SNR.

    After scaling, ``10 * log10(P_signal / P_noise) == snr_db`` with P the mean square.
    Returns the scaled noise.

    A silent signal gives silent noise; silent noise is a ValueError.
    """
    noise = loop_to_length(noise, signal.shape[-1])
    p_noise = _power(noise)
    if p_noise == 0:
        raise ValueError("noise is silent; cannot reach a finite SNR")
    scale = math.sqrt(_power(signal) / (p_noise * 10.0 ** (snr_db / 10.0)))
    return noise * scale


def mix_at_snr(signal: Wave, noise: Wave, snr_db: float) -> Wave:
    """``signal + scale_to_snr(signal, noise, snr_db)``; the mixture has the signal's shape.

    The result is not peak-limited; follow with ``peak_normalize`` before writing to a file.
    """
    return signal + scale_to_snr(signal, noise, snr_db)


def peak_normalize(wave: Wave, peak: float = 0.99) -> Wave:
    """Scale down so that ``max|wave| <= peak``; waves already within ``peak`` come back unchanged.

    Never amplifies and never clips (the whole wave is scaled by one factor).
    """
    if isinstance(wave, torch.Tensor):
        top = float(wave.detach().abs().max()) if wave.numel() else 0.0
    else:
        top = float(np.max(np.abs(wave))) if np.size(wave) else 0.0
    if top <= peak:
        return wave
    return wave * (peak / top)


def normalize_rms(wave: Wave, target_dbfs: float) -> Wave:
    """Scale so that ``20 * log10(rms) == target_dbfs`` (0 dBFS = RMS 1.0); silence is unchanged."""
    current = rms(wave)
    if current == 0:
        return wave
    return wave * (10.0 ** (target_dbfs / 20.0) / current)
