"""docs/architecture.md stays true: every module it names exists, every top-level module and
package of ``src/ier`` is named, and the deprecated aliases it lists still work (and warn)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs/architecture.md").read_text()
PACKAGE = ROOT / "src/ier"
DEPRECATED = ("ier.datasets", "ier.predict", "ier.report", "ier.datasets.presets")


def _named() -> set[str]:
    return set(re.findall(r"`(ier(?:\.[a-z_]+)+)", DOC)) | set(re.findall(r"\b(ier\.[a-z_]+)", DOC))


def _is_module(name: str) -> bool:
    parts = name.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _resolves(name: str) -> bool:
    """``name`` is a module, or an attribute of the longest module that prefixes it."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        if _is_module(module) or module == "ier":
            obj = importlib.import_module(module)
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


def test_every_module_the_map_names_exists() -> None:
    missing = sorted(n for n in _named() if n not in DEPRECATED and not _resolves(n))
    assert not missing, f"docs/architecture.md names what does not exist: {missing}"


def test_every_top_level_module_is_named() -> None:
    top = {f"ier.{p.stem}" for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")}
    top |= {f"ier.{p.name}" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    top -= set(DEPRECATED)
    unnamed = sorted(top - _named())
    assert not unnamed, f"docs/architecture.md does not name: {unnamed}"


@pytest.mark.parametrize("name", DEPRECATED)
def test_the_deprecated_aliases_still_import(name: str) -> None:
    import sys

    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    with pytest.warns(DeprecationWarning, match="moved to"):
        importlib.import_module(name)
    assert name in DOC
