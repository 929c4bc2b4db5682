"""Data: the sample manifest format (``ier.data.manifest``) and, beside it, datasets and loaders."""

from __future__ import annotations

from ier.data.manifest import (
    ObjectAnnotation,
    Sample,
    read_manifest,
    validate_manifest,
    write_manifest,
)

__all__ = ["ObjectAnnotation", "Sample", "read_manifest", "validate_manifest", "write_manifest"]
