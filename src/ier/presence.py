"""Calibrated presence: the probability that a class is sounding *and* on screen, from the
evidence a model returns with its maps (``LocalizationOutput.cues``, named ``DECISION_CUES``).

A model's own scores (the peak of a class map) separate sounding from silent scenes only weakly
on held-out recordings and images (docs/results.md, "A calibrated decision"). The cues each carry
part of the answer: the audio's probability of the category (is it heard?), the peak of its
visual map (is it visible?), the peak of its class map (is it visible where the sound matches?),
whether the window is audible at all, and the peak of the class-agnostic audio-visual map (does
the sound match anything on screen?). ``fit_presence`` combines them with a
logistic regression fitted on the validation splits (``ier.evaluate.CALIBRATION_SPLITS``, built
from training material, never the test splits) and picks the decision threshold there, like
``ier.evaluate.calibrate_tau`` does for the map threshold. Six numbers, shared by every class,
are fitted: the model itself is not changed. The result is stored in the checkpoint's
``calibration`` metadata (``calibration["presence"]``), where ``ier localize`` reads it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ier.data.datasets import AVDataset
from ier.errors import ConfigError
from ier.evaluate import split_kind
from ier.models.output import DECISION_CUES

PRESENCE_BUDGET = 0.10
"""Default false-positive budget: at most this fraction of validation negative clips (no
sounding object on screen) may have any class at or above the presence threshold."""

REGULARISATION = 1.0
"""Inverse L2 strength of the logistic regression (scikit-learn's ``C``)."""


def has_cues(model: torch.nn.Module) -> bool:
    """True when ``model.localize`` returns ``cues``: the models that give them say so with a
    true ``provides_decision_cues`` (IEr once its prototypes exist)."""
    return bool(getattr(model, "provides_decision_cues", False))


def sounding_targets(dataset: AVDataset, classes: Sequence[str]) -> np.ndarray:
    """(N, C) bool: class c is a sounding object on screen in clip i (its manifest record)."""
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(dataset), len(classes)), bool)
    for i, sample in enumerate(dataset.samples):
        for obj in sample.objects:
            if obj.sounding and obj.label in index:
                y[i, index[obj.label]] = True
    return y


def presence_usable(presence: Mapping[str, Any]) -> bool:
    """Whether this version gives every cue a stored presence was fitted on (a presence fitted
    before a cue was added stays usable; one naming a cue this version lacks does not)."""
    names = list(presence.get("cues") or [])
    return bool(names) and set(names) <= set(DECISION_CUES)


def presence_probability(cues: np.ndarray | torch.Tensor, presence: Mapping[str, Any]):
    """sigmoid(w . cues + b), with ``cues`` (..., len(DECISION_CUES)) as a model gives them and
    ``w`` the weights of the cues the presence names, in its order (numpy or torch, same type
    back)."""
    if not presence_usable(presence):
        raise ConfigError(
            f"presence calibration uses cues {presence.get('cues')}, this version gives "
            f"{list(DECISION_CUES)}: recalibrate with `ier evaluate --checkpoint CKPT --data DIR "
            "--store-calibration`"
        )
    columns = [DECISION_CUES.index(name) for name in presence["cues"]]
    weights, bias = presence["weights"], float(presence["bias"])
    if isinstance(cues, torch.Tensor):
        w = torch.tensor(weights, dtype=cues.dtype, device=cues.device)
        return torch.sigmoid(cues[..., columns] @ w + bias)
    picked = np.asarray(cues)[..., columns]
    return 1.0 / (1.0 + np.exp(-(picked @ np.asarray(weights) + bias)))


def budget_threshold(clip_max: np.ndarray, budget: float) -> float:
    """The smallest threshold at which at most floor(``budget`` x M) of the M negative clips
    (their highest class value ``clip_max`` (M,)) are at or above it; ``budget`` in (0, 1)."""
    k = int(math.floor(budget * len(clip_max)))  # how many negative clips may light up
    return float(np.nextafter(np.sort(clip_max)[::-1][k], np.inf))


def fit_presence(
    positives: tuple[np.ndarray, np.ndarray],
    negatives: np.ndarray,
    *,
    budget: float = PRESENCE_BUDGET,
    splits: Sequence[str] = (),
    cues: Sequence[str] = DECISION_CUES,
) -> dict[str, Any]:
    """Fit the presence model and its threshold on validation clips.

    Args:
        positives: (cues (N, C, F), targets (N, C) bool) of clips with sounding objects on screen
            (``val/wild``); every (clip, class) pair is one example.
        negatives: cues (M, C, F) of clips where nothing on screen sounds (``val/negative``);
            every pair is a negative example.
        budget: Largest fraction of negative clips allowed to light up at the threshold.
        splits: Names of the splits, recorded with the result.
        cues: The ``DECISION_CUES`` to fit on (default all; a subset measures what a cue adds).

    Returns:
        JSON-able ``{"cues", "weights", "bias", "tau", "budget", "splits", "val_auroc",
        "val_negative_fp", "val_marked"}``; ``tau`` is the smallest threshold at which at most
        ``budget`` of the negative clips have any class at or above it.
    """
    from sklearn.linear_model import LogisticRegression  # lazy: only calibration needs it

    from ier.metrics import roc_auc

    names = list(cues)
    values, targets = positives
    if not 0.0 < budget < 1.0:
        raise ConfigError(f"presence budget must be in (0, 1), got {budget}")
    if values.shape[:2] != targets.shape or values.shape[2:] != negatives.shape[2:]:
        raise ConfigError(
            f"cue shapes disagree: positives {values.shape} with targets {targets.shape}, "
            f"negatives {negatives.shape}"
        )
    if not targets.any() or len(negatives) == 0:
        raise ConfigError("presence calibration needs clips with sounding objects and negatives")
    if not names or not set(names) <= set(DECISION_CUES) or len(set(names)) != len(names):
        raise ConfigError(f"presence cues must be distinct names from {list(DECISION_CUES)}, "
                          f"got {names}")  # fmt: skip
    columns = [DECISION_CUES.index(name) for name in names]
    n_cues = len(columns)
    x = np.concatenate([values[..., columns].reshape(-1, n_cues),
                        negatives[..., columns].reshape(-1, n_cues)])  # fmt: skip
    y = np.concatenate(
        [targets.reshape(-1), np.zeros(negatives.shape[0] * negatives.shape[1], bool)]
    )
    fit = LogisticRegression(C=REGULARISATION, max_iter=5000).fit(x, y)
    presence: dict[str, Any] = {
        "cues": names,
        "weights": [float(w) for w in fit.coef_[0]],
        "bias": float(fit.intercept_[0]),
    }
    p_pos, p_neg = presence_probability(values, presence), presence_probability(negatives, presence)
    clip_max = p_neg.max(axis=1)
    tau = budget_threshold(clip_max, budget)
    presence.update(
        tau=tau,
        budget=float(budget),
        splits=list(splits),
        val_auroc=roc_auc(p_pos[targets], np.concatenate([p_pos[~targets], p_neg.reshape(-1)])),
        val_negative_fp=float((clip_max >= tau).mean()),
        val_marked=float((p_pos.max(axis=1) >= tau).mean()),
    )  # fmt: skip
    return presence


def calibrate_presence(
    splits: Mapping[str, tuple[np.ndarray, AVDataset]],
    classes: Sequence[str],
    *,
    budget: float = PRESENCE_BUDGET,
) -> dict[str, Any]:
    """``fit_presence`` on validation splits ``{name: (cues (N, C, F), dataset)}`` (the cues of
    ``ier.inference.predict_with_cues``): clips of negative splits (kind ``negative``) are
    negatives, every other split gives positives and negatives per class."""
    positive_cues, positive_targets, negative_cues = [], [], []
    for name, (cues, dataset) in splits.items():
        if split_kind(name) == "negative":
            negative_cues.append(cues)
        else:
            positive_cues.append(cues)
            positive_targets.append(sounding_targets(dataset, classes))
    if not positive_cues or not negative_cues:
        raise ConfigError("presence calibration needs a negative split and a split with sound")
    return fit_presence(
        (np.concatenate(positive_cues), np.concatenate(positive_targets)),
        np.concatenate(negative_cues), budget=budget, splits=list(splits),
    )  # fmt: skip


def _peak_inside(maps: np.ndarray, boxes: Sequence[Sequence[float]]) -> bool:
    """The argmax of one (h, w) map, as the centre of its cell in [0, 1]^2, lies in a box."""
    h, w = maps.shape
    row, col = np.unravel_index(int(np.argmax(maps)), (h, w))
    x, y = (col + 0.5) / w, (row + 0.5) / h
    return any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)


def presence_metrics(
    probabilities: np.ndarray,
    maps: np.ndarray,
    dataset: AVDataset,
    classes: Sequence[str],
    tau: float,
) -> dict[str, float]:
    """What the overlay of ``ier localize`` would draw on one split, clip by clip, at ``tau``.

    A class is drawn when its presence probability (``probabilities`` (N, C)) is at least
    ``tau``, at the peak of its map (``maps`` (N, C, h, w)). Returns ``presence_marked``, the
    fraction of clips with something drawn, and, when the split has sounding objects,
    ``presence_hit``, the fraction of clips where some drawn class's peak lies in the box of a
    sounding object of that class, and ``presence_auroc``, ROC AUC of the probabilities of
    (clip, class) pairs that sound on screen against every other pair.
    """
    from ier.metrics import roc_auc

    drawn = probabilities >= tau
    out = {"presence_marked": float(drawn.any(axis=1).mean()) if len(drawn) else 0.0}
    targets = sounding_targets(dataset, classes)
    if targets.any():
        index = {c: i for i, c in enumerate(classes)}
        hits = 0
        for i, sample in enumerate(dataset.samples):
            boxes: dict[int, list] = {}
            for obj in sample.objects:
                if obj.sounding and obj.label in index:
                    boxes.setdefault(index[obj.label], []).append(obj.box)
            hits += any(_peak_inside(maps[i, c], boxes[c]) for c in np.nonzero(drawn[i])[0]
                        if c in boxes)  # fmt: skip
        out["presence_hit"] = hits / len(drawn)
        out["presence_auroc"] = roc_auc(probabilities[targets], probabilities[~targets])
    return out
