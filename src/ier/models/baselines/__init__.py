"""Baselines on IEr's backbones, data and metrics, each registered in ``ier.models``.

``ots`` (Objects that Sound / AVOL-Net), ``attention`` (Senocak et al.), ``sop`` (Sound of Pixels),
``dsol`` (DSOL, both stages), ``ezvsl`` (EZ-VSL), ``slavc`` (SLAVC) and ``supervised`` (the
box-supervised ceiling). Importing this package registers them; docs/baselines.md records how
each one follows its paper.
"""

from __future__ import annotations

from ier.models.baselines.attention import AttentionModel
from ier.models.baselines.contrastive import EZVSLModel, SLAVCModel
from ier.models.baselines.dsol import DSOLModel
from ier.models.baselines.ots import ObjectsThatSoundModel
from ier.models.baselines.sop import SoundOfPixelsModel
from ier.models.baselines.supervised import SupervisedModel

BASELINES = ("ots", "attention", "sop", "dsol", "ezvsl", "slavc", "supervised")

__all__ = [
    "BASELINES",
    "AttentionModel",
    "DSOLModel",
    "EZVSLModel",
    "ObjectsThatSoundModel",
    "SLAVCModel",
    "SoundOfPixelsModel",
    "SupervisedModel",
]
