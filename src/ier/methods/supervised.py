"""The supervised ceiling: the same towers trained with the benchmark's boxes and sounding labels.

A per-class visual head scores every cell, a per-class audio head scores the clip; the class map
is sigma(visual_k(x, y)) * sigma(audio_k): "class k is here" AND "class k is heard". The
``supervised`` task trains it with per-pixel BCE against each class's sounding-box mask.

Registers the model ``supervised``, its task and recipe (``ier.methods``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ier import losses
from ier.methods import Method, register_method
from ier.methods._budget import two_split_recipe
from ier.models import register_model
from ier.models.common import AVModel
from ier.models.config import ModelConfig
from ier.models.maps import global_max_pool
from ier.models.output import LocalizationOutput
from ier.models.parts import ClassNames, EncoderPair
from ier.tasks.base import BaseTask, StageData, register_task


@register_model("supervised")
class SupervisedModel(AVModel):
    """Box-supervised class-aware localizer with C = ``config.num_clusters`` categories.

    Args:
        config: Architecture; ``num_clusters`` is the number of categories.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.num_classes = config.num_clusters
        d, c = config.embed_dim, config.num_clusters
        self.encoders = EncoderPair(config)
        self.visual_head = nn.Sequential(
            nn.Conv2d(self.encoders.visual_channels, d, 1), nn.ReLU(inplace=True),
            nn.Conv2d(d, c, 1),
        )  # fmt: skip
        self.audio_head = nn.Sequential(
            nn.Linear(self.encoders.audio_channels, d), nn.ReLU(inplace=True), nn.Linear(d, c)
        )
        self.class_names = ClassNames()

    @property
    def classes(self) -> tuple[str, ...]:
        """Category names (set by the training task), else ``class_0`` ... ``class_{C-1}``."""
        return self.class_names.names or tuple(f"class_{i}" for i in range(self.num_classes))

    def set_classes(self, names: Sequence[str]) -> None:
        """Name the C output categories (the training data's vocabulary, in label order)."""
        if len(names) != self.num_classes:
            raise ValueError(f"need {self.num_classes} class names, got {len(names)}")
        self.class_names.set(names)

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns visual_logits (B, C, h, w), audio_logits (B, C), maps (B, C, h, w) in [0, 1]."""
        visual_logits = self.visual_head(self.encoders.visual_features(images))
        audio_logits = self.audio_head(self.encoders.audio_features(waves))
        maps = torch.sigmoid(visual_logits) * torch.sigmoid(audio_logits)[:, :, None, None]
        return {"visual_logits": visual_logits, "audio_logits": audio_logits, "maps": maps}

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Class maps (B, C, h, w) in [0, 1]; score = each map's peak."""
        maps = self(images, waves)["maps"]
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Single-source map: the maximum over classes, (B, 1, h, w) in [0, 1]."""
        return self(images, waves)["maps"].amax(dim=1, keepdim=True)


@register_task("supervised")
class SupervisedTask(BaseTask):
    """Per-pixel BCE of the class maps against each class's sounding-box coverage, plus the
    auxiliary BCEs of the two factors: visual logits vs every visible box, audio logits vs the
    classes heard (sounding + off-screen). Names the model's classes after the training data."""

    name = "supervised"

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if tuple(self.model.classes) != tuple(data.classes):
            self.model.set_classes(data.classes)
        return {}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        c, h, w = out["maps"].shape[1:]
        sounding = losses.class_box_targets(batch, c, h, w, sounding=True)
        visible = losses.class_box_targets(batch, c, h, w, sounding=False)
        loss_map = F.binary_cross_entropy(out["maps"].clamp(1e-6, 1 - 1e-6), sounding)
        loss_visual = F.binary_cross_entropy_with_logits(out["visual_logits"], visible)
        loss_audio = F.binary_cross_entropy_with_logits(out["audio_logits"], batch["audible"])
        return {
            "loss": loss_map + loss_visual + loss_audio,
            "loss_map": loss_map,
            "loss_visual": loss_visual,
            "loss_audio": loss_audio,
        }


register_method(Method(
    "supervised", two_split_recipe("supervised", "supervised"), label="Supervised (ceiling)",
    order=90, summary="the same towers trained with the benchmark's boxes: the ceiling",
))  # fmt: skip
