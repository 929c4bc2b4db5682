"""The evaluation protocol, in one place: split kind -> alpha, tau and grid, and the published
protocols of the prepared datasets' splits (docs/metrics.md).

A sample's manifest ``split`` name decides its protocol (:func:`split_protocol`): the name of a
prepared dataset's split (``flickr``, ``vggss``, ``extended_*``, and DSOL's ``solo``, ``duet``,
``synthetic``) carries its authors' protocol (``PUBLISHED_PROTOCOLS``); any other name is of the
kind :func:`split_kind` reads from it, evaluated with DSOL's relative binarisation at that kind's
alpha (``DEFAULT_ALPHA_BY_KIND``). :class:`EvalSettings`, every threshold and policy of the metric
suite, takes its defaults from here, and any setting passed there overrides the protocol's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ier.data.sample import SPLIT_KINDS
from ier.errors import ConfigError
from ier.map_metrics import DEFAULT_GRID, THRESHOLD_POLICIES

__all__ = [
    "DEFAULT_ALPHA_BY_KIND", "DEFAULT_GRID", "DEFAULT_TAU", "PUBLISHED_PROTOCOLS", "EvalSettings",
    "SplitProtocol", "published_protocol", "split_kind", "split_protocol",
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


MISSING_POLICIES = ("skip", "zero")


@dataclass(frozen=True)
class EvalSettings:
    """Every threshold and policy of the metric suite; all are recorded in the results.

    Attributes:
        grid: maps and boxes are scored on a ``grid x grid`` raster.
        alpha: relative binarisation threshold for ``iou``/``ciou``; None = by split kind.
        alpha_by_kind: default alpha per split kind.
        split_kind: force the split kind (else inferred from the samples' ``split`` names).
        threshold_policy: how maps are binarised for ``iou``/``ciou`` (one of
            ``ier.map_metrics.THRESHOLD_POLICIES``); None = the split's published protocol
            (``ier.protocol``: ``median`` for Flickr and VGG-SS), else ``relative``.
        fixed_threshold: the value of the ``absolute`` and ``minmax`` policies.
        tau: absolute threshold for ``nsa``, ``silent_fp``, ``negative_fp`` and ``pia``.
        iou_threshold: IoU success threshold of ``iou@T`` and of a hit in ``ap``/``max_f1``.
        ciou_thresholds: thresholds of the ``ciou@T`` keys.
        auc_step: spacing of the success-rate thresholds for ``auc`` and ``ciou_auc``.
        top_fraction: fraction of pixels averaged into a sample's confidence (SLAVC: 0.25).
        ap_full_curve: let ``ap`` cover recall from 0 (SLAVC's curve starts at its 2nd point).
        consensus: score objects that carry ``annotators`` boxes against Senocak's consensus map;
            None = the split's dataset preset (on for the Flickr sets), else off.
        consensus_agreement: annotators needed for full weight in the consensus map.
        missing: ``"skip"`` samples without a prediction (counted in ``n_missing``) or score
            them as all-zero maps (``"zero"``).
        max_batch_values: bound on resized map values held at once (memory control).
    """

    grid: int = DEFAULT_GRID
    alpha: float | None = None
    alpha_by_kind: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_ALPHA_BY_KIND))
    split_kind: str | None = None
    threshold_policy: str | None = None
    fixed_threshold: float = 0.5
    tau: float = DEFAULT_TAU
    iou_threshold: float = 0.5
    ciou_thresholds: tuple[float, ...] = (0.3, 0.5)
    auc_step: float = 0.05
    top_fraction: float = 0.25
    ap_full_curve: bool = False
    consensus: bool | None = None
    consensus_agreement: int = 2
    missing: str = "skip"
    max_batch_values: int = 1 << 24

    def __post_init__(self) -> None:
        problems = []
        if self.grid < 1:
            problems.append(f"grid must be >= 1, got {self.grid}")
        for name in ("tau", "iou_threshold", "top_fraction", "fixed_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.alpha is not None and not 0.0 <= self.alpha <= 1.0:
            problems.append(f"alpha must lie in [0, 1], got {self.alpha}")
        for kind, value in self.alpha_by_kind.items():
            if not 0.0 <= value <= 1.0:
                problems.append(f"alpha for {kind!r} must lie in [0, 1], got {value}")
        if any(not 0.0 <= t <= 1.0 for t in self.ciou_thresholds):
            problems.append(f"ciou thresholds must lie in [0, 1], got {self.ciou_thresholds}")
        if not 0.0 < self.auc_step <= 1.0:
            problems.append(f"auc_step must lie in (0, 1], got {self.auc_step}")
        if self.split_kind is not None and self.split_kind not in SPLIT_KINDS:
            problems.append(f"split_kind must be one of {SPLIT_KINDS}, got {self.split_kind!r}")
        if self.threshold_policy is not None and self.threshold_policy not in THRESHOLD_POLICIES:
            problems.append(
                f"threshold_policy must be one of {THRESHOLD_POLICIES}, "
                f"got {self.threshold_policy!r}"
            )
        if self.missing not in MISSING_POLICIES:
            problems.append(f"missing must be one of {MISSING_POLICIES}, got {self.missing!r}")
        if self.consensus_agreement < 1:
            problems.append("consensus_agreement must be >= 1")
        if problems:
            raise ConfigError("bad evaluation settings: " + "; ".join(problems))
        object.__setattr__(self, "ciou_thresholds", tuple(float(t) for t in self.ciou_thresholds))
        object.__setattr__(self, "alpha_by_kind", {**DEFAULT_ALPHA_BY_KIND, **self.alpha_by_kind})
