"""The evaluation protocol, in one place: split kind -> alpha, tau and grid, and the published
protocols of the prepared datasets' splits (docs/metrics.md).

A sample's manifest ``split`` name decides its protocol (:func:`split_protocol`): the name of a
prepared dataset's split (``flickr``, ``vggss``, ``extended_*``, and DSOL's ``solo``, ``duet``,
``synthetic``) carries its authors' protocol (``PUBLISHED_PROTOCOLS``); any other name is of the
kind :func:`split_kind` reads from it, evaluated with DSOL's relative binarisation at that kind's
alpha (``DEFAULT_ALPHA_BY_KIND``). ``ier.evaluate.EvalSettings`` takes its defaults from here, and
any setting passed there overrides the protocol's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from ier.data.sample import SPLIT_KINDS
from ier.map_metrics import DEFAULT_GRID

__all__ = [
    "DEFAULT_ALPHA_BY_KIND", "DEFAULT_GRID", "DEFAULT_TAU", "PUBLISHED_PROTOCOLS", "SplitProtocol",
    "published_protocol", "split_kind", "split_protocol",
]  # fmt: skip

DEFAULT_TAU = 0.5
"""Absolute threshold of ``nsa``, ``silent_fp``, ``negative_fp``, ``pia``, ``pointing_tau``."""
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
class SplitProtocol:
    """The published evaluation protocol of one prepared dataset's split.

    Attributes:
        kind: the evaluator's split kind (solo, synthetic, duet, wild, negative).
        alpha: relative binarisation threshold, prediction > alpha * max (DSOL/IEr protocol);
            None when the reference protocol thresholds at the median instead.
        threshold: the binarisation policy (``ier.map_metrics.THRESHOLD_POLICIES``): ``relative``
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


PUBLISHED_PROTOCOLS: dict[str, SplitProtocol] = {
    "solo": SplitProtocol("solo", 0.1, "relative", "union", 0.5, 4.0, 1.0, "DSOL tools.py"),
    "duet": SplitProtocol("duet", 0.2, "relative", "union", 0.3, 4.0, 1.0, "DSOL eval_duet.py"),
    "synthetic": SplitProtocol("synthetic", 0.5, "relative", "union", 0.3, None, 1.0,
                               "DSOL eval.py"),  # fmt: skip
    "flickr": SplitProtocol("solo", None, "median", "consensus", 0.5, None, 1.0, "LVS / EZ-VSL"),
    "vggss": SplitProtocol("solo", None, "median", "union", 0.5, None, 1.0, "LVS / EZ-VSL"),
    "extended_flickr": SplitProtocol(
        "solo", None, "median", "consensus", 0.5, None, 1.0, "SLAVC EvaluatorFull"
    ),
    "extended_vggss": SplitProtocol(
        "solo", None, "median", "union", 0.5, None, 1.0, "SLAVC EvaluatorFull"
    ),
}
"""``solo``/``duet``/``synthetic`` are the DSOL/IEr protocol (MUSIC; their alphas are
``DEFAULT_ALPHA_BY_KIND``'s); ``flickr``/``vggss``/
``extended_*`` are the LVS/EZ-VSL/SLAVC protocol of those sets (IEr's own VGG-SS table uses
``relative`` at the solo alpha: ``ier evaluate --threshold-policy relative``)."""


DEFAULT_ALPHA_BY_KIND: dict[str, float] = {
    **{kind: PUBLISHED_PROTOCOLS[kind].alpha for kind in ("solo", "synthetic", "duet")},  # DSOL
    "wild": PUBLISHED_PROTOCOLS["synthetic"].alpha,  # our unconstrained sets: as synthetic (Q11)
    "negative": 0.1,  # no boxes: alpha only affects ap/max_f1 through IoU, which needs boxes
}
"""Relative binarisation threshold (``map > alpha * max``) of each split kind: DSOL's tools.py
(solo 0.1), eval.py (synthetic 0.5) and eval_duet.py (duet 0.2)."""


def published_protocol(split: str) -> SplitProtocol | None:
    """The published protocol of a manifest ``split`` name, or None if it has none."""
    return PUBLISHED_PROTOCOLS.get(split)


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

    A prepared dataset's split (``flickr``, ``vggss``, ``extended_*``, ...) gives its published
    protocol's kind, binarisation and ground-truth rule; any other name (``test/duet``) is of kind
    :func:`split_kind`, binarised ``relative`` at that kind's alpha, with union ground truth.
    """
    protocol = published_protocol(split)
    if protocol is not None:
        return protocol.kind, protocol.threshold, protocol.gt_rule == "consensus"
    return split_kind(split), "relative", False
