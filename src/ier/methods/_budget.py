"""What every method's recipe shares: IEr's training budget at each preset, and the recipe shapes
the baselines use (one task on train/solo then on train/unconstrained, for IEr's epochs on each).
Not a method module (discovery skips names that start with an underscore).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ier.config import DataConfig, EvalConfig, ExperimentConfig, StageConfig
from ier.methods.ier import ier_recipe
from ier.models.config import model_config


@dataclass(frozen=True)
class Budget:
    """A preset's training budget, taken from IEr's recipe so every method gets the same passes.

    Attributes:
        solo_epochs: Epochs over train/solo (IEr: its av + aii stages).
        wild_epochs: Epochs over train/unconstrained (IEr: its cmr stage).
        optimizer: batch_size, lr, lr_heads and weight_decay of IEr's first stage.
        data: IEr's data options.
    """

    solo_epochs: int
    wild_epochs: int
    optimizer: dict[str, Any]
    data: DataConfig


def ier_budget(preset_name: str) -> Budget:
    """The training budget of IEr's recipe at ``preset_name`` (``tiny``, ``quick``, ``paper``)."""

    reference = ier_recipe(preset_name)
    first = reference.stages[0]
    return Budget(
        solo_epochs=sum(s.epochs for s in reference.stages if s.split == "train/solo"),
        wild_epochs=sum(s.epochs for s in reference.stages if s.split == "train/unconstrained"),
        optimizer={
            "batch_size": first.batch_size,
            "lr": first.lr,
            "lr_heads": first.lr_heads,
            "weight_decay": first.weight_decay,
        },  # fmt: skip
        data=reference.data,
    )


def experiment(
    method: str, preset_name: str, stages: tuple[StageConfig, ...], budget: Budget, *,
    single_source_stage: int = -1,
) -> ExperimentConfig:  # fmt: skip
    return ExperimentConfig(
        method=method,
        preset=preset_name,
        model=model_config(preset_name, name=method),
        stages=stages,
        data=budget.data,
        eval=EvalConfig(single_source_stage=single_source_stage),
        log_every=5 if preset_name == "tiny" else 20,
    )


def two_split_recipe(method: str, task: str) -> Callable[[str], ExperimentConfig]:
    """The recipe of a method that trains one task on both splits: ``task`` on train/solo for
    IEr's solo epochs (stage "solo"), then on train/unconstrained for its wild epochs ("wild")."""

    def recipe(preset_name: str) -> ExperimentConfig:
        budget = ier_budget(preset_name)
        stages = tuple(
            StageConfig(name=name, task=task, split=split, epochs=epochs, **budget.optimizer)
            for name, split, epochs in (
                ("solo", "train/solo", budget.solo_epochs),
                ("wild", "train/unconstrained", budget.wild_epochs),
            )
        )
        return experiment(method, preset_name, stages, budget)

    recipe.__doc__ = (
        f"{method}: task {task!r} on train/solo, then on train/unconstrained, for IEr's epochs on "
        "each split."
    )
    return recipe
