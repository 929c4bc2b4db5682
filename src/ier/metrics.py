"""Localization metrics over a split: success rates and AUC, AP and max F1, ROC AUC, the
per-sample accumulator and the audio-set metrics.

What one sample's maps score (box masks, binarisation, IoU, no-sound area, confidence) is in
``ier.map_metrics`` and re-exported here. Definitions follow DSOL's evaluation code and SLAVC's
evaluator; ``docs/metrics.md`` states each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ier.map_metrics import (  # noqa: F401  (re-exported: the per-map metrics)
    DEFAULT_GRID,
    THRESHOLD_POLICIES,
    BoxLike,
    binarize,
    binarize_with,
    box_mask,
    box_pixels,
    iou,
    no_sound_area,
    resize_maps,
    top_fraction_confidence,
)

logger = logging.getLogger(__name__)

AUC_STEP = 0.05
"""Spacing of the success-rate thresholds 0, 0.05, ..., 1.0 (21 points, as in DSOL)."""


def success_thresholds(step: float = AUC_STEP) -> np.ndarray:
    """``[0, step, 2*step, ..., 1]`` computed as ``step * i``, as DSOL's and SLAVC's code does."""
    count = round(1.0 / step)
    return np.array([step * i for i in range(count + 1)], dtype=np.float64)


def success_rate(scores: Sequence[float] | np.ndarray, threshold: float) -> float:
    """Fraction of samples whose score is at least ``threshold`` (``iou@0.5`` etc.); NaN if none."""
    values = np.asarray(scores, dtype=np.float64)
    return float(np.mean(values >= threshold)) if values.size else math.nan


def success_auc(scores: Sequence[float] | np.ndarray, step: float = AUC_STEP) -> float:
    """DSOL's AUC: trapezoidal area under the success-rate curve ``r(t)`` for ``t`` in
    :func:`success_thresholds` (``sklearn.metrics.auc`` in DSOL and SLAVC); NaN if no scores.

    The value lies in [0, 1] and never decreases when any score increases.
    """
    values = np.asarray(scores, dtype=np.float64)
    if not values.size:
        return math.nan
    thresholds = success_thresholds(step)
    rates = (values[None, :] >= thresholds[:, None]).mean(axis=1)
    return float(np.sum((rates[1:] + rates[:-1]) * np.diff(thresholds)) / 2.0)


def _precision_recall(
    confidence: np.ndarray, hit: np.ndarray, positive: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """SLAVC's precision and recall at each threshold (detected iff confidence >= threshold).

    A detected positive with a hit is a TP, any other detection a FP, an undetected positive a
    FN; precision is 1 when nothing is detected and recall is 1 when there is no positive.
    """

    def count_at_least(values: np.ndarray) -> np.ndarray:
        ordered = np.sort(values)
        return ordered.size - np.searchsorted(ordered, thresholds, side="left")

    true_pos = count_at_least(confidence[positive & hit])
    detected = count_at_least(confidence)
    false_neg = int(positive.sum()) - count_at_least(confidence[positive])
    # detected = true_pos + false_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(detected > 0, true_pos / np.maximum(detected, 1), 1.0)
        recall_den = true_pos + false_neg
        recall = np.where(recall_den > 0, true_pos / np.maximum(recall_den, 1), 1.0)
    return precision.astype(np.float64), recall.astype(np.float64)


def _detection_arrays(
    confidence: Sequence[float],
    ious: Sequence[float],
    positive: Sequence[bool],
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    conf = np.asarray(confidence, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    hit = np.asarray(ious, dtype=np.float64) >= iou_threshold
    if not conf.shape == pos.shape == hit.shape:
        raise ValueError("confidence, ious and positive must have the same length")
    return conf, hit & pos, pos


def average_precision(
    confidence: Sequence[float],
    ious: Sequence[float],
    positive: Sequence[bool],
    *,
    iou_threshold: float = 0.5,
    stride: int = 1,
    full_curve: bool = False,
) -> float:
    """SLAVC's AP (``EvaluatorFull.calc_ap``) over positive and negative samples.

    Thresholds are the sorted confidences without the largest, in decreasing order (SLAVC keeps
    every ``max(1, N // 200)``-th; ``stride=1`` keeps all). With precision ``p_i`` and recall
    ``r_i`` at threshold ``i`` (detected iff confidence >= threshold), interpolated precision
    ``P_i = max_{j >= i} p_j`` and ``AP = sum_i P_i (r_{i+1} - r_i)``. A positive is a hit when
    its IoU is at least ``iou_threshold``; ``ious`` of negatives are ignored. NaN without
    positives.

    SLAVC's curve starts at the second-highest confidence, so the area between recall 0 and
    the first point is left out (about ``2 / n_positives``). ``full_curve=True`` also uses the
    highest confidence and starts the curve at recall 0 with the first point's precision.
    """
    conf, hit, pos = _detection_arrays(confidence, ious, positive, iou_threshold)
    if not pos.any():
        return math.nan
    ordered = np.sort(conf)
    thresholds = ordered[::-1][::stride] if full_curve else ordered[:-1][::-stride]
    if thresholds.size == 0:
        return 0.0
    precision, recall = _precision_recall(conf, hit, pos, thresholds)
    if full_curve:
        precision, recall = np.concatenate([precision[:1], precision]), np.r_[0.0, recall]
    interpolated = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum(interpolated[:-1] * np.diff(recall)))


def max_f1(
    confidence: Sequence[float],
    ious: Sequence[float],
    positive: Sequence[bool],
    *,
    iou_threshold: float = 0.5,
    stride: int = 1,
) -> float:
    """Maximum over thresholds of ``F1 = 2PR / (P + R)`` (0 when ``P + R = 0``), SLAVC style.

    Thresholds are the sorted confidences in increasing order (SLAVC keeps every
    ``max(1, N // 10)``-th; ``stride=1`` keeps all). NaN without positives.
    """
    conf, hit, pos = _detection_arrays(confidence, ious, positive, iou_threshold)
    if not pos.any():
        return math.nan
    thresholds = np.sort(conf)[::stride]
    precision, recall = _precision_recall(conf, hit, pos, thresholds)
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    return float(f1.max())


@dataclass(frozen=True)
class SampleScores:
    """What one sample contributes to the suite (scalars only, so memory stays small).

    Attributes:
        id: sample id.
        positive: the sample has at least one visible sounding object.
        iou: IoU of the binarised sound map against the union of sounding boxes (positives).
        ciou: mean over sounding categories of the per-category IoU (positives).
        confidence: SLAVC confidence of the sound map.
        nsa: mean no-sound area over the sample's non-sounding category maps, or None.
        silent_objects: number of visible silent objects.
        silent_hits: how many of them have their category map above tau inside their box.
        any_above_tau: some map exceeds tau somewhere.
        area_above_tau: fraction of the sound map above tau.
        peak: the sound map's maximum (the largest value of any class map).
        sounding_peaks: per visible sounding object with a map, the maximum of its category map
            inside its box.
        silent_peaks: the same for every visible silent object (``silent_hits`` counts those
            above tau).
        pointing_hits: sounding objects with a map whose category map peaks inside their box.
        pointing_tau_hits: of those, the ones whose peak also exceeds tau.
        pointing_objects: sounding objects with a map (the pointing game's denominator).
        pointing_area: their summed box areas (fractions of the image; the chance level).
    """

    id: str
    positive: bool
    iou: float | None
    ciou: float | None
    confidence: float
    nsa: float | None
    silent_objects: int
    silent_hits: int
    any_above_tau: bool
    area_above_tau: float
    peak: float = 0.0
    sounding_peaks: tuple[float, ...] = ()
    silent_peaks: tuple[float, ...] = ()
    pointing_hits: int = 0
    pointing_tau_hits: int = 0
    pointing_objects: int = 0
    pointing_area: float = 0.0


def _nan_to_none(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


class MetricAccumulator:
    """Collects :class:`SampleScores` and computes the suite; ``merge`` joins ranks' results."""

    def __init__(self) -> None:
        self.scores: list[SampleScores] = []

    def reset(self) -> None:
        """Forget every sample."""
        self.scores = []

    def update(self, scores: SampleScores) -> None:
        """Add one sample."""
        self.scores.append(scores)

    def merge(self, other: MetricAccumulator) -> None:
        """Add every sample of another accumulator (e.g. gathered from another rank)."""
        self.scores.extend(other.scores)

    def all_gather(self) -> None:
        """Replace the scores by every rank's scores, in rank order (no-op without DDP).

        Every rank must call it; afterwards ``compute`` gives the same result on each rank.
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        gathered: list[list[SampleScores] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, self.scores)
        self.scores = [s for part in gathered for s in (part or [])]

    def __len__(self) -> int:
        return len(self.scores)

    def compute(
        self,
        *,
        iou_threshold: float = 0.5,
        ciou_thresholds: Sequence[float] = (0.3, 0.5),
        auc_step: float = AUC_STEP,
        ap_full_curve: bool = False,
    ) -> dict[str, float | None]:
        """The metric values, each a fraction in [0, 1], or None when no sample qualifies.

        Keys: ``iou@T``, ``auc``, ``ciou@T`` per threshold, ``ciou_auc``, ``nsa``,
        ``silent_fp``, ``negative_fp``, ``pia``, ``ap``, ``max_f1``, ``pointing``,
        ``pointing_tau``, ``pointing_chance``, ``silent_auroc``, ``peak_auroc``.
        """
        positives = [s for s in self.scores if s.positive]
        negatives = [s for s in self.scores if not s.positive]
        ious = [s.iou for s in positives]
        cious = [s.ciou for s in positives]
        out: dict[str, float | None] = {
            f"iou@{iou_threshold:g}": _nan_to_none(success_rate(ious, iou_threshold)),
            "auc": _nan_to_none(success_auc(ious, auc_step)),
        }
        for threshold in ciou_thresholds:
            out[f"ciou@{threshold:g}"] = _nan_to_none(success_rate(cious, threshold))
        out["ciou_auc"] = _nan_to_none(success_auc(cious, auc_step))
        nsas = [s.nsa for s in self.scores if s.nsa is not None]
        out["nsa"] = float(np.mean(nsas)) if nsas else None
        silent = sum(s.silent_objects for s in self.scores)
        out["silent_fp"] = sum(s.silent_hits for s in self.scores) / silent if silent else None
        out["negative_fp"] = (
            float(np.mean([s.any_above_tau for s in negatives])) if negatives else None
        )
        out["pia"] = float(np.mean([s.area_above_tau for s in negatives])) if negatives else None
        detection = (
            [s.confidence for s in self.scores],
            [s.iou if s.iou is not None else 0.0 for s in self.scores],
            [s.positive for s in self.scores],
        )
        out["ap"] = _nan_to_none(
            average_precision(*detection, iou_threshold=iou_threshold, full_curve=ap_full_curve)
        )
        out["max_f1"] = _nan_to_none(max_f1(*detection, iou_threshold=iou_threshold))
        objects = sum(s.pointing_objects for s in self.scores)
        out["pointing"] = sum(s.pointing_hits for s in self.scores) / objects if objects else None
        out["pointing_tau"] = (
            sum(s.pointing_tau_hits for s in self.scores) / objects if objects else None
        )
        out["pointing_chance"] = (
            sum(s.pointing_area for s in self.scores) / objects if objects else None
        )
        out["silent_auroc"] = roc_auc(
            [p for s in self.scores for p in s.sounding_peaks],
            [p for s in self.scores for p in s.silent_peaks],
        )
        out["peak_auroc"] = roc_auc(
            [s.peak for s in positives], [s.peak for s in negatives]
        )
        return out


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """Area under the ROC curve of scores, positives against negatives (ties count half): the
    probability that a random positive scores above a random negative. None without both."""
    if not len(positives) or not len(negatives):
        return None
    pos, neg = np.asarray(positives, np.float64), np.asarray(negatives, np.float64)
    values = np.concatenate([pos, neg])  # Mann-Whitney U with the average rank of ties
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    _, start, counts = np.unique(sorted_values, return_index=True, return_counts=True)
    average = start + (counts + 1) / 2.0
    ranks = np.empty_like(values)
    ranks[order] = np.repeat(average, counts)
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def upper_quantile(values: Sequence[float], fraction: float) -> float:
    """The smallest threshold t among 0 and ``values`` such that at most ``fraction`` of
    ``values`` lie strictly above t (so a rate ``mean(v > t)`` is at most ``fraction``)."""
    ordered = np.sort(np.asarray(values, np.float64))[::-1]
    allowed = int(math.floor(fraction * len(ordered) + 1e-9))
    return float(ordered[allowed]) if allowed < len(ordered) else 0.0


def audio_set_metrics(
    probabilities: np.ndarray, heard: np.ndarray, *, relative_threshold: float = 0.5
) -> dict[str, float | None]:
    """Which categories a clip's audio holds (the Audio-Instance-Identifier's table, method.md
    §1.5), from per-category probabilities.

    Args:
        probabilities: (N, C) audio category probabilities.
        heard: (N, C) bool, the categories actually in the audio (sounding + off-screen).
        relative_threshold: A category is predicted when its probability is at least this
            fraction of the clip's top one.

    Returns:
        ``precision`` and ``recall`` of the predicted sets (micro, over all clip-category pairs)
        and ``map``, the mean over categories that have positives and negatives of the average
        precision of their probabilities (None where undefined).
    """
    from sklearn.metrics import average_precision_score

    q, gt = np.asarray(probabilities, np.float64), np.asarray(heard, bool)
    predicted = q >= relative_threshold * q.max(axis=1, keepdims=True)
    hits = float((predicted & gt).sum())
    aps = [average_precision_score(gt[:, c], q[:, c]) for c in range(gt.shape[1])
           if 0 < gt[:, c].sum() < len(gt)]  # fmt: skip
    return {
        "precision": hits / max(float(predicted.sum()), 1.0),
        "recall": hits / float(gt.sum()) if gt.sum() else None,
        "map": float(np.mean(aps)) if aps else None,
    }
