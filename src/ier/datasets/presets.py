"""Per-split evaluation presets of the published protocols, keyed by the manifest ``split`` field.

``ier prepare`` writes each sample's ``split`` as one of these names; an evaluator looks the name up
with :func:`split_preset` to get the paper's defaults (documented in ``docs/datasets.md``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SplitPreset:
    """Evaluation defaults of one split.

    Attributes:
        kind: the evaluator's split kind (solo, synthetic, duet, wild, negative).
        alpha: relative binarisation threshold, prediction >= alpha * max (DSOL/IEr protocol);
            None when the reference protocol thresholds at the median instead.
        threshold: ``relative`` (alpha x max) or ``median`` (keep the top half of the pixels).
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
"""``solo``/``duet``/``synthetic`` are the DSOL/IEr protocol (MUSIC, and VGG-SS as IEr's "VGGSound
single"); ``flickr``/``vggss``/``extended_*`` are the LVS/EZ-VSL/SLAVC protocol of those sets."""


def split_preset(split: str) -> SplitPreset | None:
    """The preset of a manifest ``split`` name, or None if it is not a prepared dataset's split."""
    return SPLIT_PRESETS.get(split)
