"""Exception types: every user-facing failure is an ``IerError`` with a readable message."""

from __future__ import annotations


class IerError(Exception):
    """Base class for errors that the CLI reports as one clean line (no traceback)."""


class MediaError(IerError):
    """A media file is missing, unreadable, corrupt, lacks a stream, or a window is out of range."""


class ManifestError(IerError):
    """A manifest has bad records; ``problems`` lists every one of them as a readable line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        if self.problems:
            message = message + "\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)


class ConfigError(IerError, ValueError):
    """A configuration value or override is unknown or has the wrong type (also a ValueError)."""


class CheckpointError(IerError):
    """A checkpoint is missing, tampered with, foreign, or from an incompatible version."""


class AssetError(IerError):
    """A benchmark asset source is not installed; the message names the package that provides it."""


class DatasetError(IerError):
    """A raw dataset root does not have the expected layout."""


class PredictionsError(IerError):
    """A predictions file or object is malformed (missing arrays, bad shape, dtype or range)."""


class MissingDependencyError(IerError, ImportError):
    """An optional package that the chosen setting needs is not installed (the message says how
    to install it, or which setting avoids it)."""


class BenchRunError(IerError):
    """Runs of a bench failed (``ier bench --jobs``); the message names each one and its error."""
