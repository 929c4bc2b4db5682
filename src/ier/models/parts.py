"""Parts that methods share: the encoder pair without an AV head, class names carried by a
state_dict, and map helpers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ier.models.backbones import build_audio_backbone
from ier.models.common import (
    AudioFrontend,
    ImageNormalizer,
    audio_input,
    backbone_features,
    visual_backbone,
)
from ier.models.config import ModelConfig
from ier.models.maps import global_max_pool
from ier.models.names import names_from_bytes, names_to_bytes, resize_names_buffer


class EncoderPair(nn.Module):
    """The shared towers of every method: ImageNet normaliser + visual backbone, log-mel + audio
    ResNet-18 (global max-pooled layer4), exactly as in ``TwoTowerModel`` but without its AV head,
    so each baseline adds only its own heads (no unused parameters under DDP).

    Args:
        config: Model architecture (backbone, width, front end).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.image_normalizer = ImageNormalizer()
        self.frontend = AudioFrontend(config.frontend)
        self.visual_backbone = visual_backbone(config)
        self.audio_backbone = build_audio_backbone(
            config.audio_backbone, width=config.width, pretrained=config.pretrained
        )

    @property
    def visual_channels(self) -> int:
        """Channels C_v of the visual backbone map."""
        return int(self.visual_backbone.out_channels)

    @property
    def audio_channels(self) -> int:
        """Channels C_a of the pooled audio vector."""
        return int(self.audio_backbone.out_channels)

    def visual_features(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, S, S) in [0, 1]. Returns: (B, C_v, S/16, S/16)."""
        return backbone_features(self.visual_backbone, self.image_normalizer, images)

    def audio_features(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves (B, n_samples) at 16 kHz. Returns: (B, C_a), GMP of the layer4 map."""
        return global_max_pool(self.audio_backbone(audio_input(self, waves)))


class ClassNames(nn.Module):
    """Category names held in a uint8 buffer (JSON), so a ``state_dict`` carries them.

    The buffer's length depends on the names; ``_load_from_state_dict`` resizes it first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("names_utf8", torch.zeros(0, dtype=torch.uint8))

    @property
    def names(self) -> tuple[str, ...]:
        """The stored names; () before ``set``."""
        return names_from_bytes(self.names_utf8)

    def set(self, names: Sequence[str]) -> None:
        """Store ``names`` (non-empty, unique)."""
        names = tuple(str(n) for n in names)
        if not names or len(set(names)) != len(names):
            raise ValueError(f"class names must be non-empty and unique, got {names}")
        self.names_utf8 = names_to_bytes(names, device=self.names_utf8.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        resize_names_buffer(self, "names_utf8", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def peak_normalize_maps(maps: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Divide each (B, C) map by its spatial maximum: (B, C, h, w) >= 0 -> same shape in [0, 1]."""
    peak = maps.flatten(2).amax(dim=2).clamp_min(eps)
    return maps / peak[:, :, None, None]


def top_fraction_mean(maps: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """SLAVC confidence: mean of the top ``fraction`` of each map's values, (B,C,h,w) -> (B,C)."""
    flat = maps.flatten(2)
    count = max(1, int(round(fraction * flat.shape[2])))
    return flat.topk(count, dim=2).values.mean(dim=2)
