"""The frozen, pretrained ``aisfx`` sound-effects audio encoder: the wheel's weights (found without
importing the package), its HTK-mel front end at 16 kHz and the DCASE cross-task baseline CNN.

``ier.models.backbones.build_audio_backbone("aisfx")`` builds it; ``ier.models.backbones``
re-exports :class:`AisfxAudio`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ier.errors import MissingDependencyError

logger = logging.getLogger(__name__)

AISFX_WHEEL = "aisfx==0.1.2"
AISFX_SPEC_MAX = 9.457798957824707  # aisfx's 'original' min-max normalisation of log10(1e4 x + 1)


def aisfx_weights_path() -> str:
    """Path of ``aisfx/models/checkpoint.pth`` inside the installed ``aisfx`` wheel.

    The package is located without importing it: its ``__init__`` imports librosa, which it pins
    to versions that do not install beside this project's numpy (install it with
    ``pip install --no-deps aisfx==0.1.2``).
    """
    spec = importlib.util.find_spec("aisfx")
    path = None
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if path is None or not path.is_file():
        raise MissingDependencyError(
            f"model.audio_backbone='aisfx' (the cpu preset's audio encoder) needs the aisfx "
            f"weights: pip install --no-deps {AISFX_WHEEL} (scripts/setup.sh does), or use the "
            "from-scratch audio tower: --set model.audio_backbone=resnet18"
        )
    return str(path)


def htk_mel_filterbank(*, sample_rate: float, n_fft: int, n_mels: int) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters over 0 … sample_rate / 2, each row
    summing to 1 (librosa ``mel(htk=True, norm=1)``: the aisfx front end)."""
    mel = 2595.0 * np.log10(1.0 + np.array([0.0, sample_rate / 2]) / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(mel[0], mel[1], n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower = (freqs[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - freqs[None]) / (edges[2:, None] - edges[1:-1, None])
    bank = np.maximum(0.0, np.minimum(lower, upper))
    return bank / np.maximum(bank.sum(axis=1, keepdims=True), 1e-10)


class _AisfxBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then a max-pool (the DCASE cross-task baseline's ConvBlock)."""

    def __init__(self, in_channels: int, out_channels: int, pool: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return nn.functional.max_pool2d(x, self.pool) if self.pool > 1 else x


class AisfxAudio(nn.Module):
    """A frozen, pretrained audio encoder: the ``aisfx`` sound-effects embedding CNN.

    Weights: the X-Sequential-CE model of Ma & Lerch ("Representation Learning for the Automatic
    Indexing of Sound Effects Libraries", ISMIR 2022), trained on sound-effects libraries,
    CC BY 4.0, read from the ``aisfx`` PyPI wheel (nothing is downloaded). Architecture: the
    4-block, 8-conv CNN of the DCASE 2018 cross-task baseline
    (Kong et al., arXiv:1808.00773); this is our own implementation with its parameter names.

    Input is the 16 kHz wave (``takes_waves``), not DSOL's log-mel: the front end reproduces
    aisfx's own (44.1 kHz, 2048/1024 STFT, 96 HTK-mel bands of the power spectrum, log10(1e4 x +
    1), divided by 9.458) on the same time-frequency grid at 16 kHz: a 743-sample window and a
    372-sample hop have aisfx's 46 ms / 23 ms and its 21.5 Hz bin spacing, the power is scaled by
    (2048 / 743)^2 to the longer window's, and the bands above 8 kHz stay empty, as they would for
    16 kHz audio resampled to 44.1 kHz. Each clip is peak-normalised first, as aisfx does.

    ``forward_features`` returns 1 x 1 maps: ``mid`` (B, 256, 1, 1), the global max-pool of block
    3, and ``top`` (B, 512, 1, 1), aisfx's embedding (block 4, mean over frequency, max over time).
    Every weight is frozen and batch norm stays in eval mode, so the output of a wave never
    changes: on CPU it is remembered by the wave's bytes (up to ``memo_size`` clips), and a
    training clip is encoded once however many epochs read it. ``ier.data.audio_memo`` keeps
    these encodings in the data folder's cache across runs (``memo_key``, ``encode_waves``,
    ``remember``; bump ``memo_version`` when the front end or the network changes).
    """

    takes_waves = True
    mid_channels = 256
    out_channels = 512
    sample_rate = 16_000
    n_fft, hop_length, n_mels = 743, 372, 96
    memo_version = 1

    def __init__(self, *, pretrained: bool = True, memo_size: int = 30_000) -> None:
        super().__init__()
        self.conv_block1 = _AisfxBlock(1, 64, 2)
        self.conv_block2 = _AisfxBlock(64, 128, 2)
        self.conv_block3 = _AisfxBlock(128, 256, 2)
        self.conv_block4 = _AisfxBlock(256, 512, 1)
        bank = htk_mel_filterbank(sample_rate=44_100.0, n_fft=2048, n_mels=self.n_mels)
        bank = bank[:, : self.n_fft // 2 + 1]  # 16 kHz bins = the 44.1 kHz bins up to 8 kHz
        self.register_buffer("mel_matrix", torch.from_numpy(bank).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        if pretrained:
            self._load(aisfx_weights_path())
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.memo_size = memo_size
        self._memo: dict[bytes, torch.Tensor] = {}
        super().train(False)

    def _load(self, path: str) -> None:
        # the file is (state_dict, {dataset: (numpy int64, classes)}): allow exactly those types
        scalar = (np._core.multiarray.scalar, "numpy.core.multiarray.scalar")
        with torch.serialization.safe_globals([scalar, np.dtype, np.dtypes.Int64DType]):
            state, _ = torch.load(path, map_location="cpu", weights_only=True)
        prefix = "embedding_net."
        self.load_state_dict({k[len(prefix):]: v for k, v in state.items()
                              if k.startswith(prefix)})  # fmt: skip
        logger.info("loaded aisfx audio weights from %s", path)

    def train(self, mode: bool = True) -> AisfxAudio:
        return super().train(False)  # frozen: batch norm keeps its pretrained statistics

    def spectrogram(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, n) 16 kHz waves -> (B, 1, T, 96), aisfx's normalised log-mel map."""
        with torch.autocast(device_type=waves.device.type, enabled=False):
            waves = waves.float()
            waves = waves / waves.abs().amax(dim=1, keepdim=True).clamp_min(1e-8)
            spec = torch.stft(waves, self.n_fft, hop_length=self.hop_length, window=self.window,
                              center=True, pad_mode="reflect", return_complex=True)  # fmt: skip
            power = spec.abs().pow(2) * (2048.0 / self.n_fft) ** 2
            mel = torch.log10(self.mel_matrix @ power * 1e4 + 1.0) / AISFX_SPEC_MAX
            return mel.transpose(1, 2).unsqueeze(1)

    @staticmethod
    def memo_key(wave: np.ndarray) -> bytes:
        """The memo's key of one float32 wave (n,): a hash of its bytes."""
        return hashlib.blake2b(np.ascontiguousarray(wave, np.float32).tobytes(),
                               digest_size=16).digest()  # fmt: skip

    def encode_waves(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, n) 16 kHz waves -> (B, 768): ``mid`` and ``top`` side by side, not memoised."""
        return self._encode(waves)

    def remember(self, keys: Sequence[bytes], rows: torch.Tensor) -> None:
        """Put encodings (``rows`` (N, 768), from ``encode_waves``) in the memo under ``keys``,
        as far as ``memo_size`` allows."""
        for key, row in zip(keys, rows):
            if len(self._memo) >= self.memo_size:
                break
            self._memo.setdefault(key, row)

    @torch.no_grad()
    def _encode(self, waves: torch.Tensor) -> torch.Tensor:
        x = self.conv_block3(self.conv_block2(self.conv_block1(self.spectrogram(waves))))
        mid = x.amax(dim=(2, 3))
        top = self.conv_block4(x).mean(dim=3).amax(dim=2)
        return torch.cat([mid, top], dim=1)

    def forward_features(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: waves (B, n) at 16 kHz. Returns: mid (B, 256, 1, 1), top (B, 512, 1, 1)."""
        if waves.device.type != "cpu" or self.memo_size <= 0:
            out = self._encode(waves)
        else:
            out = self._memoised(waves)
        return out[:, : self.mid_channels, None, None], out[:, self.mid_channels :, None, None]

    def _memoised(self, waves: torch.Tensor) -> torch.Tensor:
        data = waves.detach().float().contiguous().numpy()
        keys = [self.memo_key(row) for row in data]
        missing = [i for i, key in enumerate(keys) if key not in self._memo]
        fresh: dict[int, torch.Tensor] = {}
        if missing:
            for i, row in zip(missing, self._encode(waves[missing])):
                fresh[i] = row
                if len(self._memo) < self.memo_size:
                    self._memo[keys[i]] = row.clone()
        return torch.stack([fresh[i] if i in fresh else self._memo[key]
                            for i, key in enumerate(keys)])  # fmt: skip

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, n) -> top (B, 512, 1, 1)."""
        return self.forward_features(waves)[1]
