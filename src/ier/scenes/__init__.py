"""The built-in benchmark: real recordings and photo cut-outs from installed packages, composed
into seeded audio-visual scenes (solo, synthetic mosaic, duet, wild, negative)."""

from __future__ import annotations

from ier.scenes.build import PRESETS, SPLITS, build_benchmark

__all__ = ["PRESETS", "SPLITS", "build_benchmark"]
