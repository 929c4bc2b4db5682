"""Loading method modules: the ``ier.methods`` entry points and ``IER_METHOD_PATH``.

A method module registers its model, tasks and recipe when it is imported (``ier.methods``). The
registries that need them (``ier.models.create_model``, ``ier.tasks.create_task``,
``ier.methods.preset``) call ``load_methods`` on first use, which imports:

- every entry point of the group ``ier.methods`` of the installed packages: a module, or a
  callable that imports some (this package declares ``builtin = "ier.methods:discover"``, which
  imports every module of ``ier.methods``);
- every ``*.py`` file in the folders of the ``IER_METHOD_PATH`` environment variable
  (``os.pathsep`` separated), imported as ``ier_method_<stem>``.

So built-in and third-party methods load the same way, and nothing low in the package imports the
method modules by name.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from ier.errors import ConfigError

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "ier.methods"
METHOD_PATH_ENV = "IER_METHOD_PATH"
BUILTIN_ENTRY_POINT = EntryPoint(name="builtin", value="ier.methods:discover",
                                 group=ENTRY_POINT_GROUP)  # fmt: skip
"""This package's own entry point, as ``pyproject.toml`` declares it. Used when ``ier`` runs from
a source tree that is not installed (``PYTHONPATH=src``): its metadata, hence the entry point,
is then missing, and without it no checkpoint could be rebuilt."""

_loaded = False


def load_methods(*, again: bool = False) -> None:
    """Import every method module once (``again``: also after a first load, e.g. when
    ``IER_METHOD_PATH`` changed)."""
    global _loaded
    if _loaded and not again:
        return
    _loaded = True
    entries = list(entry_points(group=ENTRY_POINT_GROUP))
    if not any(e.value == BUILTIN_ENTRY_POINT.value for e in entries):
        entries.insert(0, BUILTIN_ENTRY_POINT)
    for entry in entries:
        loaded = entry.load()
        if callable(loaded):
            loaded()
    for folder in filter(None, os.environ.get(METHOD_PATH_ENV, "").split(os.pathsep)):
        for path in sorted(Path(folder).glob("*.py")):
            import_file(path)


def import_file(path: Path) -> None:
    """Import one method file as module ``ier_method_<stem>`` (once)."""
    name = f"ier_method_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{METHOD_PATH_ENV}: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
