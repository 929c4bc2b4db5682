"""ier: Interference Eraser (AAAI 2022) and baselines for visual sound localization in the wild."""

from __future__ import annotations

__version__ = "0.1.0"
