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

from ier.errors import IerError


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


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(
    path: str | os.PathLike[str],
    *,
    overwrite: bool,
    inputs: tuple[str | os.PathLike[str], ...] = (),
    flag: str = "--out",
) -> Path:
    """Check, before any work, that a command may write the file ``path``.

    The rules every command shares: an input is never an output, whatever the flags; an existing
    file is replaced only with ``overwrite``; a folder is not a file.

    Raises:
        IerError: ``path`` is one of ``inputs``, an existing folder, or an existing file without
            ``overwrite``.
    """

    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)):
            raise IerError(f"{flag} {path}: is an input of this command; write somewhere else")
    if path.is_dir():
        raise IerError(f"{flag} {path}: is a folder; give a file name (e.g. {path}/metrics.json)")
    if path.exists() and not overwrite:
        raise IerError(f"{flag} {path}: exists; pass --overwrite to replace it")
    return path


def check_output_folder(
    folder: str | os.PathLike[str],
    *,
    overwrite: bool,
    outputs: tuple[str, ...] = (),
    inputs: tuple[str | os.PathLike[str], ...] = (),
    flag: str = "--out",
) -> Path:
    """Check, before any work, that a command may write its files into ``folder``.

    Args:
        folder: The output folder (it may not exist yet).
        overwrite: Allow a folder that is not empty.
        outputs: Glob patterns of the files the command writes there (``metrics.json``,
            ``predictions_*.npz``): none of them may be one of ``inputs``.
        inputs: The command's input files.
        flag: The option's name, for messages.

    Raises:
        IerError: ``folder`` is a file, not empty without ``overwrite``, or holds an input under
            an output's name.
    """
    from fnmatch import fnmatch


    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise IerError(f"{flag} {folder}: exists and is not a folder")
    for source in inputs:
        source = Path(source)
        if _same_file(source.parent, folder) and any(fnmatch(source.name, p) for p in outputs):
            raise IerError(
                f"{flag} {folder}: this command would write over its input {source}; "
                "write somewhere else"
            )
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise IerError(
            f"{flag} {folder}: folder exists and is not empty; pass --overwrite to replace the "
            f"outputs in it ({', '.join(outputs)})"
        )
    return folder


def remove_stale_outputs(
    folder: str | os.PathLike[str], outputs: tuple[str, ...], written: set[Path]
) -> list[Path]:
    """Delete the files matching ``outputs`` patterns in ``folder`` that this run did not write
    (leftovers of an earlier run, removed under ``--overwrite``); returns what was removed."""
    folder = Path(folder)
    keep = {p.resolve() for p in written}
    removed = []
    for pattern in outputs:
        for path in sorted(folder.glob(pattern)):
            if path.is_file() and path.resolve() not in keep:
                path.unlink()
                removed.append(path)
    return removed
