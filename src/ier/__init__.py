"""ier: Interference Eraser (AAAI 2022) and baselines for visual sound localization in the wild.

Public API (imported lazily, so ``import ier`` stays cheap)::

    model = ier.load_model("ier-wild-small")          # bundled name or checkpoint path
    out = model.localize(images, waves)                # class maps (B, C, h, w), scores (B, C)
    result = ier.localize("clip.mp4", model=model)     # per-window records of a video
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# public name -> (module, attribute)
_EXPORTS = {
    "load_model": ("ier.localization", "load_model"),
    "localize": ("ier.localization", "localize"),
    "LocalizationResult": ("ier.localization", "LocalizationResult"),
    "create_model": ("ier.models", "create_model"),
    "list_models": ("ier.models", "list_models"),
    "evaluate": ("ier.evaluate", "evaluate"),
    "build_benchmark": ("ier.scenes", "build_benchmark"),
    "read_manifest": ("ier.data.manifest", "read_manifest"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        module, attribute = _EXPORTS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'ier' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
