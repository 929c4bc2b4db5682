"""Deprecated (removed in ier 0.3): moved to ``ier.inference`` (so that the name no longer
collides with ``ier.predictions``, the predictions file format)."""

from __future__ import annotations

import warnings

from ier.inference import (  # noqa: F401
    category_probabilities,
    evaluate_checkpoint,
    identity_scores,
    predict,
    set_object_prior,
    validate,
)

warnings.warn("ier.predict moved to ier.inference", DeprecationWarning, stacklevel=2)
