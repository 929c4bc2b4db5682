"""Deprecated (removed in ier 0.3): the evaluation protocol moved to ``ier.protocol``."""

from __future__ import annotations

import warnings

from ier.protocol import (  # noqa: F401
    DEFAULT_ALPHA_BY_KIND,
    PUBLISHED_PROTOCOLS,
    SplitProtocol,
    published_protocol,
    split_kind,
    split_protocol,
)

SPLIT_PRESETS = PUBLISHED_PROTOCOLS
SplitPreset = SplitProtocol
split_preset = published_protocol

warnings.warn("ier.datasets.presets moved to ier.protocol", DeprecationWarning, stacklevel=2)
