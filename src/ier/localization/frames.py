"""The decoding side of ``ier.localize``: a thread that decodes the video once, converts only the
frames that are needed, at the size they are needed, and hands them over in time order.

Every decoded frame is needed only for the overlay, and then only at the display size, in
yuv420p (what the encoder takes: no colour conversion on the way). A window's frame (the one
shown at its centre) is also converted to RGB once, resized to the model's input and, for the
report's key frames, to the display size. Conversions reuse one scaler context each, which is
most of their cost when made per frame.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ier import viz
from ier.errors import MediaError
from ier.video import VideoInfo, iter_video_frames

logger = logging.getLogger(__name__)

_TIME_EPS = 1e-4  # seconds; a frame at a window's centre (to rounding) is that window's frame
HOLD_AFTER_SECONDS = 0.5
"""A soundtrack that runs longer than this past the last frame is localized on the held frame."""


@dataclass(frozen=True)
class WindowFrame:
    """The frame shown at window ``index``'s centre.

    Attributes:
        index: Window index.
        time: The frame's own time in seconds (at or before the centre; the last frame's time
            when the picture has ended).
        image: (S, S, 3) uint8, squashed to the model's input size.
        display: (H, W, 3) uint8 at the display size, or None when no report wants it.
    """

    index: int
    time: float
    image: np.ndarray
    display: np.ndarray | None


@dataclass(frozen=True)
class PictureFrame:
    """One overlay frame: its time and its yuv420p pixels at the display size
    ((H * 3 / 2, W) uint8, ``ier.viz.blend_yuv``'s layout)."""

    time: float
    yuv: np.ndarray


@dataclass(frozen=True)
class PictureEnd:
    """The last event: where the decoded picture ended, and whether windows and overlay frames
    after it hold the last frame (a soundtrack longer than the picture)."""

    frames_end_seconds: float
    held: bool


class _Converter:
    """One decoded frame to the arrays this run needs, each with its own cached scaler."""

    def __init__(self, model_size: int, display: tuple[int, int]) -> None:
        from av.video.reformatter import VideoReformatter

        self.model_size, (self.width, self.height) = model_size, display
        self._yuv, self._rgb = VideoReformatter(), VideoReformatter()
        self.matrix: str | None = None

    def yuv(self, frame: Any) -> np.ndarray:
        """yuv420p at the display size; passes the decoder's planes through when they fit."""
        if self.matrix is None:  # the colour matrix of the frames passed through (tagged or 601)
            passthrough = frame.format.name == "yuv420p"
            self.matrix = "bt709" if passthrough and frame.colorspace == 1 else "bt601"
        same_size = (frame.width, frame.height) == (self.width, self.height)
        if frame.format.name != "yuv420p" or not same_size:
            frame = self._yuv.reformat(
                frame, self.width, self.height, "yuv420p",
                dst_colorspace="itu709" if self.matrix == "bt709" else "itu601",
                dst_color_range="MPEG", threads=1,
            )  # fmt: skip
        return frame.to_ndarray()

    def window(self, frame: Any, *, display: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """(model image, display RGB or None) of a window's frame."""
        rgb = self._rgb.reformat(frame, format="rgb24", threads=1).to_ndarray()
        image = viz.resize_display(rgb, self.model_size, self.model_size)
        return image, viz.resize_display(rgb, self.width, self.height) if display else None


class FrameReader:
    """Decodes ``path`` on a background thread and yields ``WindowFrame`` and ``PictureFrame``
    events in time order (a window's event comes before the overlay frames after its frame),
    then one ``PictureEnd``.

    Memory: the queue holds at most ``max_queued`` events.

    Args:
        path: The video.
        info: Its probe.
        centres: Window centre times, seconds, increasing.
        model_size: Side of the model's square input.
        display: (width, height) of overlay and key frames.
        overlay: Convert every frame for the overlay (else only the windows' frames).
        window_displays: Also give each window's frame at the display size (report key frames).
        hop_seconds: The window hop (a truncation shorter than one hop is tolerated).
    """

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        centres: np.ndarray,
        *,
        model_size: int,
        display: tuple[int, int],
        overlay: bool,
        window_displays: bool,
        hop_seconds: float,
        max_queued: int = 48,
    ) -> None:
        self.path, self.info, self.centres = path, info, [float(c) for c in centres]
        self.overlay, self.window_displays, self.hop = overlay, window_displays, hop_seconds
        self.convert = _Converter(model_size, display)
        self.busy_seconds = 0.0  # decoding and converting, on the reader thread
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ier-decode", daemon=True)

    @property
    def matrix(self) -> str:
        """The colour matrix of the overlay frames (known after the first frame)."""
        return self.convert.matrix or "bt601"

    def __iter__(self) -> Iterator[WindowFrame | PictureFrame | PictureEnd]:
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, PictureEnd):
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the thread (also when the consumer stopped early) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)

    def _put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _run(self) -> None:
        try:
            self._decode()
        except _Stopped:
            pass
        except BaseException as err:  # handed to the consumer, which raises it
            if not self._stop.is_set():
                try:
                    self._put(_media_error(err, self.path))
                except _Stopped:
                    pass

    def _window(self, index: int, shown: tuple[float, Any]) -> WindowFrame:
        image, display = self.convert.window(shown[1], display=self.window_displays)
        return WindowFrame(index, shown[0], image, display)

    def _decode(self) -> None:
        centres, next_window = self.centres, 0
        previous: tuple[float, Any] | None = None
        last_yuv: np.ndarray | None = None
        # One decoder thread up to 720p: this reader is already a thread of its own beside the
        # model, and FFmpeg's frame threads cost about 20 % more CPU at 360p (docs/localize.md).
        small = self.info.width * self.info.height <= 1280 * 720
        frames = iter_video_frames(self.path, threads=1 if small else 0)
        while True:
            tick = time.perf_counter()
            try:
                item = next(frames, None)
            except MediaError as err:  # the decoder fails on a damaged or cut-off packet
                where = previous[0] + self._frame_seconds() if previous else 0.0
                reason = str(err.__cause__ or err).splitlines()[0]
                raise MediaError(
                    f"{self.path}: the video stops decoding at {where:.2f} s ({reason}); the "
                    "file is truncated or corrupt"
                ) from err
            if item is None:
                self.busy_seconds += time.perf_counter() - tick
                break
            t, frame = item
            ready = []
            while next_window < len(centres) and previous is not None and (
                t > centres[next_window] + _TIME_EPS
            ):
                ready.append(self._window(next_window, previous))
                next_window += 1
            picture = None
            if self.overlay:
                last_yuv = self.convert.yuv(frame)
                picture = PictureFrame(t, last_yuv)
            previous = (t, frame)
            self.busy_seconds += time.perf_counter() - tick
            for event in ready:
                self._put(event)
            if picture is not None:
                self._put(picture)
        if previous is None:
            raise MediaError(f"{self.path}: video stream has no decodable frames")
        end = self._picture_end(previous[0])
        tick = time.perf_counter()
        rest = [self._window(i, previous) for i in range(next_window, len(centres))]
        self.busy_seconds += time.perf_counter() - tick
        for event in rest:
            self._put(event)
        if end.held and last_yuv is not None:
            self._hold(previous[0], last_yuv)
        self._put(end)

    def _frame_seconds(self) -> float:
        return 1.0 / self.info.fps if self.info.fps > 0 else 0.1

    def _picture_end(self, last_time: float) -> PictureEnd:
        """Where the picture ends; a file that promises more picture than it holds is corrupt."""
        frames_end = last_time + self._frame_seconds()
        promised = self.info.video_seconds
        if promised is None:
            promised = self.info.duration_seconds
        if promised - frames_end > max(HOLD_AFTER_SECONDS, self.hop):
            raise MediaError(
                f"{self.path}: video ends at {frames_end:.2f} s but the file says "
                f"{promised:.2f} s; the file is truncated or corrupt"
            )
        held = self.info.duration_seconds - frames_end > HOLD_AFTER_SECONDS
        if held:
            logger.warning(
                "%s: the picture ends at %.2f s and the soundtrack at %.2f s; windows after "
                "the picture use its last frame", self.path, frames_end,
                self.info.duration_seconds,
            )  # fmt: skip
        return PictureEnd(frames_end, held)

    def _hold(self, last_time: float, yuv: np.ndarray) -> None:
        """Overlay frames that repeat the last one until the soundtrack ends."""
        step = self._frame_seconds()
        count = 1
        while last_time + count * step < self.info.duration_seconds - _TIME_EPS:
            self._put(PictureFrame(last_time + count * step, yuv.copy()))
            count += 1


class _Stopped(Exception):
    """The consumer closed the reader."""


def _media_error(err: BaseException, path: Path) -> BaseException:
    """FFmpeg errors from converting frames, as the ``MediaError`` the decoder would raise."""
    import av

    if isinstance(err, av.FFmpegError):
        return MediaError(f"{path}: corrupt or unreadable video ({str(err).splitlines()[0]})")
    return err
