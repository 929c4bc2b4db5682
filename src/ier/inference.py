"""Run a model over manifest samples → ``Predictions``; evaluate a checkpoint on every test split.

``evaluate_checkpoint`` is what ``ier evaluate --checkpoint`` and the end of ``ier train`` call; it
scores maps through ``ier.evaluate.evaluate`` (the same code path as ``ier evaluate
--predictions``) and, for models with an Audio-Instance-Identifier, adds the AII metrics.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ier.checkpoint import load_model, update_meta
from ier.clustering import nmi
from ier.data.datasets import (
    AVDataset,
    eval_batches,
    list_splits,
    load_eval_split,
    read_classes,
)
from ier.data.decode import DecodeSpec, decode_sample
from ier.data.manifest import Sample
from ier.errors import ConfigError, DatasetError
from ier.evaluate import calibrate_tau, evaluate, split_kind
from ier.files import atomic_write_json
from ier.metrics import audio_set_metrics, roc_auc
from ier.models import check_object_prior
from ier.predictions import Predictions, save_predictions
from ier.presence import (
    calibrate_presence,
    has_cues,
    presence_metrics,
    presence_probability,
    sounding_targets,
)
from ier.protocol import EvalSettings

logger = logging.getLogger(__name__)

AII_RELATIVE_THRESHOLD = 0.5
"""A category is predicted audible when its probability is >= this fraction of the top one."""


def _dataset_from_samples(samples: Sequence[Sample], model: torch.nn.Module) -> AVDataset:
    cfg = model.config
    spec = DecodeSpec(cfg.input_size, 1, cfg.frontend.sample_rate, cfg.frontend.n_samples)
    decoded = [decode_sample(s, spec) for s in samples]
    frames = np.stack([f for f, _ in decoded])
    waves = np.stack([w for _, w in decoded])
    return AVDataset(samples, (), frames, waves, image_size=cfg.input_size, train=False)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def predict(
    model: torch.nn.Module,
    samples: AVDataset | Sequence[Sample],
    *,
    batch_size: int = 32,
    single_source: bool = False,
) -> Predictions:
    """Localization maps of ``model`` for every sample.

    Args:
        model: Any registered model (eval mode is set here).
        samples: An evaluation ``AVDataset`` (decoded, cached) or manifest samples (decoded now).
        batch_size: Clips per forward pass.
        single_source: Use ``localize_single`` (the stage-1 AV map, class ``"*"``; method.md §1.8)
            instead of the class-aware ``localize``.

    Returns:
        ``Predictions`` with maps (N, C, h, w) at feature resolution and scores (N, C).
    """
    return _localize_all(model, samples, batch_size, single_source)[0]


def predict_with_cues(
    model: torch.nn.Module, samples: AVDataset | Sequence[Sample], *, batch_size: int = 32
) -> tuple[Predictions, np.ndarray | None]:
    """``predict``'s class-aware predictions and, from the same forward passes, the decision cues
    ``localize`` returns ((N, C, len(DECISION_CUES)) float64; None for a model without them,
    ``ier.presence.has_cues``)."""
    return _localize_all(model, samples, batch_size, False)


@torch.no_grad()
def _localize_all(
    model: torch.nn.Module,
    samples: AVDataset | Sequence[Sample],
    batch_size: int,
    single_source: bool,
) -> tuple[Predictions, np.ndarray | None]:
    dataset = samples if isinstance(samples, AVDataset) else _dataset_from_samples(samples, model)
    model.eval()
    device = _device_of(model)
    want_cues = not single_source and has_cues(model)
    maps, scores, cues = [], [], []
    for batch in eval_batches(dataset, batch_size):
        images, waves = batch["image"].to(device), batch["wave"].to(device)
        if single_source:
            m = model.localize_single(images, waves)
            s = m.flatten(1).amax(dim=1, keepdim=True)
        else:
            out = model.localize(images, waves)
            m, s = out.maps, out.scores
            if want_cues:
                if out.cues is None:
                    raise ConfigError(f"{type(model).__name__}.localize returns no decision cues")
                cues.append(out.cues.double().cpu().numpy())
        maps.append(m.float().cpu().numpy())
        scores.append(s.float().cpu().numpy())
    classes = ("*",) if single_source else tuple(model.classes)
    preds = Predictions(
        ids=tuple(s.id for s in dataset.samples),
        classes=classes,
        maps=np.concatenate(maps).clip(0.0, 1.0),
        scores=np.concatenate(scores).clip(0.0, 1.0),
    )
    return preds, (np.concatenate(cues) if want_cues else None)


# --- AII metrics ---------------------------------------------------------------------------------


def _has_aii(model: torch.nn.Module) -> bool:
    return hasattr(model, "identity_scores") and bool(getattr(model, "has_prototypes", False))


@torch.no_grad()
def identity_scores(model: torch.nn.Module, dataset: AVDataset, batch_size: int) -> torch.Tensor:
    """s_k = cos(F^a_k, P^a_k) for every clip's audio: (N, K)."""
    model.eval()
    device = _device_of(model)
    out = []
    for batch in eval_batches(dataset, batch_size):
        fa, mid = model.encode_audio(batch["wave"].to(device))
        out.append(model.identity_scores(model.expand_audio(fa, mid)).cpu())
    return torch.cat(out)


def category_probabilities(model: torch.nn.Module, scores: torch.Tensor) -> np.ndarray:
    """q = softmax_k(s_k / tau_a) summed over each category's clusters: (N, K) → (N, C)."""
    q = torch.softmax(scores / model.config.ier.tau_a, dim=1).numpy()
    mapping = model.cluster_to_class.cpu().numpy()
    out = np.zeros((len(q), len(model.classes)), np.float64)
    for k, c in enumerate(mapping):
        if c >= 0:
            out[:, c] += q[:, k]
    return out


def aii_metrics(
    model: torch.nn.Module, dataset: AVDataset, *, batch_size: int = 32, mixture: bool
) -> dict[str, float | None]:
    """Audio-Instance-Identifier metrics (method.md §1.5 "AII evaluation").

    Solo splits: ``aii_nmi``, NMI between argmax_k s_k and the ground-truth category. Mixture
    splits: the categories heard (sounding + off-screen labels) against the predicted set
    {c : q_c >= 0.5 max q}: micro ``aii_precision`` and ``aii_recall``; ``aii_map`` = mean over
    categories (with positives and negatives) of the average precision of q_c.
    """
    scores = identity_scores(model, dataset, batch_size)
    if not mixture:
        gt = dataset.annotations["label"]
        keep = gt >= 0
        return {"aii_nmi": nmi(scores.argmax(1)[keep], gt[keep]) if bool(keep.any()) else None}
    index = {c: i for i, c in enumerate(model.classes)}
    heard = np.zeros((len(dataset), len(model.classes)), bool)
    for i, sample in enumerate(dataset.samples):
        for label in (*sample.sounding_labels, *sample.offscreen):
            if label in index:
                heard[i, index[label]] = True
    q = category_probabilities(model, scores)
    found = audio_set_metrics(q, heard, relative_threshold=AII_RELATIVE_THRESHOLD)
    return {f"aii_{k}": v for k, v in found.items()}


# --- whole checkpoint ----------------------------------------------------------------------------


def set_object_prior(model: torch.nn.Module, weight: float) -> torch.nn.Module:
    """Make ``model`` gate its maps by objectness with ``weight`` (``ModelConfig.object_prior``).

    Raises:
        ConfigError: ``weight`` outside [0, 1], or a model whose maps ignore the prior (IEr and
            OTS honour it: ``supports_object_prior``).
    """

    try:
        config = dataclasses.replace(model.config, object_prior=float(weight))
    except ValueError as exc:  # out of [0, 1]: ModelConfig validates it
        raise ConfigError(str(exc)) from None
    check_object_prior(type(model), config)
    model.config = config
    return model


VALIDATION_KEYS = ("pointing", "ciou_auc", "silent_fp", "peak_auroc")


@torch.no_grad()
def validate(model: torch.nn.Module, dataset: AVDataset, *, batch_size: int = 64) -> dict[str, Any]:
    """Quick scores of a model on a validation split during training: the pointing game and
    CIoU-AUC of its single-source map (``av_pointing``, ``av_ciou_auc``) and, when it has class
    maps, of those (``pointing``, ``ciou_auc``, ``silent_fp``, ``peak_auroc``). Restores the
    model's training mode."""

    was_training = model.training
    try:
        single = evaluate(predict(model, dataset, batch_size=batch_size, single_source=True),
                          dataset.samples)  # fmt: skip
        out = {"av_pointing": single["pointing"], "av_ciou_auc": single["ciou_auc"]}
        if tuple(model.classes) != ("*",):
            aware = evaluate(predict(model, dataset, batch_size=batch_size), dataset.samples)
            out.update({k: aware[k] for k in VALIDATION_KEYS})
        return out
    finally:
        model.train(was_training)


CALIBRATED_KEYS = ("silent_fp", "negative_fp", "pia", "nsa", "pointing_tau")
"""The tau-dependent metrics that are reported again at the calibrated operating point."""
CALIBRATION_SPLITS = ("val/wild", "val/negative")
"""Validation splits (training assets only) that choose each model's operating point."""
JOINT_SPLITS = {"test/wild+negative": ("test/wild", "test/negative")}
"""Joint evaluations: wild clips with on-screen sound and negative clips scored together give the
threshold-free ``peak_auroc`` (do the maps react to the sound at all?)."""


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] | None = None,
    out_dir: str | os.PathLike[str] | None,
    settings: Any = None,
    single_source_checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = 32,
    cache_dir: str | os.PathLike[str] | None = None,
    object_prior: float | None = None,
    calibrate: bool = True,
) -> dict[str, Any]:
    """Predict and score every test split; write ``predictions_<split>.npz`` and ``metrics.json``.

    Besides each split's ``ier.evaluate.evaluate`` metrics (and, for a model with an
    Audio-Instance-Identifier, the AII metrics): ``test/wild+negative``, both splits scored
    together (``peak_auroc``); and, when the data has the validation splits
    ``CALIBRATION_SPLITS``, the model's calibrated operating point (``calibration``: tau chosen on
    them by ``ier.evaluate.calibrate_tau``, never on test) with every class-aware split's
    tau-dependent metrics at that tau (``<key>@cal``, keys ``CALIBRATED_KEYS``).

    Args:
        checkpoint: Any ier checkpoint (``model.safetensors`` of a run).
        data_dir: Benchmark/prepared dataset folder.
        splits: Splits to evaluate (default: every ``test/*`` split).
        out_dir: Where predictions and ``metrics.json`` go (created); None writes no files.
        settings: ``ier.protocol.EvalSettings`` (default settings if None).
        single_source_checkpoint: Model for the maps of solo splits (method.md §1.8: the stage-1
            model); default ``checkpoint``. Solo splits are scored on its class-agnostic map.
        batch_size: Clips per forward pass.
        cache_dir: Decoded-data cache folder (default ``<data_dir>/.ier-cache``).
        object_prior: Override the models' ``object_prior`` (``set_object_prior``); None keeps
            the checkpoints' value.
        calibrate: Choose the operating point on the validation splits when they exist.

    Returns:
        ``{split: metrics}`` (plus ``test/wild+negative`` and ``calibration`` when available).
    """

    data_dir = Path(data_dir)
    out_dir = Path(out_dir) if out_dir is not None else None
    settings = settings or EvalSettings()
    model = load_model(checkpoint)
    single_model = load_model(single_source_checkpoint) if single_source_checkpoint else model
    if object_prior is not None:
        for m in {id(model): model, id(single_model): single_model}.values():
            set_object_prior(m, object_prior)
    splits = list(splits) if splits else list_splits(data_dir, "test/")
    if not splits:
        raise DatasetError(f"{data_dir}: no test splits (test/*/manifest.jsonl) to evaluate")
    classes = read_classes(data_dir)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    scored: dict[str, tuple[Predictions, list[Sample]]] = {}
    datasets: dict[str, AVDataset] = {}
    cues: dict[str, np.ndarray | None] = {}  # decision cues of the class-aware splits
    for split in splits:
        kind = split_kind(split)
        solo = kind == "solo"
        used = single_model if solo else model
        dataset = load_eval_split(data_dir, split, used, classes=classes, cache_dir=cache_dir,
                                  also_read_by=[model])  # aii_metrics reads it with ``model``
        if solo:
            preds = predict(used, dataset, batch_size=batch_size, single_source=True)
        else:
            preds, cues[split] = predict_with_cues(used, dataset, batch_size=batch_size)
        if out_dir is not None:
            save_predictions(out_dir / f"predictions_{split.split('/')[-1]}.npz", preds)
        metrics = evaluate(preds, dataset.samples, settings)
        if _has_aii(model) and kind != "negative":
            metrics.update(aii_metrics(model, dataset, batch_size=batch_size, mixture=not solo))
        results[split] = metrics
        if not solo:
            scored[split] = (preds, dataset.samples)
            datasets[split] = dataset
        logger.info("%s: %s", split, _brief(metrics))
    for name, parts in JOINT_SPLITS.items():
        if all(p in scored for p in parts):
            joined = concat_predictions([scored[p][0] for p in parts])
            results[name] = evaluate(joined, [s for p in parts for s in scored[p][1]], settings)
    available = set(list_splits(data_dir, "val/"))
    if calibrate and scored and set(CALIBRATION_SPLITS) <= available:
        val = [load_eval_split(data_dir, s, model, classes=classes, cache_dir=cache_dir)
               for s in CALIBRATION_SPLITS]  # fmt: skip
        val_runs = [predict_with_cues(model, d, batch_size=batch_size) for d in val]
        calibration = calibrate_tau(
            [preds for preds, _ in val_runs], [d.samples for d in val], settings=settings
        )
        calibration["splits"] = list(CALIBRATION_SPLITS)
        results["calibration"] = calibration
        at_tau = dataclasses.replace(settings, tau=calibration["tau"])
        for split, (preds, samples) in scored.items():
            again = evaluate(preds, samples, at_tau)
            results[split].update({f"{k}@cal": again[k] for k in CALIBRATED_KEYS})
        logger.info("calibrated tau %.3f on %s", calibration["tau"], ", ".join(CALIBRATION_SPLITS))
        if has_cues(model):
            presence = calibrate_presence(
                {name: (run[1], d) for name, run, d in zip(CALIBRATION_SPLITS, val_runs, val)},
                model.classes,
            )
            calibration["presence"] = presence
            joint: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for split, (preds, _) in scored.items():
                probabilities = presence_probability(cues[split], presence)
                found = presence_metrics(probabilities, preds.maps, datasets[split],
                                         model.classes, presence["tau"])  # fmt: skip
                auroc = found.pop("presence_auroc", None)
                results[split].update({f"{k}@cal": v for k, v in found.items()})
                if auroc is not None:
                    results[split]["presence_auroc"] = auroc
                joint[split] = (probabilities, sounding_targets(datasets[split], model.classes))
            for name, parts in JOINT_SPLITS.items():
                if all(p in joint for p in parts) and name in results:
                    prob = np.concatenate([joint[p][0] for p in parts])
                    target = np.concatenate([joint[p][1] for p in parts])
                    results[name]["presence_auroc"] = roc_auc(prob[target], prob[~target])
            logger.info("calibrated presence: tau %.3f, validation AUROC %.3f",
                        presence["tau"], presence["val_auroc"])  # fmt: skip
    if out_dir is not None:
        atomic_write_json(out_dir / "metrics.json", results, default=str)
    return results


def store_calibration(checkpoint: str | os.PathLike[str], results: dict[str, Any]) -> bool:
    """Write the calibrated operating point of ``evaluate_checkpoint``'s ``results`` into the
    checkpoint's metadata (``calibration``), where ``ier localize`` takes its default decision
    threshold from. A run owns its model file: ``ier train`` and ``ier bench`` call this for the
    models they trained; ``ier evaluate`` changes a checkpoint only when asked
    (``--store-calibration``). False when there is none."""
    calibration = results.get("calibration")
    if not calibration:
        return False
    update_meta(checkpoint, {"calibration": calibration})
    return True


def concat_predictions(parts: Sequence[Predictions]) -> Predictions:
    """Several splits' predictions of one model as one (same classes and map size)."""
    first = parts[0]
    if any(p.classes != first.classes or p.maps.shape[1:] != first.maps.shape[1:] for p in parts):
        raise DatasetError("cannot join predictions with different classes or map sizes")
    scores = None if any(p.scores is None for p in parts) else np.concatenate(
        [p.scores for p in parts])  # fmt: skip
    return Predictions(ids=tuple(i for p in parts for i in p.ids), classes=first.classes,
                       maps=np.concatenate([p.maps for p in parts]), scores=scores)  # fmt: skip


def _brief(metrics: dict[str, Any]) -> str:
    keys = ("iou@0.5", "auc", "ciou@0.3", "ciou_auc", "aii_nmi", "aii_map")
    return " ".join(f"{k}={metrics[k]:.3f}" for k in keys if isinstance(metrics.get(k), float))
