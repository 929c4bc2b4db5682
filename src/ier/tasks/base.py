"""The task protocol (one task object per training stage) and the task registry.

A task owns what differs between stages: its parameter groups, per-epoch preparation (clustering,
curriculum), the loss of one batch and the end-of-stage products (prototypes, class matching).
The training loop (``ier.train.fit``) only calls these methods; it never branches on a stage name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from ier import plugins
from ier.config import StageConfig
from ier.data.datasets import AVDataset, eval_batches
from ier.errors import ConfigError


def other_clips(x: torch.Tensor) -> torch.Tensor:
    """Pair each clip of a batch with the previous one (another video): roll by one along dim 0.
    The mismatched partner of DSOL-style negatives and of mix-and-separate."""
    return x.roll(1, dims=0)


@dataclass
class StageData:
    """What a task may read about its stage's data.

    Attributes:
        dataset: The stage's training split.
        classes: Category vocabulary (only class matching and logging use labels).
        eval_batch_size: Batch size of no-grad passes.
        steps_per_epoch: Training steps per epoch on this process.
        device: Where the model lives.
    """

    dataset: AVDataset
    classes: tuple[str, ...]
    eval_batch_size: int
    steps_per_epoch: int
    device: torch.device

    def eval_batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Un-augmented batches over the whole split, in order, on ``device``."""
        for batch in eval_batches(self.dataset, self.eval_batch_size):
            yield {k: v.to(self.device) for k, v in batch.items()}


@runtime_checkable
class Task(Protocol):
    """One training stage's logic.

    ``step`` runs inside the (possibly DDP-wrapped) forward, so every parameter it uses gets its
    gradient synchronised.
    """

    name: str

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups (``params``, ``lr``, ``name``)."""
        ...

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        """Prepare epoch ``epoch`` (0-based); may run a no-grad pass. Returns scalars to log."""
        ...

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of one batch: ``{"loss": scalar, **other scalars to log}``."""
        ...

    def end_stage(self, data: StageData) -> dict[str, float]:
        """Finish the stage (e.g. prototypes, cluster → class matching). Returns scalars to log."""
        ...

    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors a resumed run needs besides model and optimizer (e.g. pseudo-labels)."""
        ...

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what ``extra_state`` returned."""
        ...


class BaseTask:
    """Defaults for tasks: Adam groups (heads at ``lr_heads``), no-op hooks, no extra state.

    Args:
        model: The model being trained (shared by every stage).
        stage: The stage's config.
        seed: Seed of this stage's own randomness (clustering, mixing).
    """

    name = "base"
    head_keywords: tuple[str, ...] = ("classifier",)

    def __init__(self, model: nn.Module, stage: StageConfig, *, seed: int) -> None:
        self.model = model
        self.stage = stage
        self.seed = seed

    def param_groups(self) -> list[dict[str, Any]]:
        """Two groups: classifier heads at ``stage.lr_heads``, everything else at ``stage.lr``."""
        heads, body = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                is_head = any(k in name for k in self.head_keywords)
                (heads if is_head else body).append(param)
        groups = [{"params": body, "lr": self.stage.lr, "name": "body"}]
        if heads:
            groups.append({"params": heads, "lr": self.stage.lr_heads, "name": "heads"})
        return groups

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        return {}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def end_stage(self, data: StageData) -> dict[str, float]:
        return {}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        return None


def frozen_modules(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Module]:
    """The submodules named by ``prefixes`` (``StageConfig.freeze``); ConfigError if one is unknown.

    A prefix names a submodule (``audio_backbone``, ``av_head.audio_proj``) or a single parameter
    (``av_head.bias``); a parameter's owning module is returned for the latter. An optional part
    that this model switched off (an attribute set to None, e.g. ``identify`` with
    ``use_aii=False``) has nothing to freeze and is skipped.
    """
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    found: list[nn.Module] = []
    for prefix in prefixes:
        owner_name, _, attr = prefix.rpartition(".")
        if (
            owner_name in modules
            and hasattr(modules[owner_name], attr)
            and (getattr(modules[owner_name], attr) is None)
        ):
            continue  # an optional part this model switched off
        if prefix in modules and prefix:
            found.append(modules[prefix])
        elif prefix in params:
            owner = prefix.rpartition(".")[0]
            found.append(modules[owner])
        else:
            top = sorted(name for name, _ in model.named_children())
            raise ConfigError(
                f"freeze: {prefix!r} is not a module or parameter of {type(model).__name__}; "
                f"top-level modules: {top}"
            )
    return found


def freeze_parameters(model: nn.Module, prefixes: tuple[str, ...]) -> list[nn.Parameter]:
    """Turn off ``requires_grad`` of every parameter under ``prefixes``; returns those changed
    (the caller turns them back on when the stage ends)."""
    frozen_modules(model, prefixes)  # validates
    changed = []
    for name, param in model.named_parameters():
        hit = any(name == p or name.startswith(p + ".") for p in prefixes)
        if hit and param.requires_grad:
            param.requires_grad_(False)
            changed.append(param)
    return changed


class TaskRunner(nn.Module):
    """Holds the model as a submodule so DDP sees its parameters; ``forward`` runs ``task.step``.

    Wrapping this module (not the model) in DDP synchronises the gradients of every parameter a
    task touches, whichever model methods it calls. Modules in ``frozen`` are switched to eval
    mode before every step, so their batch-norm statistics stay fixed even after a task's
    no-grad pass restored training mode.
    """

    def __init__(self, model: nn.Module, task: Task, frozen: list[nn.Module] | None = None) -> None:
        super().__init__()
        self.model = model
        self._task = task
        self._frozen = list(frozen or [])

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for module in self._frozen:
            module.eval()
        return self._task.step(batch)


TaskFactory = Callable[..., Task]
_TASKS: dict[str, TaskFactory] = {}


def register_task(name: str) -> Callable[[TaskFactory], TaskFactory]:
    """Decorator: register ``factory(model, stage, *, seed) -> Task`` under ``name``."""

    def wrap(factory: TaskFactory) -> TaskFactory:
        if name in _TASKS and _TASKS[name] is not factory:
            raise ValueError(f"task {name!r} is already registered")
        _TASKS[name] = factory
        return factory

    return wrap


def _discover_methods() -> None:
    """Load the method modules, which register their tasks, on first use (``ier.plugins``:
    ``ier.methods`` sits above this package, so its modules are loaded as plugins)."""
    plugins.load_methods()


def list_tasks() -> list[str]:
    """Registered task names."""
    _discover_methods()
    return sorted(_TASKS)


def create_task(model: nn.Module, stage: StageConfig, *, seed: int) -> Task:
    """Build the task named by ``stage.task``; ConfigError if unknown."""
    if stage.task not in _TASKS:
        _discover_methods()
    if stage.task not in _TASKS:
        raise ConfigError(
            f"stage {stage.name!r}: unknown task {stage.task!r}; known: {sorted(_TASKS)}"
        )
    return _TASKS[stage.task](model, stage, seed=seed)
