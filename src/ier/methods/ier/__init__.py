"""IEr, the Interference Eraser (Liu et al., AAAI 2022): the method, both stages.

- ``ier.methods.ier.model``: ``IERModel`` (stage-1 AV network, prototypes, the
  Audio-Instance-Identifier, the Cross-modal Referrer) and its pure helpers;
- ``ier.methods.ier.tasks``: the three training stages ``ier_av``, ``ier_aii``, ``ier_cmr``;
- here: the recipe (method.md §1.7) and its registration.
"""

from __future__ import annotations

from ier.config import DataConfig, EvalConfig, ExperimentConfig, StageConfig
from ier.methods import Method, register_method
from ier.methods.ier import tasks as _tasks  # noqa: F401  (registers the ier_* tasks)
from ier.methods.ier.model import IERModel, object_masks, offscreen_filter
from ier.models.config import model_config

__all__ = ["IER_STAGE2_FROZEN", "IERModel", "ier_recipe", "object_masks", "offscreen_filter"]


# (epochs of S1-a/b, S1-c, S2; batch size) per preset. ``quick`` is sized for ~45 min on 2 CPU
# cores on the ``default`` benchmark, ``short`` for ~9 min (12,000 clips: the bench budget,
# docs/baselines.md); ``paper`` follows DSOL (15 stage-1 epochs, 5 stage-2).
_IER_SCHEDULE: dict[str, tuple[int, int, int, int]] = {
    "tiny": (3, 2, 2, 16),
    "short": (2, 1, 1, 32),
    "quick": (8, 6, 6, 32),
    "cpu": (15, 10, 5, 32),
    "paper": (15, 10, 5, 32),
}


# Stage 2 keeps the audio side as stage 1 left it (docs/method.md §8, Q10): the audio prototypes
# P^a are frozen, and fine-tuning the audio encoder and the AII branch against them let the audio
# embedding drift away (AII NMI 52.5 -> 9.6 at the quick scale, docs/results.md).
IER_STAGE2_FROZEN = ("audio_backbone", "av_head.audio_proj", "identify")


def ier_recipe(name: str) -> ExperimentConfig:
    """IEr (method.md §1.7): S1-a/b ``ier_av``, S1-c ``ier_aii`` on solo clips; S2 ``ier_cmr``."""
    epochs_av, epochs_aii, epochs_cmr, batch = _IER_SCHEDULE[name]
    common = {"batch_size": batch, "lr": 1e-4, "lr_heads": 1e-3, "weight_decay": 1e-4}
    if name == "tiny":
        common.update(lr=1e-3, lr_heads=3e-3)
    stages = (
        StageConfig(name="av", task="ier_av", split="train/solo", epochs=epochs_av, **common),
        StageConfig(name="aii", task="ier_aii", split="train/solo", epochs=epochs_aii, **common),
        StageConfig(
            name="cmr",
            task="ier_cmr",
            split="train/unconstrained",
            epochs=epochs_cmr,
            negative_pooling="quadrants",
            freeze=IER_STAGE2_FROZEN,
            **common,
        ),
    )
    data = DataConfig(train_frames=4 if name == "paper" else 2)
    return ExperimentConfig(
        method="ier",
        preset=name,
        model=model_config(name, name="ier"),
        stages=stages,
        data=data,
        eval=EvalConfig(single_source_stage=1),
        log_every=5 if name == "tiny" else 20,
    )


register_method(Method(
    "ier", ier_recipe, label="IEr", order=70,
    summary="Interference Eraser: class-aware maps that erase off-screen sound and silent objects",
))  # fmt: skip
