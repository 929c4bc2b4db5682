"""The log-mel front end of every model: Slaney mel scale, filterbank and the DSOL log-mel map.

``ier.audio`` re-exports every name here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16_000  # Hz, the rate of every model input
N_FFT = 160  # samples (10 ms at 16 kHz)
HOP_LENGTH = 80  # samples (5 ms at 16 kHz)
N_MELS = 64
F_MAX_HZ = 8_000.0
TOP_DB = 80.0
AMIN = 1e-10


def hz_to_mel(freq_hz: np.ndarray | float) -> np.ndarray:
    """Slaney (Auditory Toolbox, librosa default) mel scale: linear below 1 kHz, log above."""
    freq_hz = np.asarray(freq_hz, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    linear = freq_hz / f_sp
    log = min_log_mel + np.log(np.maximum(freq_hz, min_log_hz) / min_log_hz) / logstep
    return np.where(freq_hz >= min_log_hz, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    log = min_log_hz * np.exp(logstep * (mel - min_log_mel))
    return np.where(mel >= min_log_mel, log, f_sp * mel)


def mel_filterbank(
    *,
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = N_FFT,
    n_mels: int = N_MELS,
    f_min_hz: float = 0.0,
    f_max_hz: float | None = F_MAX_HZ,
) -> np.ndarray:
    """Triangular mel filters on the Slaney scale with Slaney area normalisation (librosa default).

    With DSOL's n_fft=160 (100 Hz bins) a few of the narrow low filters fall between FFT bins and
    are all zero, exactly as in ``librosa.filters.mel``; their dB output sits at the floor.

    Returns:
        float32 array (n_mels, n_fft // 2 + 1) mapping a linear spectrum to mel bands.
    """
    f_max_hz = sample_rate / 2 if f_max_hz is None else f_max_hz
    if not 0 <= f_min_hz < f_max_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min_hz < f_max_hz <= {sample_rate / 2}")
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2))
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def mel_center_hz(
    *, n_mels: int = N_MELS, f_min_hz: float = 0.0, f_max_hz: float = F_MAX_HZ
) -> np.ndarray:
    """Centre frequency in Hz of each mel band of ``mel_filterbank``, shape (n_mels,)."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2))[1:-1]


class LogMel(nn.Module):
    """Log-mel map in dB, (B, n_samples) -> (B, 1, n_frames, n_mels) (time x mel).

    Defaults reproduce DSOL (method.md §1.2/§2.7): 16 kHz, n_fft 160, hop 80, periodic Hann window,
    centred frames (reflect padding), 64 Slaney mel bands 0-8 kHz applied to the STFT *magnitude*
    (``power=1.0``), then ``10 * log10(max(x, amin) / ref)`` clipped to ``top_db`` below each
    example's maximum (librosa ``power_to_db``). A 1 s window gives 201 x 64. ``power=2.0`` gives a
    conventional power mel instead. The window and mel matrix are non-persistent buffers.
    """

    def __init__(
        self,
        *,
        sample_rate: int = SAMPLE_RATE,
        n_fft: int = N_FFT,
        hop_length: int = HOP_LENGTH,
        n_mels: int = N_MELS,
        f_min_hz: float = 0.0,
        f_max_hz: float | None = F_MAX_HZ,
        power: float = 1.0,
        top_db: float | None = TOP_DB,
        amin: float = AMIN,
        ref: float = 1.0,
        center: bool = True,
        pad_mode: str = "reflect",
    ) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.hop_length = sample_rate, n_fft, hop_length
        self.n_mels, self.power, self.top_db, self.amin, self.ref = n_mels, power, top_db, amin, ref
        self.center, self.pad_mode = center, pad_mode
        mel = mel_filterbank(
            sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, f_min_hz=f_min_hz,
            f_max_hz=f_max_hz,
        )  # fmt: skip
        self.register_buffer("mel_matrix", torch.from_numpy(mel), persistent=False)
        self.register_buffer("window", torch.hann_window(n_fft, periodic=True), persistent=False)

    def n_frames(self, n_samples: int) -> int:
        """Number of STFT frames for a wave of ``n_samples``."""
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + (n_samples - self.n_fft) // self.hop_length

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves (B, n_samples) float. Returns: (B, 1, n_frames, n_mels) float, dB."""
        if waves.ndim != 2:
            raise ValueError(f"LogMel expects waves (B, n_samples), got shape {tuple(waves.shape)}")
        # The STFT and the log need float32 even inside a reduced-precision autocast region.
        with torch.autocast(device_type=waves.device.type, enabled=False):
            return self._forward_fp32(waves.float())

    def _forward_fp32(self, waves: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(
            waves, self.n_fft, hop_length=self.hop_length, window=self.window,
            center=self.center, pad_mode=self.pad_mode, return_complex=True,
        ).abs()  # (B, n_freqs, n_frames)  # fmt: skip
        if self.power != 1.0:
            spec = spec.pow(self.power)
        mel = torch.matmul(self.mel_matrix, spec)  # (B, n_mels, n_frames)
        db = 10.0 * torch.log10(mel.clamp_min(self.amin))
        db = db - 10.0 * math.log10(max(self.amin, self.ref))
        if self.top_db is not None:
            floor = db.amax(dim=(1, 2), keepdim=True) - self.top_db
            db = torch.maximum(db, floor)
        return db.transpose(1, 2).unsqueeze(1)


def log_mel(wave: np.ndarray | torch.Tensor, **kwargs: Any) -> torch.Tensor:
    """Functional ``LogMel``: wave (..., n_samples) -> (..., n_frames, n_mels) dB tensor.

    Keyword arguments are those of ``LogMel``. Builds the filterbank on each call; hold a
    ``LogMel`` module in models.
    """
    tensor = torch.as_tensor(wave)
    lead = tensor.shape[:-1]
    module = LogMel(**kwargs).to(tensor.device)
    out = module(tensor.reshape(-1, tensor.shape[-1]))[:, 0]
    return out.reshape(*lead, *out.shape[-2:])
