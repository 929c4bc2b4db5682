"""DSOL log-mel pickles -> waveforms: an approximate inverse of ``ier.audio.LogMel`` (Griffin-Lim).

MUSIC-Synthetic (and DSOL's ``audio_frames/``) ship only 201x64 log-mel maps, never waveforms. Our
models take waveforms and compute the *same* log-mel themselves (``ier.audio.LogMel`` reproduces
DSOL's front end), so a waveform whose log-mel matches the released map is a faithful model input
even though its phase is invented. :func:`logmel_error_db` measures how well it matches.
"""

from __future__ import annotations

import numpy as np
import torch

from ier.audio import HOP_LENGTH, N_FFT, N_MELS, SAMPLE_RATE, TOP_DB, LogMel, mel_filterbank

GRIFFIN_LIM_ITERATIONS = 48
_NNLS_ITERATIONS = 60
_EPS = 1e-10


def check_logmel(features: np.ndarray) -> np.ndarray:
    """Return ``features`` as float32 (n_frames, 64) dB, or raise ValueError naming the shape."""
    array = np.asarray(features)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[1] != N_MELS or array.shape[0] < 2:
        raise ValueError(f"expected a (n_frames, {N_MELS}) log-mel array, got shape {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("log-mel array contains NaN or infinite values")
    return array


def logmel_to_wave(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Reconstruct a waveform whose DSOL log-mel approximates ``features``.

    Args:
        features: (n_frames, 64) dB log-mel of the STFT magnitude (DSOL pickle layout); 201 frames
            for one second at 16 kHz.
        seed: seed of the initial random phase (the output is deterministic given it).

    Returns:
        float32 (n,) waveform at 16 kHz with n = (n_frames - 1) * 80 samples, peak <= 0.99.
    """
    logmel = check_logmel(features)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: extra threads only add contention (60x slower)
    try:
        return _griffin_lim(logmel, seed)
    finally:
        torch.set_num_threads(threads)


def _griffin_lim(logmel: np.ndarray, seed: int) -> np.ndarray:
    n_frames = logmel.shape[0]
    mel_mag = np.power(10.0, logmel.astype(np.float64) / 10.0).T  # (64, T) mel magnitude
    fb = mel_filterbank().astype(np.float64)  # (64, 81)
    spec = np.maximum(np.linalg.pinv(fb) @ mel_mag, 0.0) + _EPS  # (81, T)
    for _ in range(_NNLS_ITERATIONS):  # non-negative least squares by multiplicative updates
        spec *= (fb.T @ mel_mag) / (fb.T @ (fb @ spec) + _EPS)
    magnitude = torch.from_numpy(spec)
    window = torch.hann_window(N_FFT, periodic=True, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(magnitude.shape, generator=generator, dtype=torch.float64) * 2 * np.pi
    n_samples = (n_frames - 1) * HOP_LENGTH
    stft_args = {"n_fft": N_FFT, "hop_length": HOP_LENGTH, "window": window, "center": True}
    wave = torch.zeros(n_samples, dtype=torch.float64)
    for _ in range(GRIFFIN_LIM_ITERATIONS):
        wave = torch.istft(torch.polar(magnitude, phase), length=n_samples, **stft_args)
        rebuilt = torch.stft(wave, return_complex=True, pad_mode="reflect", **stft_args)
        phase = torch.angle(rebuilt)
    wave = torch.istft(torch.polar(magnitude, phase), length=n_samples, **stft_args).numpy()
    peak = float(np.abs(wave).max())
    if peak > 0.99:
        wave = wave * (0.99 / peak)  # keep it storable as 16-bit PCM; shifts dB by a constant
    return wave.astype(np.float32)


def logmel_error_db(wave: np.ndarray, features: np.ndarray) -> float:
    """Mean absolute dB difference between ``LogMel(wave)`` and ``features``, after removing the
    constant offset that peak scaling introduces, over bins above the 80 dB floor."""
    target = check_logmel(features)
    with torch.no_grad():
        got = LogMel(top_db=None)(torch.from_numpy(wave[None]).float())[0, 0].numpy()
    n = min(len(got), len(target))
    got, target = got[:n], target[:n]
    live = target > target.max() - TOP_DB + 1.0
    if not live.any():
        return 0.0
    diff = got[live] - target[live]
    return float(np.mean(np.abs(diff - np.median(diff))))


__all__ = ["SAMPLE_RATE", "check_logmel", "logmel_error_db", "logmel_to_wave"]
