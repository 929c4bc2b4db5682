"""The single evaluation path: predictions + manifest samples -> every metric (``docs/metrics.md``).

Training-time validation and ``ier evaluate`` both call :func:`evaluate`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ier.data.manifest import Sample
from ier.errors import ConfigError
from ier.map_metrics import resize_maps
from ier.metrics import MetricAccumulator, upper_quantile
from ier.predictions import Predictions
from ier.protocol import (
    DEFAULT_ALPHA_BY_KIND,
    EvalSettings,
    split_kind,
    split_protocol,
)
from ier.sample_scoring import score_sample

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

_BINARIZE_TEXT = {
    "relative": "map > alpha * max(map), per sample and class (DSOL)",
    "median": "map >= its median pixel (top half of the pixels), per sample and class (EZ-VSL)",
    "absolute": "map >= fixed_threshold (SLAVC pred_thr)",
    "minmax": "(map - min) / (max - min) >= fixed_threshold, per sample and class",
}


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
