"""Atomic file writes: write a temporary file beside the target, then rename it over the target.

A reader never sees a half-written file, and a failed write leaves the old file (or nothing) behind.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` for the caller to write.

    When the block succeeds the temporary file replaces ``path`` (``os.replace``, atomic on one
    file system); when it raises, the temporary file is removed and ``path`` is left untouched.
    The parent folder is created if needed. The name is hidden (leading dot), unique per process
    and call, and ends in ``.tmp``, so writers that pick a format from the suffix need it
    explicitly (e.g. ``format="mp4"``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` when the block succeeds.

    Args:
        path: The file to (re)write.
        mode: ``"w"`` (text, UTF-8) or ``"wb"`` (bytes).
        fsync: Flush the data to disk before the rename (checkpoints, manifests: files that
            must survive a power cut); off for files that are cheap to remake.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    encoding = None if mode == "wb" else "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), encoding=encoding) as handle:
        yield handle
        handle.flush()
        if fsync:
            os.fsync(handle.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``; returns ``path`` as a Path."""
    with atomic_open(path, "w", fsync=fsync) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(
    path: str | os.PathLike[str],
    data: Any,
    *,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
    ensure_ascii: bool = True,
) -> Path:
    """Atomically write ``data`` as JSON followed by a newline; returns ``path`` as a Path.

    Args:
        path: The file to (re)write.
        data: JSON-able value.
        indent: ``json.dumps`` indent; None writes one compact line.
        default: ``json.dumps`` fallback for values JSON cannot encode (e.g. ``str``).
        ensure_ascii: Escape non-ASCII characters (``json.dumps``'s default).
    """
    text = json.dumps(data, indent=indent, default=default, ensure_ascii=ensure_ascii)
    return atomic_write_text(path, text + "\n")
