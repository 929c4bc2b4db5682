"""SLAVC (Mo & Morgado, NeurIPS 2022): EZ-VSL's towers with heavy visual dropout, two projection
heads and momentum (EMA) target towers; the map and confidence come from the momentum towers.
Registers the model ``slavc``, its task and recipe.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ier import losses
from ier.methods import Method, register_method
from ier.methods._budget import two_split_recipe
from ier.methods.ezvsl import EZVSL_TAU, _cell_cosine
from ier.models import register_model
from ier.models.common import AVModel
from ier.models.config import ModelConfig
from ier.models.maps import COSINE_EPS
from ier.models.output import LocalizationOutput
from ier.models.parts import EncoderPair, top_fraction_mean
from ier.tasks.base import BaseTask, register_task

SLAVC_MOMENTUM = 0.999  # --m_img 0.999 --m_aud 0.999 (SLAVC train script)
SLAVC_DROPOUT_IMG = 0.9  # --dropout_img 0.9
SLAVC_DROPOUT_AUD = 0.0  # --dropout_aud 0
SLAVC_CONFIDENCE_FRACTION = 0.25  # confidence = mean of the top 25 % of the map


class _SLAVCTowers(nn.Module):
    """One copy of SLAVC's towers: encoders and two projection heads per modality."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        d = config.embed_dim
        self.encoders = EncoderPair(config)
        self.visual_proj1 = nn.Conv2d(self.encoders.visual_channels, d, 1)
        self.visual_proj2 = nn.Conv2d(self.encoders.visual_channels, d, 1)
        self.audio_proj1 = nn.Linear(self.encoders.audio_channels, d)
        self.audio_proj2 = nn.Linear(self.encoders.audio_channels, d)


@register_model("slavc")
class SLAVCModel(AVModel):
    """SLAVC: EZ-VSL towers + heavy visual dropout, two projection heads, momentum (EMA) towers.

    ``forward`` returns the online features (with dropout in training mode) and, without
    gradient, the momentum features that serve as the loss targets; ``momentum_update`` moves
    the momentum towers towards the online ones (the ``slavc`` task calls it before each step,
    as SLAVC's forward does). Maps and confidences use the momentum towers (``use_mom_eval``).

    Args:
        config: Architecture (``embed_dim`` = D).
    """

    tau = EZVSL_TAU
    momentum = SLAVC_MOMENTUM

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.online = _SLAVCTowers(config)
        self.target = copy.deepcopy(self.online)
        for param in self.target.parameters():
            param.requires_grad_(False)
        self.visual_dropout = nn.Dropout(p=SLAVC_DROPOUT_IMG)
        self.audio_dropout = nn.Dropout(p=SLAVC_DROPOUT_AUD)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class-agnostic: ("*",)."""
        return ("*",)

    @torch.no_grad()
    def momentum_update(self) -> None:
        """theta_target <- m theta_target + (1 - m) theta_online, parameters only.

        The momentum towers keep their own batch-norm statistics, which their train-mode
        forward updates, as in SLAVC.
        """
        for online, target in zip(self.online.parameters(), self.target.parameters()):
            target.mul_(self.momentum).add_(online.detach(), alpha=1.0 - self.momentum)

    def _visual(self, towers: _SLAVCTowers, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.visual_dropout(towers.encoders.visual_features(images))
        return tuple(
            F.normalize(proj(feats), dim=1, eps=COSINE_EPS)
            for proj in (towers.visual_proj1, towers.visual_proj2)
        )

    def _audio(self, towers: _SLAVCTowers, waves: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.audio_dropout(towers.encoders.audio_features(waves))
        return tuple(
            F.normalize(proj(feats), dim=1, eps=COSINE_EPS)
            for proj in (towers.audio_proj1, towers.audio_proj2)
        )

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Online visual1/visual2 (B, D, h, w), audio1/audio2 (B, D); momentum targets
        visual1_t/visual2_t/audio1_t/audio2_t (no gradient); cosine (B, 1, h, w), the momentum
        towers' own-pair map averaged over the two heads."""
        v1, v2 = self._visual(self.online, images)
        a1, a2 = self._audio(self.online, waves)
        with torch.no_grad():
            v1t, v2t = self._visual(self.target, images)
            a1t, a2t = self._audio(self.target, waves)
            cosine = 0.5 * (_cell_cosine(v1t, a1t) + _cell_cosine(v2t, a2t))
        return {
            "visual1": v1, "visual2": v2, "audio1": a1, "audio2": a2,
            "visual1_t": v1t, "visual2_t": v2t, "audio1_t": a1t, "audio2_t": a2t,
            "cosine": cosine,
        }  # fmt: skip

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Map = clip(mean of the two heads' momentum cosines, 0, 1); score = SLAVC confidence."""
        maps = self(images, waves)["cosine"].clamp(0.0, 1.0)
        return LocalizationOutput(
            maps=maps, scores=top_fraction_mean(maps, SLAVC_CONFIDENCE_FRACTION)
        )

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Single-source map (the same class-agnostic map): (B, 1, h, w) in [0, 1]."""
        return self.localize(images, waves).maps


@register_task("slavc")
class SLAVCTask(BaseTask):
    """SLAVC: momentum update of the target towers, then SLAVC's two-head MIL InfoNCE."""

    name = "slavc"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.momentum_update()
        out = self.model(batch["image"], batch["wave"])
        return {"loss": losses.slavc_loss(out, tau=self.model.tau)}


register_method(Method(
    "slavc", two_split_recipe("slavc", "slavc"), label="SLAVC", order=50,
    summary="SLAVC: EZ-VSL with visual dropout, two heads and momentum targets",
))  # fmt: skip
