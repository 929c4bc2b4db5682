"""Evaluation protocols of splits: the published presets, keyed by the manifest ``split`` field.

``ier prepare`` writes each sample's ``split`` as one of these names; ``ier.evaluate`` resolves a
split's kind, binarisation and ground-truth rule with :func:`split_protocol` (``docs/datasets.md``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ier.data.records import SPLIT_KINDS

DEFAULT_ALPHA_BY_KIND: dict[str, float] = {
    "solo": 0.1,  # DSOL music-exp/tools.py
    "synthetic": 0.5,  # DSOL music-exp/eval.py
    "wild": 0.5,  # our unconstrained sets: as synthetic (method.md Q11)
    "duet": 0.2,  # DSOL music-exp/eval_duet.py
    "negative": 0.1,  # no boxes: alpha only affects ap/max_f1 through IoU, which needs boxes
}
"""Relative binarisation threshold (``map > alpha * max``) of each split kind."""

_KIND_TOKENS = {
    "solo": "solo",
    "single": "solo",
    "vggss": "solo",
    "flickr": "solo",
    "synthetic": "synthetic",
    "syn": "synthetic",
    "duet": "duet",
    "wild": "wild",
    "un": "wild",
    "unconstrained": "wild",
    "negative": "negative",
    "negatives": "negative",
}


@dataclass(frozen=True)
class SplitPreset:
    """Evaluation defaults of one split.

    Attributes:
        kind: the evaluator's split kind (solo, synthetic, duet, wild, negative).
        alpha: relative binarisation threshold, prediction > alpha * max (DSOL/IEr protocol);
            None when the reference protocol thresholds at the median instead.
        threshold: the binarisation policy (``ier.metrics.THRESHOLD_POLICIES``): ``relative``
            (alpha x max) or ``median`` (keep the top half of the pixels, LVS/EZ-VSL/SLAVC).
        gt_rule: ``union`` (binary union of boxes) or ``consensus`` (Flickr: sum of all annotators'
            boxes / 2, capped at 1; the boxes are in each object's ``annotators``).
        ciou_at: the success threshold the reference tables report.
        frame_rate: frames per second of the annotated frames (DSOL MUSIC: 4).
        clip_seconds: audio window length of one sample.
        reference: where the numbers come from.
    """

    kind: str
    alpha: float | None
    threshold: str
    gt_rule: str
    ciou_at: float
    frame_rate: float | None
    clip_seconds: float
    reference: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for the prepare report)."""
        return asdict(self)


SPLIT_PRESETS: dict[str, SplitPreset] = {
    "solo": SplitPreset("solo", 0.1, "relative", "union", 0.5, 4.0, 1.0, "DSOL tools.py"),
    "duet": SplitPreset("duet", 0.2, "relative", "union", 0.3, 4.0, 1.0, "DSOL eval_duet.py"),
    "synthetic": SplitPreset("synthetic", 0.5, "relative", "union", 0.3, None, 1.0, "DSOL eval.py"),
    "flickr": SplitPreset("solo", None, "median", "consensus", 0.5, None, 1.0, "LVS / EZ-VSL"),
    "vggss": SplitPreset("solo", None, "median", "union", 0.5, None, 1.0, "LVS / EZ-VSL"),
    "extended_flickr": SplitPreset(
        "solo", None, "median", "consensus", 0.5, None, 1.0, "SLAVC EvaluatorFull"
    ),
    "extended_vggss": SplitPreset(
        "solo", None, "median", "union", 0.5, None, 1.0, "SLAVC EvaluatorFull"
    ),
}
"""``solo``/``duet``/``synthetic`` are the DSOL/IEr protocol (MUSIC); ``flickr``/``vggss``/
``extended_*`` are the LVS/EZ-VSL/SLAVC protocol of those sets (IEr's own VGG-SS table uses
``relative`` at the solo alpha: ``ier evaluate --threshold-policy relative``)."""


def split_preset(split: str) -> SplitPreset | None:
    """The preset of a manifest ``split`` name, or None if it is not a prepared dataset's split."""
    return SPLIT_PRESETS.get(split)


def split_kind(split: str) -> str:
    """The split kind of a split name: itself if a kind, else the first token naming one.

    Tokens are the lowercase alphanumeric runs of the name (``"test/duet"``, ``"music-duet"`` ->
    ``duet``; ``"music_syn"`` -> ``synthetic``; ``"vgg-un"`` -> ``wild``); default ``solo``.
    """
    if split in SPLIT_KINDS:
        return split
    for token in re.findall(r"[a-z0-9]+", split.lower()):
        if token in _KIND_TOKENS:
            return _KIND_TOKENS[token]
    return "solo"


def split_protocol(split: str) -> tuple[str, str, bool]:
    """``(kind, threshold policy, consensus)`` of a split name, the evaluator's defaults.

    A prepared dataset's split (``flickr``, ``vggss``, ``extended_*``, ...) gives its preset's
    kind, binarisation and ground-truth rule; any other name (``test/duet``) is of kind
    :func:`split_kind`, binarised ``relative`` at that kind's alpha, with union ground truth.
    """
    preset = split_preset(split)
    if preset is not None:
        return preset.kind, preset.threshold, preset.gt_rule == "consensus"
    return split_kind(split), "relative", False
