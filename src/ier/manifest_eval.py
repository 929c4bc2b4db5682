"""Evaluations that start from files (``ier evaluate``): a predictions file scored against a
manifest, and a checkpoint run over a standalone manifest, outside any benchmark folder.

Both refuse inputs that would give a table of empty metrics: a manifest without samples, and
predictions that match none of the manifest's samples.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ier.checkpoint import load_model
from ier.data.manifest import Sample, read_manifest
from ier.errors import ManifestError, PredictionsError
from ier.evaluate import evaluate, split_kind
from ier.files import atomic_write_json
from ier.inference import predict, set_object_prior
from ier.localization import resolve_model_path
from ier.predictions import load_predictions, save_predictions
from ier.protocol import EvalSettings

logger = logging.getLogger(__name__)

MANIFEST_OUTPUTS = ("metrics.json", "predictions.npz")
"""What ``evaluate_checkpoint_on_manifest`` writes in its output folder."""


def read_samples(manifest: str | os.PathLike[str]) -> list[Sample]:
    """The samples of a manifest that has some.

    Raises:
        ManifestError: Missing, malformed, or without a single sample.
    """
    samples = read_manifest(manifest)
    if not samples:
        raise ManifestError(f"{manifest}: has no samples, so there is nothing to evaluate")
    return samples


def evaluate_predictions_file(
    predictions: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    settings: Any = None,
) -> dict[str, Any]:
    """Score a predictions ``.npz`` against a manifest (``ier.evaluate.evaluate``).

    Raises:
        ManifestError: The manifest is missing, malformed or empty.
        PredictionsError: The predictions file is malformed, or none of its ids is in the
            manifest (with ``missing="skip"`` every metric would be empty).
    """

    samples = read_samples(manifest)
    loaded = load_predictions(predictions)
    settings = settings or EvalSettings()
    if settings.missing == "skip" and not any(loaded.index_of(s.id) is not None for s in samples):
        raise PredictionsError(
            f"{predictions}: none of its {len(loaded)} predictions is for one of the "
            f"{len(samples)} samples of {manifest} (ids such as {list(loaded.ids[:2])} vs "
            f"{[s.id for s in samples[:2]]}); were they made for another manifest?"
        )
    return evaluate(loaded, samples, settings)


def evaluate_checkpoint_on_manifest(
    checkpoint: str | os.PathLike[str],
    manifest: str | os.PathLike[str],
    *,
    settings: Any = None,
    out_dir: str | os.PathLike[str] | None = None,
    object_prior: float | None = None,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Run a checkpoint over a standalone manifest and score it; the class list is the
    checkpoint's.

    Splits of kind ``solo`` are scored on the class-agnostic map (``localize_single``), as
    ``ier.inference.evaluate_checkpoint`` does; the others on the class-aware maps.

    Args:
        checkpoint: A checkpoint path or a bundled model name (``ier-wild-small``).
        manifest: Any manifest (``docs/formats.md``); media paths are relative to its folder.
        settings: ``ier.protocol.EvalSettings``.
        out_dir: Where to write ``predictions.npz`` and ``metrics.json`` (None: nowhere).
        object_prior: Override the model's ``object_prior`` (``ier.inference.set_object_prior``).
        batch_size: Clips per forward pass.

    Returns:
        The metrics of ``ier.evaluate.evaluate``.

    Raises:
        CheckpointError: Unknown name or a bad checkpoint. ManifestError: A missing, malformed
            or empty manifest.
    """

    path = resolve_model_path(checkpoint)
    samples = read_samples(manifest)
    model = load_model(path)
    if object_prior is not None:
        set_object_prior(model, object_prior)
    kind = getattr(settings, "split_kind", None) or split_kind(samples[0].split)
    solo = kind == "solo" and callable(getattr(model, "localize_single", None))
    if not solo:
        known = set(model.classes)
        unknown = sorted({o.label for s in samples for o in s.objects} - known)
        if unknown:
            logger.warning(
                "%s: labels the checkpoint does not know (scored as all-zero maps): %s",
                manifest, unknown,
            )  # fmt: skip
    predictions = predict(model, samples, batch_size=batch_size, single_source=solo)
    metrics = evaluate(predictions, samples, settings)
    if out_dir is not None:
        out = Path(out_dir)
        save_predictions(out / "predictions.npz", predictions)
        atomic_write_json(out / "metrics.json", {str(manifest): metrics}, default=str)
    return metrics
