"""Scoring one annotated sample: its maps (resized to the grid) and manifest sample ->
:class:`ier.metrics.SampleScores`, the scalars every metric of the suite is computed from.

Holds the category-map lookup (class-agnostic maps and labels), the objects' ground-truth masks,
the sample's IoU and CIoU, its non-sounding maps (NSA), the box peaks of sounding and silent
objects and the pointing game (``docs/metrics.md``). ``ier.evaluate`` scores a split with it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ier.data.manifest import ObjectAnnotation, Sample
from ier.map_metrics import (
    binarize_with,
    box_mask,
    box_pixels,
    iou,
    no_sound_area,
    top_fraction_confidence,
)
from ier.metrics import SampleScores
from ier.predictions import AGNOSTIC_CLASS
from ier.protocol import EvalSettings


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
