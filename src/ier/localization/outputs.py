"""Outputs of ``ier.localize`` written while streaming (overlay video, maps.npz, key frames) and
the ``localization.json`` document with its validator."""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
import zipfile
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ier import overlay_labels, viz
from ier.localization.html import render_report
from ier.localization.results import LocalizationResult, WindowRecord, localization_document
from ier.localization.schema import dumps_document
from ier.overlay_video import OverlayVideoWriter

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)



# --------------------------------------------------------------------------- streaming sinks


class OutputSinks:
    """Receives frames and processed windows from ``ier.localize`` and writes the outputs.

    The overlay is written while streaming: a frame waits in a small buffer until the window
    whose centre is nearest to it has been processed, then goes to a background thread that
    draws each window's layer (heat maps, boxes, labels; and the report's key frames), blends
    it onto the frames nearest to that window and encodes them (``_OverlayThread``), so all of
    that overlaps with the model.
    """

    def __init__(
        self,
        result: LocalizationResult,
        out_dir: Path | None,
        *,
        n_windows: int,
        save_maps: bool,
        write_overlay: bool,
        write_report: bool,
    ) -> None:
        self.result, self.out, self.n_windows = result, out_dir, n_windows
        settings, info = result.settings, result.video
        self.first_centre, self.hop = settings.window_seconds / 2, settings.hop_seconds
        self.colors = viz.class_colors(len(result.classes))
        self.width, self.height = viz.display_size(
            info.width, info.height,
            min_side=settings.min_display_side, max_side=settings.max_display_side,
        )  # fmt: skip
        self.overlay: _OverlayThread | None = None
        self.maps: _NpzMapWriter | None = None
        self.report = out_dir is not None and write_report
        if out_dir is not None and write_overlay:
            fps = info.fps if info.fps > 0 else 25.0
            width, height, source = self.width, self.height, result.video_path

            def make_writer(matrix: str) -> OverlayVideoWriter:
                return OverlayVideoWriter(
                    out_dir / "overlay.mp4", width=width, height=height, fps=fps,
                    audio_source=source, colorspace=matrix,
                )  # fmt: skip

            self.overlay = _OverlayThread(make_writer, self._layer)
        if out_dir is not None and save_maps:
            self.maps = _NpzMapWriter(out_dir / "maps.npz", n_windows)
        self.matrix = "bt601"  # colour matrix of the overlay frames (set by the first one)
        self.frames: deque[tuple[float, np.ndarray]] = deque()
        spaced = np.linspace(0, n_windows - 1, min(settings.key_frames, n_windows))
        self.spaced_keys = {int(round(i)) for i in spaced}
        self.best: dict[int, tuple[float, int]] = {}  # class -> (confidence, window index)
        self.key_images: dict[int, np.ndarray] = {}
        self.processed = 0
        self.timings = {"render": 0.0, "encode": 0.0}  # this thread's share

    @property
    def wants_frames(self) -> bool:
        """Whether every decoded frame is needed (for the overlay)."""
        return self.overlay is not None

    def frame(self, t: float, yuv: np.ndarray, matrix: str) -> None:
        """Queue a decoded overlay frame (yuv420p at the display size)."""
        if self.overlay is not None:
            self.matrix = matrix  # the reader's, fixed by the first frame
            self.frames.append((t, yuv))
            self._flush(final=False)

    def window(self, record: WindowRecord, maps: np.ndarray, display: np.ndarray | None) -> None:
        """Take one processed window: its smoothed maps (C, h, w) and its centre display frame."""
        index = record.index
        if self.maps is not None:
            self.maps.write(record.time_seconds, maps, self.result.classes)
        key = self._is_key(record) and display is not None
        keep = self._keep_keys() if key else None
        if self.overlay is not None:  # the overlay thread draws it (fonts stay on one thread)
            self.overlay.layer(index, record, maps, self.matrix, display if key else None, keep)
        elif key and display is not None:
            self.key_images[index] = viz.blend(display, self._layer(record, maps))
            _prune(self.key_images, keep)
        self.processed = index + 1
        self._flush(final=False)

    def _is_key(self, record: WindowRecord) -> bool:
        if not self.report:
            return False
        key = record.index in self.spaced_keys
        for c, item in enumerate(record.classes):
            best = self.best.get(c)
            if item.state == "sounding-on-screen" and (best is None or item.confidence > best[0]):
                self.best[c] = (item.confidence, record.index)
                key = True
        return key

    def _keep_keys(self) -> set[int]:
        return self.spaced_keys | {index for _, index in self.best.values()}

    def _layer(self, record: WindowRecord, maps: np.ndarray) -> np.ndarray:
        shown = [item.state == "sounding-on-screen" for item in record.classes]
        layer = viz.heat_layer(maps, shown, self.colors, width=self.width, height=self.height)
        return overlay_labels.annotate_layer(
            layer, record.classes, self.colors, time_seconds=record.time_seconds
        )

    def _nearest_window(self, t: float) -> int:
        index = int(math.floor((t - self.first_centre) / self.hop + 0.5))
        return min(max(index, 0), self.n_windows - 1)

    def _flush(self, *, final: bool) -> None:
        if self.overlay is None:
            return
        while self.frames:
            t, yuv = self.frames[0]
            index = self._nearest_window(t)
            if index >= self.processed and not final:
                return
            self.frames.popleft()
            self.overlay.submit(yuv, index)

    def finish(self, n_processed: int) -> None:
        """All windows are processed: send the remaining frames to the overlay."""
        self.processed = n_processed
        self._flush(final=True)

    def close(self) -> None:
        """Finish the overlay and maps files (waits for the overlay thread)."""
        if self.overlay is not None:
            self.result.outputs["overlay"] = self.overlay.close()
            self.key_images = self.overlay.key_images
            for key, value in self.overlay.busy.items():
                self.timings[key] += value
        if self.maps is not None:
            tick = time.perf_counter()
            self.result.outputs["maps"] = self.maps.close()
            self.timings["encode"] += time.perf_counter() - tick

    def abort(self) -> None:
        """Stop the overlay thread and remove partial files after an error."""
        if self.overlay is not None:
            self.overlay.abort()
        if self.maps is not None:
            self.maps.abort()

    def write_documents(self) -> None:
        """Write localization.json and (if asked) report.html."""
        assert self.out is not None
        json_path = self.out / "localization.json"
        self.result.outputs["json"] = json_path
        if self.report:
            self.result.outputs["report"] = self.out / "report.html"
        document = localization_document(self.result)
        tick = time.perf_counter()
        _write_text(json_path, dumps_document(document))
        self.timings["encode"] += time.perf_counter() - tick
        if self.report:
            tick = time.perf_counter()
            keys = sorted(self.key_images.items())
            html = render_report(document, [(i, img) for i, img in keys], video="overlay.mp4")
            _write_text(self.out / "report.html", html)
            self.timings["render"] += time.perf_counter() - tick


def _prune(images: dict[int, np.ndarray], keep: set[int] | None) -> None:
    if keep is not None:
        for index in [i for i in images if i not in keep]:
            del images[index]


class _OverlayThread:
    """Draws window layers, blends them onto frames and encodes the frames, on a background
    thread, in the order submitted (a window's layer always before the frames that use it).

    Memory: at most ``max_queued`` items wait, and the layers of windows whose frames are not
    all written yet. An error on the thread is raised by the next call or by ``close``.
    """

    def __init__(self, make_writer: Any, draw: Any, max_queued: int = 32) -> None:
        self._make_writer, self._draw = make_writer, draw
        self._writer: OverlayVideoWriter | None = None
        self._layers: dict[int, viz.YuvLayer | None] = {}
        self._matrix = "bt601"  # the frames' colour matrix, as the layers are drawn for it
        self.key_images: dict[int, np.ndarray] = {}  # report key frames, by window
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queued)
        self._error: BaseException | None = None
        self._aborted = threading.Event()
        self.busy = {"render": 0.0, "encode": 0.0}  # seconds on the thread: draw + blend, encode
        self._thread = threading.Thread(target=self._run, name="ier-overlay", daemon=True)
        self._thread.start()

    def layer(
        self, index: int, record: Any, maps: np.ndarray, matrix: str,
        display: np.ndarray | None, keep: set[int] | None,
    ) -> None:  # fmt: skip
        """Draw window ``index``'s layer; with ``display``, also its key frame (keeping only the
        key frames in ``keep``)."""
        self._put(("layer", index, record, maps, matrix, display, keep))

    def submit(self, yuv: np.ndarray, index: int) -> None:
        """Blend window ``index``'s layer onto a yuv420p frame and encode it."""
        self._put(("frame", yuv, index))

    def _put(self, item: tuple) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise RuntimeError("the overlay thread stopped") from self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None or self._aborted.is_set():
                continue  # drain until the end marker
            try:
                if item[0] == "layer":
                    self._layer(*item[1:])
                else:
                    self._frame(*item[1:])
            except BaseException as err:  # raised on the caller's thread
                self._error = err

    def _layer(self, index: int, record: Any, maps: np.ndarray, matrix: str,
               display: np.ndarray | None, keep: set[int] | None) -> None:  # fmt: skip
        tick = time.perf_counter()
        rgba = self._draw(record, maps)
        self._matrix = matrix
        self._layers[index] = viz.yuv_layer(rgba, matrix)
        if display is not None:
            self.key_images[index] = viz.blend(display, rgba)
            _prune(self.key_images, keep)
        self.busy["render"] += time.perf_counter() - tick

    def _frame(self, yuv: np.ndarray, index: int) -> None:
        tick = time.perf_counter()
        viz.blend_yuv(yuv, self._layers.get(index))
        for old in [i for i in self._layers if i < index]:
            del self._layers[old]
        blended = time.perf_counter()
        if self._writer is None:
            self._writer = self._make_writer(self._matrix)
        self._writer.write_yuv(yuv)
        self.busy["render"] += blended - tick
        self.busy["encode"] += time.perf_counter() - blended

    def _stop(self) -> None:
        while True:
            try:
                self._queue.put(None, timeout=0.1)
                break
            except queue.Full:
                if not self._thread.is_alive():
                    break
        self._thread.join()

    def close(self) -> Path:
        """Wait for every frame, finish the file and return its path."""
        self._stop()
        if self._error is not None:
            self.abort()
            raise self._error
        if self._writer is None:
            raise RuntimeError("the overlay got no frames")
        tick = time.perf_counter()
        path = self._writer.close()
        self.busy["encode"] += time.perf_counter() - tick
        return path

    def abort(self) -> None:
        """Drop queued frames, stop the thread and remove the partial file."""
        self._aborted.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._stop()
        if self._writer is not None:
            self._writer.abort()
            self._writer = None


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class _NpzMapWriter:
    """Streams (n_windows, C, h, w) float16 maps into ``maps.npz`` without holding them."""

    def __init__(self, path: Path, n_windows: int) -> None:
        self.path, self.n_windows = path, n_windows
        self.tmp = path.with_name(f".{path.stem}.partial.npz")
        self.zip = zipfile.ZipFile(self.tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
        self.member: Any = None
        self.times: list[float] = []
        self.classes: tuple[str, ...] = ()

    def write(self, time_seconds: float, maps: np.ndarray, classes: tuple[str, ...]) -> None:
        if self.member is None:
            self.classes = classes
            self.member = self.zip.open("maps.npy", "w", force_zip64=True)
            header = {
                "descr": "<f2",
                "fortran_order": False,
                "shape": (self.n_windows, *maps.shape),
            }
            np.lib.format.write_array_header_1_0(self.member, header)
        self.member.write(np.ascontiguousarray(maps, dtype="<f2").tobytes())
        self.times.append(time_seconds)

    def close(self) -> Path:
        if self.member is not None:
            self.member.close()
        for name, array in (("times.npy", np.asarray(self.times, np.float64)),
                            ("classes.npy", np.asarray(self.classes, dtype=str))):  # fmt: skip
            with self.zip.open(name, "w") as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
        self.zip.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        try:
            if self.member is not None:
                self.member.close()
            self.zip.close()
        except (OSError, ValueError):
            pass
        self.tmp.unlink(missing_ok=True)


# --------------------------------------------------------------------------- localization.json


