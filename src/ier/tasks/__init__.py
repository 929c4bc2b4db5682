"""Training tasks, one object per stage (``base``: protocol, registry; ``ier``: IEr stages)."""

from __future__ import annotations

from ier.tasks.base import (
    BaseTask,
    StageData,
    Task,
    TaskRunner,
    create_task,
    freeze_parameters,
    frozen_modules,
    list_tasks,
    register_task,
)

__all__ = [
    "BaseTask",
    "StageData",
    "Task",
    "TaskRunner",
    "create_task",
    "freeze_parameters",
    "frozen_modules",
    "list_tasks",
    "register_task",
]
