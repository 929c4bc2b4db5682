"""Senocak et al. (CVPR 2018) "Learning to localize sound source", as in DSOL's comparison code.

Audio-guided softmax attention over the visual cells gives an attended visual vector; a
contrastive loss pulls it to the audio embedding for matched pairs and pushes it beyond a margin
for mismatched pairs (DSOL ``compared model/attention_net.py``, margin loss of
``location_attention_stage_one.py``). The localization map is the attention map.

Registers the model ``attention``, its task and its recipe (``ier.methods``).
"""

from __future__ import annotations

import math

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
from ier.models.parts import EncoderPair, peak_normalize_maps
from ier.tasks.base import BaseTask, other_clips, register_task

ATTENTION_SCALE_INIT = 10.0  # softmax sharpness over unit-vector cosines (see docs/baselines.md)
CONTRASTIVE_MARGIN = 1.0  # distance margin between unit-norm embeddings (DSOL: 10 on raw features)


@register_model("attention")
class AttentionModel(AVModel):
    """Attention baseline: alpha = softmax_xy(s * cos(v_xy, a)), z = sum_xy alpha_xy v_xy.

    Visual cells are projected (1x1 conv C_v -> D) and L2-normalised; the audio vector goes
    through FC-ReLU-FC-ReLU (DSOL) and is L2-normalised. The attended vector z goes through
    FC-ReLU-FC-ReLU; the pair's distance is d = ||norm(z') - a||, in [0, 2].

    Args:
        config: Architecture (``embed_dim`` = D).
    """

    margin = CONTRASTIVE_MARGIN

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.embed_dim
        self.encoders = EncoderPair(config)
        self.visual_proj = nn.Conv2d(self.encoders.visual_channels, d, 1)
        self.audio_mlp = nn.Sequential(
            nn.Linear(self.encoders.audio_channels, d), nn.ReLU(inplace=True),
            nn.Linear(d, d), nn.ReLU(inplace=True),
        )  # fmt: skip
        self.attended_mlp = nn.Sequential(
            nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d), nn.ReLU(inplace=True)
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(ATTENTION_SCALE_INIT)))

    @property
    def classes(self) -> tuple[str, ...]:
        """Class-agnostic: ("*",)."""
        return ("*",)

    def encode_visual(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, S, S) in [0, 1]. Returns: unit-norm cells (B, D, h, w)."""
        cells = self.visual_proj(self.encoders.visual_features(images))
        return F.normalize(cells, dim=1, eps=COSINE_EPS)

    def encode_audio(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves (B, n_samples). Returns: unit-norm audio embedding a (B, D)."""
        return F.normalize(self.audio_mlp(self.encoders.audio_features(waves)), dim=1)

    def attend(self, cells: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attention of audio (B, D) over cells (B, D, h, w).

        Returns:
            attention (B, 1, h, w) summing to 1 over cells, and distance (B,) between the
            attended-visual embedding and the audio embedding.
        """
        b, _, h, w = cells.shape
        logits = self.log_scale.exp() * torch.einsum("bdhw,bd->bhw", cells, audio)
        attention = torch.softmax(logits.flatten(1), dim=1).view(b, 1, h, w)
        attended = (cells * attention).flatten(2).sum(dim=2)  # (B, D)
        visual = F.normalize(self.attended_mlp(attended), dim=1, eps=COSINE_EPS)
        return {"attention": attention, "distance": (visual - audio).norm(dim=1)}

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns cells (B, D, h, w), audio (B, D), attention (B, 1, h, w), distance (B,)."""
        cells, audio = self.encode_visual(images), self.encode_audio(waves)
        return {"cells": cells, "audio": audio, **self.attend(cells, audio)}

    def match_score(self, distance: torch.Tensor) -> torch.Tensor:
        """Correspondence confidence exp(-(d / margin)^2) in (0, 1]: (B,) -> (B,)."""
        return torch.exp(-((distance / self.margin) ** 2))

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Map = attention / its peak, scaled by the pair's match score; (B, 1, h, w) in [0, 1]."""
        out = self(images, waves)
        maps = (
            peak_normalize_maps(out["attention"])
            * self.match_score(out["distance"])[:, None, None, None]
        )
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Single-source map (the same class-agnostic map): (B, 1, h, w) in [0, 1]."""
        return self.localize(images, waves).maps


@register_task("attention")
class AttentionTask(BaseTask):
    """Senocak attention: margin contrastive loss on the attended-visual/audio distance of
    matched pairs (own frame) and mismatched pairs (another clip's frame)."""

    name = "attention"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        negative = self.model.attend(other_clips(out["cells"]), out["audio"])
        loss = losses.margin_contrastive_loss(
            out["distance"], negative["distance"], margin=self.model.margin
        )
        return {
            "loss": loss,
            "distance_pos": out["distance"].mean().detach(),
            "distance_neg": negative["distance"].mean().detach(),
        }


register_method(Method(
    "attention", two_split_recipe("attention", "attention"), label="Attention (Senocak)",
    order=20, summary="Senocak et al.: audio-guided softmax attention, margin contrastive loss",
))  # fmt: skip
