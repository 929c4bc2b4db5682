"""Objects that Sound / AVOL-Net (Arandjelović & Zisserman, ECCV 2018) as DSOL re-ran it.

DSOL's stage-1 network *is* an AVOL-style model (method.md §2.6): per-cell cosine between the
projected visual map and the audio embedding, a learnable scale and bias, a sigmoid, global max
pooling to the clip score, and BCE on matched (own frame) vs mismatched (other clip's frame) pairs.
So OTS is ``TwoTowerModel`` trained with L_av only: no clustering, no classification.
"""

from __future__ import annotations

from ier.models import register_model
from ier.models.common import TwoTowerModel


@register_model("ots")
class ObjectsThatSoundModel(TwoTowerModel):
    """AVOL-Net: one class-agnostic map sigma(beta cos(f^v_xy, f^a) + b), (B, 1, h, w).

    ``forward`` returns fv (B, D, h, w), fa (B, D), mid (B, C3), av_map (B, 1, h, w) and
    score (B,) = GMP(av_map); the ``ots`` task pairs each audio with its own and another frame.
    ``localize`` gives the AV map as the single class "*" with its peak as the score.
    """
