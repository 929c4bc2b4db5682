"""Metrics of one sample's maps on the scoring grid: resizing, box masks, binarisation policies,
IoU, no-sound area and SLAVC's confidence.

What a split scores from these per-sample numbers (success rates, AUC, AP, the accumulator) is in
``ier.metrics``; ``docs/metrics.md`` states each definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

DEFAULT_GRID = 224
"""Side of the square grid every map and box is scored on (DSOL and SLAVC use 224)."""

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
