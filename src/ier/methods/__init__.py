"""Methods: IEr and the baselines, one module each.

A method module registers everything that method needs, in one place:

- its model class, ``@ier.models.register_model("name")``;
- the training task of each of its stages, ``@ier.tasks.register_task("task")``;
- its recipe (``preset name -> ExperimentConfig``) with its table label and order,
  ``register_method(Method(...))``.

Method modules are discovered automatically (``discover``): every module of this package, and,
through ``ier.plugins``, every ``*.py`` file in the folders of the ``IER_METHOD_PATH`` environment
variable and every module named by an ``ier.methods`` entry point of an installed package. So
adding a baseline is one new module (``ier/methods/<name>.py``, or a file on ``IER_METHOD_PATH``)
plus its entry in docs/baselines.md; ``ier train``, ``ier bench`` and ``ier evaluate`` find it.
docs/architecture.md has the checklist.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from ier import plugins
from ier.config import PRESETS, ExperimentConfig, load_config_file
from ier.errors import ConfigError

logger = logging.getLogger(__name__)

METHOD_PATH_ENV = plugins.METHOD_PATH_ENV

Recipe = Callable[[str], ExperimentConfig]


@dataclass(frozen=True)
class Method:
    """One method: its recipe and how the bench shows it.

    Attributes:
        name: The name ``ier train --method`` and ``ier bench --methods`` take (also its recipe's
            ``ExperimentConfig.method``).
        recipe: ``recipe(preset) -> ExperimentConfig`` for every preset of ``ier.config.PRESETS``.
        label: Row label in the bench tables.
        order: Row position in the bench tables (ascending); the baselines first, then IEr, then
            the supervised ceiling.
        summary: One line for listings.
    """

    name: str
    recipe: Recipe
    label: str
    order: int
    summary: str = ""


_METHODS: dict[str, Method] = {}
_discovered = False


def register_method(method: Method) -> Method:
    """Register ``method`` (call it at the end of a method module). Returns it.

    Raises:
        ValueError: another method already has this name.
    """
    known = _METHODS.get(method.name)
    if known is not None and known.recipe is not method.recipe:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def discover() -> None:
    """Import every method module once: this package's (the ``builtin`` entry point), then those
    of ``IER_METHOD_PATH`` and of other packages' ``ier.methods`` entry points."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    plugins.load_methods()


def rediscover() -> None:
    """Discover again (after ``IER_METHOD_PATH`` changed, e.g. in a test)."""
    global _discovered
    _discovered = False
    discover()
    plugins.load_methods(again=True)


def methods() -> list[Method]:
    """Every registered method, in table order."""
    discover()
    return sorted(_METHODS.values(), key=lambda m: (m.order, m.name))


def list_methods() -> list[str]:
    """Names of every registered method, in table order."""
    return [m.name for m in methods()]


def get_method(name: str) -> Method:
    """The method called ``name``; ConfigError naming the known ones otherwise."""
    discover()
    if name not in _METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(list_methods())}")
    return _METHODS[name]


def preset(method: str, name: str) -> ExperimentConfig:
    """The experiment config of ``method`` at preset ``name`` (``ier.config.PRESETS``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
    return get_method(method).recipe(name)


def load_config(path: str | os.PathLike[str]) -> ExperimentConfig:
    """An experiment from a TOML file (``configs/*.toml``) or a run's ``config.json``; a TOML
    file's ``base = "METHOD/PRESET"`` starts from that method's preset (``ier.config``)."""
    return load_config_file(path, base=lambda method, name: preset(method, name))


def register_recipe(method: str) -> Callable[[Recipe], Recipe]:
    """Deprecated (removed in ier 0.3): ``register_method(Method(name, recipe, label, order))``.
    Registers ``fn(preset) -> ExperimentConfig`` as the recipe of ``method``, labelled by its
    name, after the built-in methods."""
    import warnings

    warnings.warn("register_recipe is deprecated; use register_method(Method(...))",
                  DeprecationWarning, stacklevel=2)  # fmt: skip

    def wrap(fn: Recipe) -> Recipe:
        register_method(Method(method, fn, label=method, order=1000))
        return fn

    return wrap
