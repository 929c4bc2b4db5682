"""Localization metrics: pure functions on arrays and a per-sample accumulator.

Definitions follow DSOL's evaluation code and SLAVC's evaluator; ``docs/metrics.md`` states each.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

DEFAULT_GRID = 224
"""Side of the square grid every map and box is scored on (DSOL and SLAVC use 224)."""
AUC_STEP = 0.05
"""Spacing of the success-rate thresholds 0, 0.05, ..., 1.0 (21 points, as in DSOL)."""

BoxLike = Sequence[float]


def resize_maps(maps: np.ndarray | torch.Tensor, grid: int = DEFAULT_GRID) -> np.ndarray:
    """Resize maps bilinearly to ``grid x grid``.

    Uses half-pixel centres without antialiasing (``align_corners=False``), which is what
    ``cv2.resize(map, (G, G))`` (``INTER_LINEAR``) computes in DSOL's evaluation.

    Args:
        maps: float array ``(..., h, w)``.
        grid: output side G in pixels.

    Returns:
        float32 array ``(..., G, G)``; the input itself (as float32) when already G x G.
    """
    if isinstance(maps, np.ndarray) and not maps.flags.writeable:
        maps = np.array(maps)  # torch cannot wrap read-only memory
    tensor = torch.as_tensor(maps).float()
    *lead, height, width = tensor.shape
    if (height, width) != (grid, grid):
        flat = tensor.reshape(-1, 1, height, width)
        tensor = F.interpolate(flat, size=(grid, grid), mode="bilinear", align_corners=False)
        tensor = tensor.reshape(*lead, grid, grid)
    return tensor.cpu().numpy()


def box_pixels(box: BoxLike, grid: int = DEFAULT_GRID) -> tuple[int, int, int, int]:
    """Pixel rows and columns a normalised box covers on a ``grid x grid`` mask.

    Following DSOL, each edge is multiplied by G and truncated to an integer, so pixel
    ``(row, col)`` is inside iff ``int(y0*G) <= row < int(y1*G)`` and
    ``int(x0*G) <= col < int(x1*G)``.

    Returns:
        ``(row_start, row_stop, col_start, col_stop)``, half-open.
    """
    x0, y0, x1, y1 = (float(v) * grid for v in box)
    return int(y0), int(y1), int(x0), int(x1)


def box_mask(
    boxes: Iterable[BoxLike],
    grid: int = DEFAULT_GRID,
    *,
    consensus: bool = False,
    agreement: int = 2,
) -> np.ndarray:
    """Ground-truth mask of a set of normalised ``(x0, y0, x1, y1)`` boxes.

    Args:
        boxes: the boxes; none gives an all-zero mask.
        grid: mask side G; pixel membership follows :func:`box_pixels`.
        consensus: treat each box as one annotator's and return Senocak et al.'s (CVPR 2018)
            consensus map ``min(count / agreement, 1)``, where ``count`` is the number of boxes
            covering the pixel (soft: a pixel one of three annotators marked counts 0.5).
        agreement: annotators needed for full weight in consensus mode (2 for Flickr-SoundNet).

    Returns:
        float32 ``(G, G)``: the union of the boxes (0 or 1), or the consensus map in [0, 1].
    """
    counts = np.zeros((grid, grid), dtype=np.float32)
    for box in boxes:
        r0, r1, c0, c1 = box_pixels(box, grid)
        if consensus:
            counts[r0:r1, c0:c1] += 1.0
        else:
            counts[r0:r1, c0:c1] = 1.0
    if consensus:
        return np.minimum(counts / float(agreement), 1.0)
    return counts


def binarize(maps: np.ndarray, alpha: float) -> np.ndarray:
    """Relative binarisation (DSOL): a pixel is on iff it exceeds ``alpha * max`` of its map.

    The comparison is strict, so an all-zero map has no pixel on, and a uniform map with
    ``alpha < 1`` has every pixel on.

    Args:
        maps: float ``(..., G, G)``; the max is taken per map over the last two axes.
        alpha: relative threshold in [0, 1].

    Returns:
        bool ``(..., G, G)``.
    """
    peak = maps.max(axis=(-2, -1), keepdims=True)
    return maps > alpha * peak


THRESHOLD_POLICIES = ("relative", "median", "absolute", "minmax")
"""How a map is binarised: ``relative`` ``map > alpha * max`` (DSOL); ``median`` the top half of
the pixels (LVS, EZ-VSL, SLAVC ``--relative_prediction``); ``absolute`` ``map >= t`` (SLAVC's
default ``pred_thr``); ``minmax`` ``t`` on the per-map min-max-normalised map."""


def binarize_with(
    maps: np.ndarray, policy: str, *, alpha: float = 0.1, threshold: float = 0.5
) -> np.ndarray:
    """Binarise maps by one of :data:`THRESHOLD_POLICIES`, per map over the last two axes.

    - ``relative``: :func:`binarize` (``map > alpha * max``).
    - ``median``: ``map >= v`` where ``v`` is element ``int(n / 2)`` of the map's ``n`` sorted
      pixels, EZ-VSL's/SLAVC's ``np.sort(pred.flatten())[int(n * 0.5)]`` (their min-max
      normalisation first is monotone and changes nothing). At least half the pixels are on; an
      all-zero or uniform map is entirely on.
    - ``absolute``: ``map >= threshold`` on the map as given (values in [0, 1]).
    - ``minmax``: ``(map - min) / (max - min) >= threshold``; a uniform map is compared as given
      (``normalize_img`` of LVS/EZ-VSL skips the division when ``max == min``).

    Args:
        maps: float ``(..., G, G)``.
        policy: one of :data:`THRESHOLD_POLICIES`.
        alpha: relative threshold of ``relative``.
        threshold: fixed value of ``absolute`` and ``minmax``.

    Returns:
        bool ``(..., G, G)``.
    """
    maps = np.asarray(maps)
    if policy == "relative":
        return binarize(maps, alpha)
    if policy == "absolute":
        return maps >= threshold
    axes = (-2, -1)
    if policy == "median":
        flat = maps.reshape(*maps.shape[:-2], -1)
        middle = flat.shape[-1] // 2
        value = np.partition(flat, middle, axis=-1)[..., middle]
        return maps >= value[..., None, None]
    if policy == "minmax":
        low, high = maps.min(axis=axes, keepdims=True), maps.max(axis=axes, keepdims=True)
        span = high - low
        normalised = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), maps)
        return normalised >= threshold
    raise ValueError(f"threshold policy must be one of {THRESHOLD_POLICIES}, got {policy!r}")


def iou(pred_mask: np.ndarray, gt_mask: np.ndarray) -> np.ndarray:
    """DSOL's/Senocak's cIoU of binary predictions against (possibly soft) ground truth.

    ``IoU = sum(P * G) / (sum(G) + sum(P * [G == 0]))``, which is the usual intersection over
    union for a binary G and Senocak's consensus IoU for a soft G. A zero denominator (no
    ground truth and no prediction) gives 0.

    Args:
        pred_mask: bool or {0, 1} array ``(..., G, G)``.
        gt_mask: float array ``(..., G, G)`` in [0, 1].

    Returns:
        float64 array of shape ``(...)`` (a 0-d array for single masks).
    """
    pred = np.asarray(pred_mask).astype(bool, copy=False)
    gt = np.asarray(gt_mask, dtype=np.float32)
    axes = (-2, -1)
    # Accumulate in float64 so that sums over large grids stay exact.
    inter = np.where(pred, gt, np.float32(0)).sum(axis=axes, dtype=np.float64)
    outside = np.count_nonzero(pred & (gt == 0), axis=axes)
    denom = gt.sum(axis=axes, dtype=np.float64) + outside
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, inter / safe, 0.0)


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


def no_sound_area(maps: np.ndarray, tau: float) -> float:
    """DSOL's NSA for one sample: fraction of pixels at or below ``tau`` in each given map
    (the maps of categories that are not sounding), averaged over the maps; NaN if none.

    Args:
        maps: float ``(K, G, G)`` in [0, 1].
        tau: absolute threshold (DSOL's code uses ``<=`` and 0.2 on class-softmax maps).
    """
    if maps.shape[0] == 0:
        return math.nan
    return float((maps <= tau).mean(axis=(-2, -1)).mean())


def top_fraction_confidence(sound_map: np.ndarray, fraction: float = 0.25) -> float:
    """SLAVC's sample confidence: the mean of the top ``ceil(fraction * n)`` of the ``n`` pixels.

    SLAVC computes ``np.sort(scores.flatten())[-n//4:].mean()``, i.e. the top ``ceil(n/4)``.
    """
    flat = np.asarray(sound_map, dtype=np.float64).ravel()
    count = max(1, math.ceil(fraction * flat.size))
    return float(np.partition(flat, flat.size - count)[flat.size - count :].mean())


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
