"""Video and image input with PyAV and Pillow: probing, frame decoding by seeking, images.

Re-exports ``write_mp4`` from ``ier.video_writer``.

Frames are uint8 RGB arrays (H, W, 3); times are seconds from the start of the file.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ier.errors import MediaError
from ier.media import (
    END_TOLERANCE_SECONDS,
    check_media_path,
    open_container,
    time_origin_seconds,
)
from ier.video_writer import write_mp4  # noqa: F401  (re-exported: the mp4 writer)

logger = logging.getLogger(__name__)

SEEK_AHEAD_SECONDS = 2.0  # decode forward instead of seeking when the next time is this close
_TIME_EPS = 1e-4  # seconds; absorbs float rounding of frame timestamps

Size = int | tuple[int, int]


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns from a media file's header (no full decode).

    Attributes:
        duration_seconds: Container duration (longest stream), seconds.
        fps: Average video frame rate (0 without video).
        width: Frame width in pixels (0 without video).
        height: Frame height in pixels (0 without video).
        n_frames: Frame count from the header, or ``round(duration * fps)`` as an estimate.
        has_video: The file has a video stream.
        has_audio: The file has an audio stream.
        audio_sample_rate: Native audio rate in Hz (0 without audio).
        video_seconds: How long the video stream itself says it is (its header's duration, else
            frames / fps), or None when the file does not say. Shorter than
            ``duration_seconds`` when the soundtrack outlasts the picture (a still image with a
            soundtrack, a screen recording).
    """

    duration_seconds: float
    fps: float
    width: int
    height: int
    n_frames: int
    has_video: bool
    has_audio: bool
    audio_sample_rate: int
    video_seconds: float | None = None


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read stream metadata of a video or audio file.

    Raises:
        MediaError: Missing or unreadable file.
    """
    path = check_media_path(path)
    with open_container(path, str(path)) as container:
        duration = container.duration / 1e6 if container.duration is not None else 0.0
        fps, width, height, n_frames = 0.0, 0, 0, 0
        video_seconds = None
        if container.streams.video:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            fps = float(rate) if rate else 0.0
            width, height = stream.codec_context.width, stream.codec_context.height
            if stream.duration is not None and stream.time_base is not None:
                video_seconds = float(stream.duration * stream.time_base)
                duration = max(duration, video_seconds)
            elif stream.frames and fps > 0:
                video_seconds = stream.frames / fps
            n_frames = stream.frames or int(round((video_seconds or duration) * fps))
        sample_rate = 0
        if container.streams.audio:
            sample_rate = container.streams.audio[0].codec_context.sample_rate or 0
        return VideoInfo(
            duration_seconds=duration, fps=fps, width=width, height=height, n_frames=n_frames,
            has_video=bool(container.streams.video), has_audio=bool(container.streams.audio),
            audio_sample_rate=sample_rate, video_seconds=video_seconds,
        )  # fmt: skip


# --------------------------------------------------------------------------- images and resizing


def _size_hw(size: Size) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return int(height), int(width)


def resize_rgb(image: np.ndarray, size: Size) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image to ``size`` (int S -> S x S, or (height, width)), bilinear.

    Pillow's bilinear filter is antialiased when shrinking.
    """
    height, width = _size_hw(size)
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized)


def load_image(path: str | os.PathLike[str], *, size: Size | None = None) -> np.ndarray:
    """Load an image as uint8 RGB (H, W, 3); transparency is composited onto black.

    Args:
        path: Any file Pillow reads (png, jpg, webp, gif first frame, ...).
        size: Optional output size: int S for S x S, or (height, width).

    Raises:
        MediaError: Missing, unreadable or corrupt image.
    """
    path = check_media_path(path)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = np.asarray(image.convert("RGBA"), dtype=np.float32)
                rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
                array = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
            else:
                array = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MediaError(f"{path}: cannot read image ({exc})") from exc
    return resize_rgb(array, size) if size is not None else np.ascontiguousarray(array)


# --------------------------------------------------------------------------- frame decoding


def _video_stream(container: Any, path: Path) -> Any:
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _frame_array(frame: Any, size: Size | None) -> np.ndarray:
    array = frame.to_ndarray(format="rgb24")
    return resize_rgb(array, size) if size is not None else array


def _decode_after_seek(
    container: Any, stream: Any, seconds: float, origin: float
) -> Iterator[tuple[float, Any]]:
    """Yield (time, frame) from the keyframe at or before ``seconds`` onwards.

    If a seek lands after ``seconds`` (an inexact index), it retries further back, then from 0.
    """
    for back_seconds in (0.0, 1.0, 10.0, math.inf):
        offset = seconds - back_seconds
        if offset > 0:
            container.seek(int((offset + origin) / stream.time_base), stream=stream, backward=True)
        else:
            container.seek(0)
        frames = (
            (float(frame.time) - origin, frame)
            for frame in container.decode(stream)
            if frame.time is not None
        )
        first = next(frames, None)
        if first is None:
            return
        if first[0] <= seconds + _TIME_EPS or offset <= 0:
            yield first
            yield from frames
            return
        logger.debug("seek to %.3f s landed at %.3f s; seeking further back", seconds, first[0])


class _FrameCursor:
    """Walks a video forward, holding the current frame and the one after it."""

    def __init__(self, container: Any, stream: Any, path: Path) -> None:
        self.container, self.stream, self.path = container, stream, path
        self.origin = time_origin_seconds(container)
        self.decoder: Iterator[tuple[float, Any]] | None = None
        self.current: tuple[float, Any] | None = None
        self.upcoming: tuple[float, Any] | None = None

    def frame_at(self, t: float) -> tuple[float, Any]:
        """The (time, frame) displayed at ``t``; seeks only when ``t`` is behind or far ahead."""
        current = self.current
        if current is None or t < current[0] - _TIME_EPS or t - current[0] > SEEK_AHEAD_SECONDS:
            self.decoder = _decode_after_seek(self.container, self.stream, t, self.origin)
            self.current = next(self.decoder, None)
            if self.current is None:
                raise MediaError(f"{self.path}: video stream has no frames at or before {t:.3f} s")
            self.upcoming = next(self.decoder, None)
        while self.upcoming is not None and self.upcoming[0] <= t + _TIME_EPS:
            self.current, self.upcoming = self.upcoming, next(self.decoder, None)
        if self.upcoming is None:
            _check_not_past_end(self.path, self.stream, self.current[0], t)
        return self.current


def load_frames(
    path: str | os.PathLike[str],
    times_seconds: Sequence[float],
    *,
    size: Size | None = None,
) -> np.ndarray:
    """Decode the frame displayed at each time (the last frame whose timestamp is <= the time).

    Times are visited in sorted order; the decoder seeks to the keyframe before a time and
    decodes forward (without seeking when the next time is within ``SEEK_AHEAD_SECONDS``), so
    memory holds only the requested frames. A time before the first frame gets the first frame;
    a time up to ``END_TOLERANCE_SECONDS`` past the end of the video gets the last frame.

    Args:
        path: Video file.
        times_seconds: Times in seconds, any order, repeats allowed.
        size: Optional output size: int S for S x S, or (height, width).

    Returns:
        uint8 array (T, H, W, 3), in the order of ``times_seconds``.

    Raises:
        MediaError: Missing/corrupt file, no video stream, no frames, or a time past the end.
    """
    path = check_media_path(path)
    times = [float(t) for t in times_seconds]
    if any(not math.isfinite(t) or t < 0 for t in times):
        raise MediaError(f"{path}: frame times must be finite and >= 0, got {times}")
    out: list[np.ndarray | None] = [None] * len(times)
    with open_container(path, str(path)) as container:
        cursor = _FrameCursor(container, _video_stream(container, path), path)
        previous: tuple[float, np.ndarray] | None = None
        for index in sorted(range(len(times)), key=times.__getitem__):
            frame_time, frame = cursor.frame_at(times[index])
            if previous is None or previous[0] != frame_time:
                previous = frame_time, _frame_array(frame, size)
            out[index] = previous[1]
    if not times:
        height, width = _size_hw(size) if size is not None else (0, 0)
        return np.zeros((0, height, width, 3), np.uint8)
    return np.stack(out)


def _check_not_past_end(path: Path, stream: Any, last_frame_time: float, t: float) -> None:
    rate = stream.average_rate or stream.guessed_rate
    frame_seconds = 1.0 / float(rate) if rate else 0.0
    end = last_frame_time + frame_seconds
    if t > end + END_TOLERANCE_SECONDS + _TIME_EPS:
        raise MediaError(f"{path}: time {t:.3f} s is past the end of the video ({end:.3f} s long)")


def iter_frames(
    path: str | os.PathLike[str],
    *,
    start_seconds: float = 0.0,
    end_seconds: float | None = None,
    size: Size | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (time_seconds, uint8 (H, W, 3)) for every frame with start <= time < end.

    Seeks to ``start_seconds`` first; holds one frame at a time.

    Raises:
        MediaError: Missing/corrupt file or no video stream.
    """
    for t, frame in iter_video_frames(path, start_seconds=start_seconds, end_seconds=end_seconds):
        yield t, _frame_array(frame, size)


def iter_video_frames(
    path: str | os.PathLike[str],
    *,
    start_seconds: float = 0.0,
    end_seconds: float | None = None,
    threads: int = 0,
) -> Iterator[tuple[float, Any]]:
    """Like ``iter_frames``, but yields the decoder's ``av.VideoFrame`` objects unconverted, so a
    caller converts only the frames it needs, to the size and pixel format it needs.

    Args:
        path: Video file.
        start_seconds: First time to yield.
        end_seconds: Stop before this time (None: the end).
        threads: Decoder threads (0: FFmpeg's choice).

    Raises:
        MediaError: Missing/corrupt file or no video stream.
    """
    path = check_media_path(path)
    with open_container(path, str(path)) as container:
        stream = _video_stream(container, path)
        if threads:
            stream.codec_context.thread_count = threads
        origin = time_origin_seconds(container)
        for t, frame in _decode_after_seek(container, stream, max(0.0, start_seconds), origin):
            if t < start_seconds - _TIME_EPS:
                continue
            if end_seconds is not None and t >= end_seconds - _TIME_EPS:
                break
            yield t, frame
