"""Deprecated (removed in ier 0.3): the dataset adapters moved to ``ier.adapters`` (so that the
name no longer collides with ``ier.data.datasets``, the loaders). ``from ier.datasets import
prepare`` and the other package-level names keep working, with a DeprecationWarning."""

from __future__ import annotations

import warnings

from ier.adapters import *  # noqa: F403
from ier.adapters import __all__  # noqa: F401

warnings.warn("ier.datasets moved to ier.adapters", DeprecationWarning, stacklevel=2)
