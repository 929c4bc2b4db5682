"""Writing mp4 files: H.264 video (yuv420p, libx264) from frames, with an optional mono AAC track
interleaved as the frames arrive. ``ier.video`` (decoding) re-exports :func:`write_mp4`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ier.audio import SAMPLE_RATE
from ier.files import atomic_path


def _even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad odd heights/widths by one replicated row/column (yuv420p needs even sizes)."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def write_mp4(
    path: str | os.PathLike[str],
    frames: np.ndarray | Iterable[np.ndarray],
    *,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 23,
    preset: str = "veryfast",
    threads: int = 0,
    aac_coder: str | None = None,
) -> Path:
    """Write an mp4 with H.264 video (yuv420p, libx264) and optional mono AAC audio.

    Odd frame sizes are padded to even by replicating the last row/column. Audio is interleaved
    with video as frames arrive, so ``frames`` can be a generator for long videos. An existing
    file at ``path`` is replaced (written to a temporary name first, then renamed).

    Args:
        path: Output file (``.mp4``).
        frames: uint8 (T, H, W, 3) array or an iterable of uint8 (H, W, 3) frames, all one size.
        fps: Frame rate in frames per second.
        audio: Optional mono wave (n,) at ``sample_rate``: float in [-1, 1] (clipped) or
            integer PCM (scaled by its full range). It may be longer or shorter than the video.
        sample_rate: Audio rate in Hz.
        crf: x264 constant rate factor (lower = better quality).
        preset: x264 speed preset (``"ultrafast"`` ... ``"veryslow"``).
        threads: x264 encoder threads; 0 lets x264 choose (one per core and more). Use 1 when
            many processes write clips in parallel.
        aac_coder: FFmpeg AAC coder (``"fast"``, ``"twoloop"``, ...); None keeps FFmpeg's default.

    Returns:
        The written path.
    """
    path = Path(path)
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    rate = Fraction(fps).limit_denominator(1001)
    options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
    audio_options = {} if aac_coder is None else {"aac_coder": aac_coder}
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            n_frames = _mux(container, frames, rate, audio, sample_rate, options, audio_options)
        if n_frames == 0:
            raise ValueError("write_mp4 got no frames")
    return path


def _mux(
    container: Any,
    frames: np.ndarray | Iterable[np.ndarray],
    rate: Fraction,
    audio: np.ndarray | None,
    sample_rate: int,
    options: dict[str, str],
    audio_options: dict[str, str],
) -> int:
    iterator = iter(frames)
    first = next(iterator, None)
    if first is None:
        return 0
    first = _even_frame(first)
    video = container.add_stream("libx264", rate=rate)
    video.height, video.width = first.shape[:2]
    video.pix_fmt = "yuv420p"
    video.options = options
    audio_writer = None
    if audio is not None:
        audio_writer = _AudioWriter(container, _float_wave(audio), sample_rate, audio_options)
    count = 0
    for frame in itertools.chain([first], iterator):
        frame = _even_frame(frame)
        if frame.shape[:2] != (video.height, video.width):
            raise ValueError(f"frame {count} has size {frame.shape[:2]}, expected the first's")
        av_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        av_frame.pts, av_frame.time_base = count, 1 / rate
        container.mux(video.encode(av_frame))
        count += 1
        if audio_writer is not None:
            audio_writer.write_until(count / rate)
    container.mux(video.encode(None))
    if audio_writer is not None:
        audio_writer.write_until(math.inf)
        audio_writer.flush()
    return count


def _float_wave(audio: Any) -> np.ndarray:
    """float32 samples in [-1, 1]; integer PCM (e.g. int16) is scaled by its full range."""
    wave = np.asarray(audio)
    if np.issubdtype(wave.dtype, np.integer):
        return (wave / float(np.iinfo(wave.dtype).max + 1)).astype(np.float32)
    return wave.astype(np.float32, copy=False)


class _AudioWriter:
    """Feeds a mono wave to an AAC stream in encoder-sized chunks, up to a given time."""

    def __init__(
        self, container: Any, wave: np.ndarray, sample_rate: int, options: dict[str, str]
    ) -> None:
        if wave.ndim != 1:
            raise ValueError(f"audio must be mono (n,), got shape {wave.shape}")
        self.container, self.wave, self.sample_rate = container, np.clip(wave, -1, 1), sample_rate
        self.stream = container.add_stream("aac", rate=sample_rate, layout="mono")
        self.stream.options = options
        self.position = 0
        self.chunk = 1024

    def write_until(self, seconds: float) -> None:
        total = len(self.wave)
        stop = total if not math.isfinite(seconds) else min(total, int(seconds * self.sample_rate))
        while self.position < stop and (self.position + self.chunk <= stop or stop == total):
            piece = self.wave[self.position : self.position + self.chunk]
            frame = av.AudioFrame.from_ndarray(piece[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = self.sample_rate, self.position
            frame.time_base = Fraction(1, self.sample_rate)
            self.container.mux(self.stream.encode(frame))
            self.position += len(piece)

    def flush(self) -> None:
        self.container.mux(self.stream.encode(None))
