"""The bundled models: names, where their weights live, and the card that describes them.

Light on purpose (no torch): the CLI reads it while building ``ier --help``.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "ier-wild-small"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Bundled model name -> one-line description; the weights live in WEIGHTS_DIR/<name>.safetensors.
BUNDLED_MODELS: dict[str, str] = {
    "ier-wild-small": "IEr with a small backbone, trained on the built-in benchmark (ier scenes)",
}
MODEL_CARD = "docs/models.md"
"""Where the bundled models' card lives in the repository (a checkpoint may name another)."""

UNKNOWN_QUALITY = "no measured quality is recorded for this model"
# Quality lines of bundled weights exported before checkpoints carried one, keyed by the SHA-256
# stored in the file (``ier.checkpoint.Checkpoint.digest``): the line applies to those exact
# weights only, so replacing the file can never inherit a stale claim. A checkpoint's own
# ``quality`` entry (``ier.checkpoint.export_model(..., quality=...)``) always wins.
KNOWN_QUALITY: dict[str, str] = {}  # every bundled file since 2026-12-03 carries its own line


def quality_line(meta: dict, digest: str = "") -> str:
    """The one-line measured quality of a checkpoint: its ``quality`` entry, else the known line
    of these exact weights, else ``UNKNOWN_QUALITY``."""
    line = meta.get("quality")
    if isinstance(line, str) and line.strip():
        return line.strip()
    return KNOWN_QUALITY.get(digest, UNKNOWN_QUALITY)


def card_location(card: str = MODEL_CARD) -> str:
    """``card`` as something a reader can open: a ``file://`` URL when the repository's copy is
    next to this package (a source checkout), else ``card`` itself (a URL or a repository path).
    """
    if "://" in card:
        return card
    local = Path(__file__).resolve().parents[2] / card
    return local.as_uri() if local.is_file() else card
