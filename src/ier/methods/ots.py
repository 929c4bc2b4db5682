"""Objects that Sound / AVOL-Net (Arandjelović & Zisserman, ECCV 2018) as DSOL re-ran it.

DSOL's stage-1 network *is* an AVOL-style model (method.md §2.6): per-cell cosine between the
projected visual map and the audio embedding, a learnable scale and bias, a sigmoid, global max
pooling to the clip score, and BCE on matched (own frame) vs mismatched (other clip's frame) pairs.
So OTS is ``TwoTowerModel`` trained with L_av only: no clustering, no classification.

Registers the model ``ots``, its task ``ots`` and its recipe (``ier.methods``).
"""

from __future__ import annotations

import torch

from ier import losses
from ier.methods import Method, register_method
from ier.methods._budget import two_split_recipe
from ier.models import register_model
from ier.models.common import TwoTowerModel
from ier.tasks.base import BaseTask, other_clips, register_task


@register_model("ots")
class ObjectsThatSoundModel(TwoTowerModel):
    """AVOL-Net: one class-agnostic map sigma(beta cos(f^v_xy, f^a) + b), (B, 1, h, w).

    ``forward`` returns fv (B, D, h, w), fa (B, D), mid (B, C3), av_map (B, 1, h, w) and
    score (B,) = GMP(av_map); the ``ots`` task pairs each audio with its own and another frame.
    ``localize`` gives the AV map as the single class "*" with its peak as the score.
    """


@register_task("ots")
class ObjectsThatSoundTask(BaseTask):
    """AVOL-Net: L_av = BCE(GMP(map(own frame, audio)), 1) + BCE(pool(map(other frame)), 0)."""

    name = "ots"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fv = self.model.encode_visual(batch["image"])
        fa, _ = self.model.encode_audio(batch["wave"])
        loss = losses.av_bce_loss(
            self.model.av_map(fv, fa),
            self.model.av_map(other_clips(fv), fa),
            negative_pooling=self.stage.negative_pooling,
        )
        return {"loss": loss}


register_method(Method(
    "ots", two_split_recipe("ots", "ots"), label="Objects that Sound", order=10,
    summary="AVOL-Net: one AV map trained on matched vs mismatched frames (BCE of its max)",
))  # fmt: skip
