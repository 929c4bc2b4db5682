"""Opening media files, shared by audio and video decoding and the overlay writer: path checks,
PyAV containers whose FFmpeg failures become ``MediaError``, a container's time origin, and how
far a window may run past the end of a stream.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av

from ier.errors import MediaError

END_TOLERANCE_SECONDS = 0.1  # a window may overrun the stream end by this much (zero padded)


def check_media_path(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path, raising MediaError if it is missing or not a regular file."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: file not found")
    if not path.is_file():
        raise MediaError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: file is empty (0 bytes)")
    return path


@contextmanager
def open_container(path: str | os.PathLike[str] | io.BytesIO, name: str) -> Iterator[Any]:
    """Open a media file with PyAV, turning every FFmpeg failure inside the block into MediaError.

    Args:
        path: File path or in-memory buffer.
        name: How messages refer to the media (usually the path).
    """
    try:
        container = av.open(path if isinstance(path, io.BytesIO) else str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"{name}: cannot open as audio/video ({_reason(exc)})") from exc
    try:
        yield container
    except (av.FFmpegError, OSError, ValueError, EOFError) as exc:
        raise MediaError(f"{name}: corrupt or unreadable media ({_reason(exc)})") from exc
    finally:
        container.close()


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).splitlines()[0][:200]


def time_origin_seconds(container: Any) -> float:
    """Container start in seconds if positive (MPEG-TS style), else 0; media times count from it."""
    start = container.start_time
    return max(0.0, start / 1e6) if start is not None else 0.0
