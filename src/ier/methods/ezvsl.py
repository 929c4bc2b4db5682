"""EZ-VSL (Mo & Morgado, ECCV 2022): multiple-instance contrastive learning of one map.

The pair score of (image n, audio m) is the best-matching cell, max_xy cos(v^n_xy, a^m); the loss is
the symmetric InfoNCE over the batch (tau = 0.03). The map is the per-cell cosine between the
unit-norm projected visual cell and audio embedding, clipped to [0, 1], so background sits at 0 for
DSOL's relative thresholds (docs/baselines.md). Registers the model ``ezvsl``, its task and recipe.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ier import losses
from ier.methods import Method, register_method
from ier.methods._budget import two_split_recipe
from ier.models import register_model
from ier.models.common import AVModel
from ier.models.config import ModelConfig
from ier.models.maps import COSINE_EPS, global_max_pool
from ier.models.output import LocalizationOutput
from ier.models.parts import EncoderPair
from ier.tasks.base import BaseTask, register_task

EZVSL_TAU = 0.03  # EZ-VSL/SLAVC default temperature


def _cell_cosine(visual: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Own-pair cosine map of unit vectors: (B, D, h, w), (B, D) -> (B, 1, h, w)."""
    return torch.einsum("bdhw,bd->bhw", visual, audio).unsqueeze(1)


@register_model("ezvsl")
class EZVSLModel(AVModel):
    """EZ-VSL: unit-norm 1x1-conv visual cells and linear audio embedding.

    The ``ezvsl`` task's loss is the symmetric multiple-instance InfoNCE over the batch: the
    logit of (image n, audio m) is max_xy cos(v^n_xy, a^m) / tau.

    Args:
        config: Architecture (``embed_dim`` = D).
    """

    tau = EZVSL_TAU

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoders = EncoderPair(config)
        self.visual_proj = nn.Conv2d(self.encoders.visual_channels, config.embed_dim, 1)
        self.audio_proj = nn.Linear(self.encoders.audio_channels, config.embed_dim)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class-agnostic: ("*",)."""
        return ("*",)

    def encode_visual(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, S, S) in [0, 1]. Returns: unit-norm cells (B, D, h, w)."""
        cells = self.visual_proj(self.encoders.visual_features(images))
        return F.normalize(cells, dim=1, eps=COSINE_EPS)

    def encode_audio(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves (B, n_samples). Returns: unit-norm audio embedding (B, D)."""
        return F.normalize(self.audio_proj(self.encoders.audio_features(waves)), dim=1)

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns visual (B, D, h, w), audio (B, D) and cosine (B, 1, h, w) of own pairs."""
        visual, audio = self.encode_visual(images), self.encode_audio(waves)
        return {"visual": visual, "audio": audio, "cosine": _cell_cosine(visual, audio)}

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Map = clip(cos, 0, 1), (B, 1, h, w); score = its peak (the MIL pair score)."""
        maps = self(images, waves)["cosine"].clamp(0.0, 1.0)
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Single-source map (the same class-agnostic map): (B, 1, h, w) in [0, 1]."""
        return self.localize(images, waves).maps


@register_task("ezvsl")
class EZVSLTask(BaseTask):
    """EZ-VSL: symmetric multiple-instance InfoNCE over the batch (tau = 0.03)."""

    name = "ezvsl"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        return {"loss": losses.mil_infonce_loss(out["visual"], out["audio"], tau=self.model.tau)}


register_method(Method(
    "ezvsl", two_split_recipe("ezvsl", "ezvsl"), label="EZ-VSL", order=40,
    summary="EZ-VSL: multiple-instance InfoNCE on the best-matching cell",
))  # fmt: skip
