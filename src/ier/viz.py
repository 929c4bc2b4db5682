"""Heatmap overlays: class colours, per-window overlay layers, blending, and a streaming mp4 writer
that carries the source's original audio track.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from ier.audio import open_container, time_origin_seconds
from ier.errors import MediaError

logger = logging.getLogger(__name__)

# Tableau-10: distinct on video, readable as text on black.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip
HEAT_ALPHA = 0.6  # opacity of the hottest pixel
HEAT_FLOOR = 0.3  # map values below this fraction of the class peak stay transparent
_COPY_AUDIO_CODECS = {"aac", "mp3"}  # stored in mp4 as is; anything else is re-encoded to AAC


class ClassLabel(Protocol):
    """What an overlay needs about one class in one window (``ier.localization.ClassRecord``)."""

    name: str
    state: str
    confidence: float
    box: tuple[float, float, float, float] | None
    peak: tuple[float, float]


def class_colors(n_classes: int) -> list[tuple[int, int, int]]:
    """One RGB colour per class, cycling through ``PALETTE``."""
    return [PALETTE[i % len(PALETTE)] for i in range(n_classes)]


def display_size(
    width: int, height: int, *, min_side: int | None = None, max_side: int | None = None
) -> tuple[int, int]:
    """(width, height) scaled so the long side is in [min_side, max_side], rounded to even.

    Small videos are enlarged so overlay labels stay legible; large ones shrink for speed.
    """
    long_side = max(width, height)
    scale = 1.0
    if max_side and long_side > max_side:
        scale = max_side / long_side
    elif min_side and long_side < min_side:
        scale = min_side / long_side
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def resize_display(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an RGB uint8 frame (H, W, 3) to (height, width, 3), bilinear, antialiased.

    Uses torch's uint8 kernel: the same pixels as Pillow's bilinear filter at about a fifth of
    the cost, which matters once per decoded frame.
    """
    if frame.shape[:2] == (height, width):
        return frame
    image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None]
    out = F.interpolate(image, size=(height, width), mode="bilinear", antialias=True)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def upsample_maps(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of (C, h, w) maps to (C, height, width), float32."""
    tensor = torch.as_tensor(np.asarray(maps, np.float32))[None]
    return F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False)[
        0
    ].numpy()


def heat_layer(
    maps: np.ndarray,
    shown: Sequence[bool],
    colors: Sequence[tuple[int, int, int]],
    *,
    width: int,
    height: int,
) -> np.ndarray:
    """An RGBA layer with each shown class's map in its colour (the hottest class wins a cell).

    The layer is built at the map resolution and resized bilinearly, which is cheap at any
    frame size.

    Args:
        maps: (C, h, w) maps in [0, 1].
        shown: Per class, whether to draw it.
        colors: Per class RGB colour.
        width: Layer width in pixels.
        height: Layer height in pixels.

    Returns:
        uint8 (height, width, 4) RGBA; alpha rises from 0 at ``HEAT_FLOOR`` x peak to
        ``HEAT_ALPHA`` at the class peak.
    """
    index = [c for c, show in enumerate(shown) if show]
    if not index:
        return np.zeros((height, width, 4), np.uint8)
    chosen = np.asarray(maps, np.float32)[index]
    peaks = np.maximum(chosen.reshape(len(index), -1).max(axis=1), 1e-6)
    relative = chosen / peaks[:, None, None]
    winner = relative.argmax(axis=0)
    strength = np.take_along_axis(relative, winner[None], axis=0)[0]
    alpha = np.clip((strength - HEAT_FLOOR) / (1 - HEAT_FLOOR), 0, 1) * HEAT_ALPHA
    small = np.empty((*winner.shape, 4), np.uint8)
    small[..., :3] = np.asarray([colors[c] for c in index], np.uint8)[winner]
    small[..., 3] = np.rint(alpha * 255).astype(np.uint8)
    image = Image.fromarray(small, "RGBA").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image).copy()


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the bitmap font
        return ImageFont.load_default()


def annotate_layer(
    layer: np.ndarray,
    records: Sequence[ClassLabel],
    colors: Sequence[tuple[int, int, int]],
    *,
    time_seconds: float | None = None,
) -> np.ndarray:
    """Draw boxes, peak marks and a label list onto an RGBA layer (in place, also returned).

    Sounding-on-screen classes get their box and peak; every class that is not ``absent`` gets a
    label line "name: state confidence" in its colour.
    """
    height, width = layer.shape[:2]
    image = Image.fromarray(layer, "RGBA")
    draw = ImageDraw.Draw(image)
    font_px = max(9, min(16, height // 14))
    font = _font(font_px)
    lines: list[tuple[str, tuple[int, int, int]]] = []
    if time_seconds is not None:
        lines.append((f"{time_seconds:6.2f} s", (255, 255, 255)))
    for record, color in zip(records, colors):
        if record.state == "absent":
            continue
        lines.append((f"{record.name}: {record.state} {record.confidence:.2f}", color))
        if record.state == "sounding-on-screen" and record.box is not None:
            x0, y0, x1, y1 = record.box
            box = (x0 * width, y0 * height, x1 * width - 1, y1 * height - 1)
            draw.rectangle(box, outline=(*color, 255), width=max(1, height // 120))
            px, py, r = record.peak[0] * width, record.peak[1] * height, max(2, height // 60)
            draw.line((px - r, py, px + r, py), fill=(255, 255, 255, 255), width=1)
            draw.line((px, py - r, px, py + r), fill=(255, 255, 255, 255), width=1)
    y = 2
    for text, color in lines:
        left, top, right, bottom = draw.textbbox((4, y), text, font=font)
        draw.rectangle((left - 2, top - 1, right + 2, bottom + 1), fill=(0, 0, 0, 150))
        draw.text((4, y), text, fill=(*color, 255), font=font)
        y = bottom + 3
    return np.asarray(image).copy()


def blend(frame: np.ndarray, layer: np.ndarray | Image.Image) -> np.ndarray:
    """Alpha-blend an RGBA layer (H, W, 4) over an RGB frame (H, W, 3), both uint8.

    ``layer`` may be a PIL RGBA image already (callers that reuse a layer keep it as one).
    """
    image = layer if isinstance(layer, Image.Image) else Image.fromarray(layer, "RGBA")
    base = Image.fromarray(np.ascontiguousarray(frame))
    base.paste(image, (0, 0), image)
    return np.asarray(base)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) image as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)  # speed over size
    return buffer.getvalue()


class OverlayVideoWriter:
    """Streams frames into an H.264 mp4 and interleaves the audio of a source file.

    The source's first audio stream is copied packet for packet when its codec fits in mp4 (AAC,
    MP3), else re-encoded to AAC at its own sample rate and channel layout, so the overlay keeps
    the original sound. The file is written under a temporary name and renamed on ``close``.

    Args:
        path: Output ``.mp4``.
        width: Frame width (even).
        height: Frame height (even).
        fps: Frame rate of the written video.
        audio_source: File whose audio to carry, or None for a silent video.
        crf: x264 constant rate factor.
        preset: x264 preset; "superfast" costs about 2/3 of "veryfast" per frame for a larger
            file (an overlay is a preview).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        width: int,
        height: int,
        fps: float,
        audio_source: str | os.PathLike[str] | None = None,
        crf: int = 23,
        preset: str = "superfast",
    ) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._rate = Fraction(fps).limit_denominator(1001)
        self._out = av.open(str(self._tmp), mode="w", format="mp4")
        self._video = self._out.add_stream("libx264", rate=self._rate)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        self._video.options = {"crf": str(crf), "preset": preset}
        self._count = 0
        self._audio: _AudioCarrier | None = None
        if audio_source is not None:
            self._audio = _AudioCarrier(Path(audio_source), self._out)

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (height, width, 3) frame, then the audio up to its end time."""
        av_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        av_frame.pts, av_frame.time_base = self._count, 1 / self._rate
        self._out.mux(self._video.encode(av_frame))
        self._count += 1
        if self._audio is not None:
            self._audio.write_until(float(self._count / self._rate))

    def close(self) -> Path:
        """Flush the encoders, finish the file and move it into place."""
        try:
            self._out.mux(self._video.encode(None))
            if self._audio is not None:
                self._audio.write_until(math.inf)
                self._audio.close()
            self._out.close()
            os.replace(self._tmp, self.path)
        finally:
            self._tmp.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        """Drop the partial file (after an error)."""
        try:
            if self._audio is not None:
                self._audio.close()
            self._out.close()
        except (av.FFmpegError, OSError, ValueError):
            pass
        self._tmp.unlink(missing_ok=True)


class _AudioCarrier:
    """Reads the source's audio packets and muxes them (copied or re-encoded) up to a time."""

    def __init__(self, source: Path, out: Any) -> None:
        self._context = open_container(source, str(source))
        self._input = self._context.__enter__()
        if not self._input.streams.audio:
            self.close()
            raise MediaError(f"{source}: has no audio stream")
        self._stream = self._input.streams.audio[0]
        self._origin = time_origin_seconds(self._input)
        self._out = out
        codec = self._stream.codec_context
        self._copy = codec.name in _COPY_AUDIO_CODECS
        if self._copy:
            self._target = out.add_stream_from_template(self._stream)
        else:
            layout = "mono" if codec.channels == 1 else "stereo"  # AAC needs a named layout
            self._target = out.add_stream("aac", rate=codec.sample_rate, layout=layout)
            self._resampler = av.AudioResampler(
                format="fltp", layout=layout, rate=codec.sample_rate, frame_size=1024
            )
        self._packets = self._input.demux(self._stream)
        self._next_pts: int | None = None
        self._done = False

    def write_until(self, seconds: float) -> None:
        while not self._done:
            packet = next(self._packets, None)
            if packet is None or packet.size == 0:  # end of stream (or the demuxer's flush packet)
                self._finish()
                return
            self._mux(packet)
            if packet.pts is not None and packet.pts * packet.time_base - self._origin >= seconds:
                return

    def _mux(self, packet: Any) -> None:
        if self._copy:
            shift = int(round(self._origin / packet.time_base))
            if packet.pts is not None:
                packet.pts -= shift
            if packet.dts is not None:
                packet.dts -= shift
            packet.stream = self._target
            self._out.mux(packet)
            return
        for frame in packet.decode():
            self._encode(frame)

    def _encode(self, frame: Any) -> None:
        rate = self._target.codec_context.sample_rate
        if self._next_pts is None:  # keep a late-starting track late
            start = 0.0 if frame is None or frame.time is None else frame.time - self._origin
            self._next_pts = max(0, int(round(start * rate)))
        if frame is not None:
            frame.pts = None
        for piece in self._resampler.resample(frame):
            piece.pts, piece.time_base = self._next_pts, Fraction(1, rate)
            self._next_pts += piece.samples
            self._out.mux(self._target.encode(piece))

    def _finish(self) -> None:
        if not self._copy:
            for frame in self._stream.decode(None):  # drain the decoder
                self._encode(frame)
            self._encode(None)
            self._out.mux(self._target.encode(None))
        self._done = True

    def close(self) -> None:
        self._context.__exit__(None, None, None)
