"""The single evaluation path: predictions + manifest samples -> every metric (``docs/metrics.md``).

Training-time validation and ``ier evaluate`` both call :func:`evaluate`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ier.data.manifest import SPLIT_KINDS, ObjectAnnotation, Sample
from ier.errors import ConfigError
from ier.map_metrics import (
    THRESHOLD_POLICIES,
    binarize_with,
    box_mask,
    box_pixels,
    iou,
    no_sound_area,
    resize_maps,
    top_fraction_confidence,
)
from ier.metrics import MetricAccumulator, SampleScores, upper_quantile
from ier.predictions import AGNOSTIC_CLASS, Predictions
from ier.protocol import (
    DEFAULT_ALPHA_BY_KIND,
    DEFAULT_GRID,
    DEFAULT_TAU,
    split_kind,
    split_protocol,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ALPHA_BY_KIND",
    "EvalSettings",
    "calibrate_tau",
    "evaluate",
    "format_results",
    "format_table",
    "score_sample",
    "split_kind",
    "split_protocol",
]

MISSING_POLICIES = ("skip", "zero")
_BINARIZE_TEXT = {
    "relative": "map > alpha * max(map), per sample and class (DSOL)",
    "median": "map >= its median pixel (top half of the pixels), per sample and class (EZ-VSL)",
    "absolute": "map >= fixed_threshold (SLAVC pred_thr)",
    "minmax": "(map - min) / (max - min) >= fixed_threshold, per sample and class",
}


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


@dataclass(frozen=True)
class _Protocol:
    kind: str
    policy: str
    alpha: float
    consensus: bool


def _resolve_protocol(samples: Sequence[Sample], settings: EvalSettings) -> _Protocol:
    """The kind, policy, alpha and consensus rule of the samples' splits after the settings."""
    names = dict.fromkeys(s.split for s in samples) or {"solo": None}
    found = [split_protocol(name) for name in names]
    if len(found) > 1:  # negatives mixed into a split need neither an alpha nor a policy
        found = [p for p in found if p[0] != "negative"] or found
    kinds = sorted({settings.split_kind or kind for kind, _, _ in found})
    policies = sorted({settings.threshold_policy or policy for _, policy, _ in found})
    if len(policies) > 1:
        raise ConfigError(
            f"the samples come from splits with different threshold policies {policies}; "
            "evaluate each split separately, or pass threshold_policy explicitly"
        )
    if policies == ["relative"] and len(kinds) > 1 and settings.alpha is None:
        raise ConfigError(
            f"the samples come from splits of different kinds {kinds}; "
            "evaluate each split separately, or pass alpha (or split_kind) explicitly"
        )
    alpha = settings.alpha if settings.alpha is not None else settings.alpha_by_kind[kinds[0]]
    consensus = settings.consensus
    if consensus is None:
        consensus = any(rule for _, _, rule in found)
    return _Protocol(kinds[0], policies[0], alpha, consensus)


def _object_mask(obj: ObjectAnnotation, settings: EvalSettings) -> np.ndarray:
    if settings.consensus and obj.annotators:
        return box_mask(
            obj.annotators,
            settings.grid,
            consensus=True,
            agreement=settings.consensus_agreement,
        )
    return box_mask([obj.box], settings.grid)


def _union(masks: list[np.ndarray], grid: int) -> np.ndarray:
    return np.maximum.reduce(masks) if masks else np.zeros((grid, grid), np.float32)


class _CategoryMaps:
    """Looks up a category's map; a class-agnostic map serves every category, a class-agnostic
    label ``"*"`` is matched by the max over the classes (the sound map), a missing category's
    map is all-zero and its label is recorded."""

    def __init__(
        self,
        maps: np.ndarray,
        classes: Sequence[str],
        missing: set[str] | None,
        sound_map: np.ndarray,
    ) -> None:
        self.maps, self.missing, self.sound_map = maps, missing, sound_map
        self.agnostic = tuple(classes) == (AGNOSTIC_CLASS,)
        self.index = {name: i for i, name in enumerate(classes)}
        self.zero = np.zeros(maps.shape[-2:], np.float32)

    def has(self, label: str) -> bool:
        """Whether ``label`` has a map of its own (or the class-agnostic one)."""
        return self.agnostic or label == AGNOSTIC_CLASS or label in self.index

    def __getitem__(self, label: str) -> np.ndarray:
        if self.agnostic:
            return self.maps[0]
        if label == AGNOSTIC_CLASS:
            return self.sound_map
        if label not in self.index:
            if self.missing is not None:
                self.missing.add(label)
            return self.zero
        return self.maps[self.index[label]]


def _localization(
    sound_map: np.ndarray,
    lookup: _CategoryMaps,
    sample: Sample,
    alpha: float,
    settings: EvalSettings,
) -> tuple[float, float]:
    """(IoU of the sound map vs all sounding boxes, mean per-category IoU) of a positive sample."""
    policy, fixed = settings.threshold_policy or "relative", settings.fixed_threshold

    def on(score_map: np.ndarray) -> np.ndarray:
        return binarize_with(score_map, policy, alpha=alpha, threshold=fixed)

    sounding = [o for o in sample.objects if o.sounding]
    gt = _union([_object_mask(o, settings) for o in sounding], settings.grid)
    sample_iou = float(iou(on(sound_map), gt))
    per_class = []
    for label in sample.sounding_labels:
        masks = [_object_mask(o, settings) for o in sounding if o.label == label]
        gt_label = _union(masks, settings.grid)
        per_class.append(float(iou(on(lookup[label]), gt_label)))
    return sample_iou, float(np.mean(per_class))


def _non_sounding_maps(maps: np.ndarray, classes: Sequence[str], sample: Sample) -> np.ndarray:
    """Maps of the prediction's classes not sounding in the sample; "*" only on negatives.

    A sounding object labelled "*" (class-agnostic ground truth) may be of any class, so then no
    class map counts as non-sounding.
    """
    sounding = set(sample.sounding_labels)
    if tuple(classes) == (AGNOSTIC_CLASS,):
        return maps[:1] if sample.is_negative else maps[:0]
    if AGNOSTIC_CLASS in sounding:
        return maps[:0]
    return maps[[i for i, name in enumerate(classes) if name not in sounding]]


def score_sample(
    maps: np.ndarray,
    classes: Sequence[str],
    sample: Sample,
    *,
    alpha: float,
    settings: EvalSettings,
    labels_without_map: set[str] | None = None,
) -> SampleScores:
    """Score one sample's maps (already resized to the grid).

    Args:
        maps: float ``(C, G, G)`` in [0, 1], one map per entry of ``classes``.
        classes: the prediction's categories; ``("*",)`` for a class-agnostic map.
        sample: the annotated sample.
        alpha: relative binarisation threshold (used by the ``relative`` policy).
        settings: the other thresholds and policies, used as given: ``threshold_policy`` None
            means ``relative`` and ``consensus`` None means off (``evaluate`` resolves both from
            the split's preset first).
        labels_without_map: if given, labels the sample needs but ``classes`` lacks are added.
    """
    tau = settings.tau
    sound_map = maps.max(axis=0)
    lookup = _CategoryMaps(maps, classes, labels_without_map, sound_map)
    positive = not sample.is_negative
    sample_iou, sample_ciou = (
        _localization(sound_map, lookup, sample, alpha, settings) if positive else (None, None)
    )
    nsa = no_sound_area(_non_sounding_maps(maps, classes, sample), tau)
    silent = [o for o in sample.objects if not o.sounding]
    silent_peaks = tuple(_box_peak(lookup[o.label], o.box, settings.grid) for o in silent)
    sounding = [o for o in sample.objects if o.sounding and lookup.has(o.label)]
    pointing = [_points_at(lookup[o.label], o.box, tau) for o in sounding]
    above = sound_map > tau
    return SampleScores(
        id=sample.id,
        positive=positive,
        iou=sample_iou,
        ciou=sample_ciou,
        confidence=top_fraction_confidence(sound_map, settings.top_fraction),
        nsa=None if math.isnan(nsa) else nsa,
        silent_objects=len(silent),
        silent_hits=sum(p > tau for p in silent_peaks),
        any_above_tau=bool(above.any()),
        area_above_tau=float(above.mean()),
        peak=float(sound_map.max()),
        sounding_peaks=tuple(_box_peak(lookup[o.label], o.box, settings.grid) for o in sounding),
        silent_peaks=silent_peaks,
        pointing_hits=sum(hit for hit, _ in pointing),
        pointing_tau_hits=sum(hit and fired for hit, fired in pointing),
        pointing_objects=len(pointing),
        pointing_area=sum((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) for o in sounding),
    )


def _box_peak(score_map: np.ndarray, box: tuple[float, ...], grid: int) -> float:
    """The map's maximum over the pixels a box covers (``box_pixels``); 0 for an empty box."""
    r0, r1, c0, c1 = box_pixels(box, grid)
    inside = score_map[r0:r1, c0:c1]
    return float(inside.max()) if inside.size else 0.0


def _points_at(score_map: np.ndarray, box: tuple[float, ...], tau: float) -> tuple[bool, bool]:
    """(the map's first argmax pixel has its centre inside the box, and that peak exceeds tau)."""
    g_rows, g_cols = score_map.shape
    row, col = np.unravel_index(int(score_map.argmax()), score_map.shape)
    x0, y0, x1, y1 = box
    inside = x0 <= (col + 0.5) / g_cols <= x1 and y0 <= (row + 0.5) / g_rows <= y1
    return bool(inside), bool(inside and score_map[row, col] > tau)


def _batches(count: int, per_sample: int, budget: int) -> list[slice]:
    size = max(1, budget // max(per_sample, 1))
    return [slice(i, i + size) for i in range(0, count, size)]


def _score_all(
    predictions: Predictions,
    samples: list[Sample],
    rows: list[int | None],
    protocol: _Protocol,
    settings: EvalSettings,
) -> tuple[MetricAccumulator, set[str]]:
    """Score every sample, resizing maps one bounded batch at a time."""
    accumulator = MetricAccumulator()
    labels_without_map: set[str] = set()
    channels, grid = len(predictions.classes), settings.grid
    for batch in _batches(len(rows), channels * grid * grid, settings.max_batch_values):
        present = [r for r in rows[batch] if r is not None]
        resized = iter(resize_maps(predictions.maps[present], grid) if present else ())
        for sample, row in zip(samples[batch], rows[batch]):
            if row is None and settings.missing == "skip":
                continue
            maps = np.zeros((channels, grid, grid), np.float32) if row is None else next(resized)
            scores = score_sample(
                maps,
                predictions.classes,
                sample,
                alpha=protocol.alpha,
                settings=settings,
                labels_without_map=labels_without_map,
            )
            accumulator.update(scores)
    return accumulator, labels_without_map


def _record(
    settings: EvalSettings, protocol: _Protocol, classes: Sequence[str], labels: set[str]
) -> dict[str, Any]:
    """The ``settings`` entry of the results: every setting as resolved for this split."""
    recorded = dataclasses.asdict(settings)
    recorded.update(
        alpha=protocol.alpha if protocol.policy == "relative" else None,
        split_kind=protocol.kind,
        classes=list(classes),
        labels_without_map=sorted(labels),
        resize="bilinear, half-pixel centres (cv2.resize INTER_LINEAR)",
        binarize=_BINARIZE_TEXT[protocol.policy],
        ciou_thresholds=list(settings.ciou_thresholds),
    )
    del recorded["max_batch_values"]
    return recorded


def evaluate(
    predictions: Predictions,
    samples: Sequence[Sample],
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """Compute the whole metric suite for one split.

    Args:
        predictions: maps for (some of) the samples; extra ids are ignored.
        samples: the split's manifest samples.
        settings: thresholds and policies; defaults as documented in ``docs/metrics.md``. Unset
            ``alpha``, ``threshold_policy`` and ``consensus`` follow the split (its preset or kind).

    Returns:
        ``{"iou@0.5", "auc", "ciou@0.3", "ciou@0.5", "ciou_auc", "nsa", "silent_fp",
        "negative_fp", "pia", "ap", "max_f1", "pointing", "pointing_tau", "pointing_chance",
        "silent_auroc", "peak_auroc", "n", "n_missing", "split", "settings"}``: metric values
        are fractions in [0, 1] or None where the split lacks the samples they need (e.g.
        ``peak_auroc`` needs positive and negative samples in one call); ``settings`` records
        every threshold and policy used.
    """
    settings = settings or EvalSettings()
    samples = list(samples)
    protocol = _resolve_protocol(samples, settings)
    resolved = dataclasses.replace(
        settings, threshold_policy=protocol.policy, consensus=protocol.consensus
    )
    rows = [predictions.index_of(s.id) for s in samples]
    missing = [s.id for s, r in zip(samples, rows) if r is None]
    if missing:
        how = "skipped" if settings.missing == "skip" else "scored as all-zero maps"
        logger.warning(
            "%d of %d samples have no prediction (%s), e.g. %s",
            *(len(missing), len(samples), how, missing[:3]),
        )
    extra = len(predictions) - (len(samples) - len(missing))
    if extra > 0:
        logger.info("%d predictions have no sample in the manifest; ignored", extra)
    accumulator, labels = _score_all(predictions, samples, rows, protocol, resolved)
    if labels:
        # Usually the silent distractors' names (never a sound class, so the model has no map for
        # them): expected, so the message is short; settings["labels_without_map"] has them all.
        names = sorted(labels)
        logger.warning(
            "%d labels without a map were scored as all-zero maps (e.g. %s)",
            *(len(names), ", ".join(names[:3])),
        )
    results: dict[str, Any] = accumulator.compute(
        iou_threshold=settings.iou_threshold,
        ciou_thresholds=settings.ciou_thresholds,
        auc_step=settings.auc_step,
        ap_full_curve=settings.ap_full_curve,
    )
    results.update(
        n=len(samples),
        n_missing=len(missing),
        split="+".join(dict.fromkeys(s.split for s in samples)),
        settings=_record(resolved, protocol, predictions.classes, labels),
    )
    return results


def _threshold_text(settings: Mapping[str, Any]) -> str:
    policy = settings.get("threshold_policy") or "relative"
    if policy == "relative":
        return f"alpha={settings.get('alpha')}"
    if policy in ("absolute", "minmax"):
        return f"{policy} {settings.get('fixed_threshold')}"
    return str(policy)


def _is_number_or_none(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def format_results(results: Mapping[str, Any]) -> str:
    """All of ``evaluate_checkpoint``'s results: one table per split (the joint
    ``test/wild+negative`` included) and the calibrated operating point."""
    parts = [format_table(v) for k, v in results.items() if k != "calibration"]
    calibration = results.get("calibration")
    if calibration:
        parts.append(
            f"calibrated operating point: tau = {calibration['tau']:.3f}, chosen on "
            f"{' + '.join(calibration['splits'])} for at most {100 * calibration['budget']:g} % "
            "false positives; the '@cal' rows above are at this tau"
        )
    return "\n\n".join(parts)


def format_table(results: Mapping[str, Any]) -> str:
    """A readable table of a results dict: metric values as percentages, then counts."""
    settings = results.get("settings", {})
    header = (
        f"split {results.get('split', '?')} ({settings.get('split_kind', '?')}): "
        f"n={results.get('n')}, missing={results.get('n_missing')}, "
        f"threshold={_threshold_text(settings)}, tau={settings.get('tau')}, "
        f"grid={settings.get('grid')}"
    )
    lines = [header, f"{'metric':<12} {'value':>8}"]
    for key, value in results.items():
        if key in ("n", "n_missing", "split", "settings") or not _is_number_or_none(value):
            continue
        shown = "-" if value is None else f"{100.0 * value:7.2f}%"
        lines.append(f"{key:<12} {shown:>8}")
    if settings.get("labels_without_map"):
        lines.append(f"labels without a map (scored as zero): {settings['labels_without_map']}")
    return "\n".join(lines)


CALIBRATION_BUDGET = 0.05
"""Default false-positive budget of ``calibrate_tau``."""


def calibrate_tau(
    predictions: Sequence[Predictions],
    samples: Sequence[Sequence[Sample]],
    *,
    budget: float = CALIBRATION_BUDGET,
    settings: EvalSettings | None = None,
) -> dict[str, Any]:
    """A per-model operating point tau, chosen on validation splits (never on test).

    tau is the smallest threshold at which at most ``budget`` of the negative clips would fire
    (``negative_fp``: a map above tau anywhere) and at most ``budget`` of the visible silent
    objects would be marked (``silent_fp``: their category map above tau inside their box).

    Args:
        predictions: One ``Predictions`` per validation split.
        samples: Their manifest samples, in the same order.
        budget: The false-positive budget (0.05: 5 %).
        settings: Grid and map settings (the default otherwise).

    Returns:
        ``{"tau", "budget", "n_negative", "n_silent", "tau_negative", "tau_silent"}``: tau and
        the thresholds each rate alone would need (None where the splits have no such sample).
    """
    if not 0.0 <= budget < 1.0:
        raise ConfigError(f"budget must lie in [0, 1), got {budget}")
    settings = settings or EvalSettings()
    negative_peaks: list[float] = []
    silent_peaks: list[float] = []
    for preds, split_samples in zip(predictions, samples, strict=True):
        protocol = _resolve_protocol(list(split_samples), settings)
        resolved = dataclasses.replace(
            settings, threshold_policy=protocol.policy, consensus=protocol.consensus
        )
        rows = [preds.index_of(s.id) for s in split_samples]
        accumulator, _ = _score_all(preds, list(split_samples), rows, protocol, resolved)
        for scores in accumulator.scores:
            if not scores.positive:
                negative_peaks.append(scores.peak)
            silent_peaks.extend(scores.silent_peaks)
    tau_negative = upper_quantile(negative_peaks, budget) if negative_peaks else None
    tau_silent = upper_quantile(silent_peaks, budget) if silent_peaks else None
    found = [t for t in (tau_negative, tau_silent) if t is not None]
    if not found:
        raise ConfigError("calibration needs negative clips or silent objects in its splits")
    return {
        "tau": max(found), "budget": budget, "n_negative": len(negative_peaks),
        "n_silent": len(silent_peaks), "tau_negative": tau_negative, "tau_silent": tau_silent,
    }  # fmt: skip
