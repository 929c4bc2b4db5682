"""The overlay video: a streaming H.264 mp4 writer that carries the source's original audio track
(``ier localize``'s ``overlay.mp4``; the frames come from ``ier.viz``)."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from ier.errors import MediaError
from ier.media import open_container, time_origin_seconds

_COPY_AUDIO_CODECS = {"aac", "mp3"}  # stored in mp4 as is; anything else is re-encoded to AAC


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
        preset: x264 preset; "ultrafast" costs about 2/3 of "superfast" per frame (measured at
            480x270) for a somewhat larger file: an overlay is a preview.
        colorspace: Colour matrix to tag the stream with ("bt601" or "bt709"); frames given to
            ``write_yuv`` must use it.
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
        preset: str = "ultrafast",
        colorspace: str = "bt601",
    ) -> None:
        self.path = Path(path)
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._rate = Fraction(fps).limit_denominator(1001)
        self._out = av.open(str(self._tmp), mode="w", format="mp4")
        self._video = self._out.add_stream("libx264", rate=self._rate)
        self._video.width, self._video.height, self._video.pix_fmt = width, height, "yuv420p"
        # One x264 thread for overlay-sized frames: it runs on a thread of its own beside the
        # model, and its frame threads cost CPU without speeding up a small frame.
        threads = "1" if width * height <= 640 * 480 else "0"
        self._video.options = {"crf": str(crf), "preset": preset, "threads": threads}
        if colorspace == "bt709":  # tag it, so players read the passed-through frames right
            context = self._video.codec_context
            context.colorspace, context.color_primaries, context.color_trc = 1, 1, 1
        self.width, self.height = width, height
        self._count = 0
        self._audio: _AudioCarrier | None = None
        if audio_source is not None:
            self._audio = _AudioCarrier(Path(audio_source), self._out)

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 (height, width, 3) RGB frame, then the audio up to its end time."""
        self._write(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))

    def write_yuv(self, frame: np.ndarray) -> None:
        """Append one yuv420p frame ((height * 3 / 2, width) uint8, ``ier.viz.blend_yuv``'s layout):
        no colour conversion on the way to the encoder."""
        self._write(av.VideoFrame.from_ndarray(frame, format="yuv420p"))

    def _write(self, av_frame: Any) -> None:
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
