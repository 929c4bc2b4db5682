"""Deprecated (removed in ier 0.3): the per-video HTML report moved to ``ier.localization.html``
(so that it is no longer confused with the bench's tables or the benchmark's statistics)."""

from __future__ import annotations

import warnings

from ier.localization.html import render_index, render_report  # noqa: F401

warnings.warn("ier.report moved to ier.localization.html", DeprecationWarning, stacklevel=2)
