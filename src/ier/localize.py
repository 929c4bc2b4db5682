"""Sliding-window localization of a whole video: streaming decode, batched model windows, EMA
smoothing, a per-class state decision, and the overlay / JSON / maps / HTML outputs.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from ier import viz
from ier.audio import load_audio
from ier.errors import CheckpointError, ConfigError, IerError, MediaError
from ier.video import VideoInfo, iter_frames, probe, resize_rgb

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
STATES = ("sounding-on-screen", "visible-silent", "heard-off-screen", "absent")
DEFAULT_MODEL = "ier-wild-small"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Bundled model name -> one-line description; the weights live in WEIGHTS_DIR/<name>.safetensors.
BUNDLED_MODELS: dict[str, str] = {
    "ier-wild-small": "IEr with a small backbone, trained on the built-in benchmark (ier scenes)",
}
OUTPUT_NAMES = ("overlay.mp4", "localization.json", "maps.npz", "report.html")
_AUDIO_CHUNK_SECONDS = 30.0  # audio is decoded in chunks of this length (bounded memory)
_AUDIO_LEAD_SECONDS = 0.5  # a chunk starts this early so resampling edges fall outside windows


# --------------------------------------------------------------------------- settings and records


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of the per-class state decision (docs/localize.md, "Decision rule").

    Attributes:
        score_threshold: The class is heard when its cue (``audio_presence`` if the model has it,
            else the model's score) is at least this.
        peak_threshold: A heard class is on screen when its smoothed map peak is at least this.
        visual_threshold: A class that is not heard is visible-silent when the model's
            ``visual_presence`` is at least this (only for models that have that method).
        box_fraction: The box is the connected region of the map >= ``box_fraction`` x peak
            that holds the peak.
    """

    score_threshold: float = 0.5
    peak_threshold: float = 0.5
    visual_threshold: float = 0.5
    box_fraction: float = 0.5


@dataclass(frozen=True)
class LocalizeSettings:
    """How ``localize`` windows, smooths, decides and renders.

    Attributes:
        window_seconds: Length of one analysis window (audio span; the frame is its centre).
        hop_seconds: Step between window starts.
        smoothing: EMA weight of the previous window's smoothed maps and cues (0 = none).
        rule: Decision thresholds.
        batch_size: Windows per model call.
        min_display_side: Overlay and key frames of a smaller video are enlarged to this long
            side in pixels (legible labels); None keeps the original size.
        max_display_side: A larger video is shrunk to this long side (None = original).
        key_frames: Evenly spaced key frames in the report (plus each class's best window).
    """

    window_seconds: float = 1.0
    hop_seconds: float = 0.5
    smoothing: float = 0.3
    rule: DecisionRule = field(default_factory=DecisionRule)
    batch_size: int = 8
    min_display_side: int | None = 224
    max_display_side: int | None = 480
    key_frames: int = 6

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and self.hop_seconds > 0):
            raise ConfigError(
                f"window and hop must be > 0 s, got {self.window_seconds} and {self.hop_seconds}"
            )
        if not 0 <= self.smoothing < 1:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smoothing}")
        for name, value in asdict(self.rule).items():
            if not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.batch_size < 1 or self.key_frames < 0:
            raise ConfigError("batch_size must be >= 1 and key_frames >= 0")


@dataclass(frozen=True)
class ClassRecord:
    """One class in one window. Positions are fractions of the frame width/height.

    Attributes:
        name: Class name.
        state: One of ``STATES``.
        confidence: Confidence in ``state``, in [0, 1].
        score: Smoothed model score.
        peak_value: Smoothed map peak in [0, 1].
        peak: (x, y) of the map peak.
        box: (x0, y0, x1, y1) of the thresholded map region around the peak.
        visual: Smoothed ``visual_presence`` cue, or None when the model has none.
        audio: Smoothed ``audio_presence`` cue, or None when the model has none.
    """

    name: str
    state: str
    confidence: float
    score: float
    peak_value: float
    peak: tuple[float, float]
    box: tuple[float, float, float, float] | None
    visual: float | None = None
    audio: float | None = None


@dataclass(frozen=True)
class WindowRecord:
    """One analysis window: [start_seconds, end_seconds), frame at ``time_seconds`` (centre)."""

    index: int
    start_seconds: float
    end_seconds: float
    time_seconds: float
    classes: tuple[ClassRecord, ...]


@dataclass
class LocalizationResult:
    """Everything ``localize`` found, plus where it wrote its outputs.

    Attributes:
        video_path: The input video.
        video: Its probed metadata.
        model_name: Bundled name, checkpoint path or class name of the model.
        classes: Model class names.
        settings: The settings used.
        windows: One record per window, in time order.
        cues: Which optional model cues were used ("visual_presence", "audio_presence" -> bool).
        outputs: Output kind -> file path (empty without ``out_dir``).
        timings: Seconds spent: total, decode, model, render (overlay, key frames, files).
    """

    video_path: Path
    video: VideoInfo
    model_name: str
    classes: tuple[str, ...]
    settings: LocalizeSettings
    windows: list[WindowRecord] = field(default_factory=list)
    cues: dict[str, bool] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def track(self, name: str) -> list[tuple[float, str, float]]:
        """(time_seconds, state, confidence) of one class over all windows."""
        index = self.classes.index(name)
        return [
            (w.time_seconds, w.classes[index].state, w.classes[index].confidence)
            for w in self.windows
        ]

    def to_dict(self) -> dict[str, Any]:
        """The ``localization.json`` document (schema in docs/localize.md)."""
        from ier.report import localization_document

        return localization_document(self)


# --------------------------------------------------------------------------- models


def load_model(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> nn.Module:
    """Load a bundled model by name or any checkpoint by path, in eval mode.

    Raises:
        CheckpointError: Unknown name, missing bundled weights, or a bad checkpoint.
    """
    text = os.fspath(name_or_path)
    bundled = WEIGHTS_DIR / f"{text}.safetensors"
    if text in BUNDLED_MODELS or bundled.exists():
        if not bundled.exists():
            raise CheckpointError(
                f"bundled model {text!r} has no weights in this install yet ({bundled} is "
                "missing); pass a checkpoint path with --model, or install a release that ships it"
            )
        path = bundled
    elif Path(text).exists():
        path = Path(text)
    else:
        raise CheckpointError(
            f"{text!r} is neither a bundled model ({', '.join(sorted(BUNDLED_MODELS))}) "
            "nor an existing checkpoint file"
        )
    try:
        from ier.checkpoint import load_model as load_checkpoint_model
    except ImportError as err:  # pragma: no cover - only while ier.checkpoint is being written
        raise CheckpointError(f"cannot load {path}: ier.checkpoint is unavailable ({err})") from err
    model = load_checkpoint_model(path)
    model.name = text  # type: ignore[attr-defined]
    return model.eval()


def _resolve_model(model: nn.Module | str | os.PathLike[str] | None) -> tuple[nn.Module, str]:
    if model is None or isinstance(model, (str, os.PathLike)):
        name = os.fspath(model) if model is not None else DEFAULT_MODEL
        return load_model(name), name
    name = getattr(model, "name", None) or getattr(getattr(model, "config", None), "name", None)
    return model.eval(), str(name or type(model).__name__)


def _model_io(model: nn.Module) -> tuple[int, int, float]:
    """(input_size px, sample_rate Hz, clip_seconds) from ``model.config`` (architecture.md)."""
    config = getattr(model, "config", None)
    frontend = getattr(config, "frontend", None)
    size = getattr(config, "input_size", None)
    if not size or frontend is None or not getattr(model, "classes", None):
        raise ConfigError(
            f"{type(model).__name__} does not follow the model interface: it needs .classes, "
            ".config.input_size and .config.frontend (sample_rate, clip_seconds)"
        )
    return int(size), int(frontend.sample_rate), float(frontend.clip_seconds)


# --------------------------------------------------------------------------- decision and boxes


def decide(
    score: float,
    peak: float,
    rule: DecisionRule,
    *,
    visual: float | None = None,
    audio: float | None = None,
) -> tuple[str, float]:
    """The state of one class in one window, with its confidence (docs/localize.md).

    Args:
        score: Model score in [0, 1] (sounding and visible).
        peak: Map peak in [0, 1].
        rule: Thresholds.
        visual: Optional visual-only presence in [0, 1].
        audio: Optional audio-only presence in [0, 1]; replaces ``score`` as the heard cue.

    Returns:
        (state, confidence): the confidence is the geometric mean of the two cues' support.
    """
    heard = audio if audio is not None else score
    if heard >= rule.score_threshold:
        if peak >= rule.peak_threshold:
            return "sounding-on-screen", math.sqrt(heard * peak)
        return "heard-off-screen", math.sqrt(heard * (1 - peak))
    if visual is not None and visual >= rule.visual_threshold:
        return "visible-silent", math.sqrt((1 - heard) * visual)
    if visual is not None:
        return "absent", math.sqrt((1 - heard) * (1 - visual))
    return "absent", 1 - heard


def peak_and_box(
    fine_map: np.ndarray, box_fraction: float
) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """Peak position and box of one (H, W) map, as fractions of W and H.

    The box bounds the connected region of ``fine_map >= box_fraction * peak`` (8-connected)
    that contains the peak; pixel i spans [i / W, (i + 1) / W).
    """
    height, width = fine_map.shape
    row, col = np.unravel_index(int(np.argmax(fine_map)), fine_map.shape)
    mask = fine_map >= box_fraction * fine_map[row, col]
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    rows, cols = np.nonzero(labels == labels[row, col])
    peak = (float((col + 0.5) / width), float((row + 0.5) / height))
    box = (
        float(cols.min() / width),
        float(rows.min() / height),
        float((cols.max() + 1) / width),
        float((rows.max() + 1) / height),
    )
    return peak, box


def window_times(duration_seconds: float, window_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times of every full window that fits in the video, seconds (n,)."""
    n = int(math.floor((duration_seconds - window_seconds) / hop_seconds + 1e-6)) + 1
    return np.arange(max(n, 0)) * hop_seconds


# --------------------------------------------------------------------------- streaming pieces


class _AudioReader:
    """Serves audio windows from chunks decoded on demand (memory holds one chunk)."""

    def __init__(self, path: Path, sample_rate: int, duration_seconds: float) -> None:
        self.path, self.rate, self.duration = path, sample_rate, duration_seconds
        self.chunk_start, self.chunk = 0.0, np.zeros(0, np.float32)

    def window(self, start_seconds: float, n_samples: int) -> np.ndarray:
        """(n_samples,) float32 from ``start_seconds``; zeros before 0 and after the end."""
        lead = max(0, int(round(-start_seconds * self.rate)))
        start = max(0.0, start_seconds)
        need = n_samples - lead
        offset = int(round((start - self.chunk_start) * self.rate))
        if offset < 0 or offset + need > len(self.chunk):
            self._load(max(0.0, start - _AUDIO_LEAD_SECONDS), need / self.rate)
            offset = int(round((start - self.chunk_start) * self.rate))
        piece = self.chunk[offset : offset + need]
        return np.pad(piece, (lead, n_samples - lead - len(piece)))

    def _load(self, start_seconds: float, min_seconds: float) -> None:
        span = max(_AUDIO_CHUNK_SECONDS, min_seconds + 2 * _AUDIO_LEAD_SECONDS)
        span = min(span, max(self.duration - start_seconds, min_seconds))
        self.chunk_start = start_seconds
        try:
            self.chunk = load_audio(
                self.path, sample_rate=self.rate, start_seconds=start_seconds,
                duration_seconds=span, end_tolerance_seconds=span,
            )  # fmt: skip
        except MediaError as err:
            if start_seconds <= 0:
                raise
            # The soundtrack ends before the picture: the rest of the video is silent.
            logger.warning("%s; treating audio from %.2f s on as silence", err, start_seconds)
            self.chunk = np.zeros(int(round(span * self.rate)), np.float32)


@dataclass
class _Pending:
    index: int
    image: np.ndarray  # (S, S, 3) model-size frame displayed at the window centre
    display: np.ndarray | None  # the same frame at display size (overlay, key frames)


class _Smoother:
    """Exponential moving average over windows: s_t = (1 - a) x_t + a s_{t-1}."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.state: dict[str, np.ndarray] = {}

    def __call__(self, key: str, value: np.ndarray) -> np.ndarray:
        previous = self.state.get(key)
        out = value if previous is None else (1 - self.weight) * value + self.weight * previous
        self.state[key] = out
        return out


class _Run:
    """One pass over a video: assigns centre frames to windows, runs the model in batches,
    smooths, decides, and hands each window and each display frame to the output sinks."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        model: nn.Module,
        settings: LocalizeSettings,
        sinks: Any,
        *,
        progress: bool = False,
    ) -> None:
        from tqdm import tqdm

        self.path, self.info, self.model = path, info, model
        self.settings, self.sinks = settings, sinks
        self.size, self.rate, self.clip_seconds = _model_io(model)
        self.classes = tuple(str(c) for c in model.classes)
        self.starts = window_times(
            info.duration_seconds, settings.window_seconds, settings.hop_seconds
        )
        self.centres = self.starts + settings.window_seconds / 2
        self.audio = _AudioReader(path, self.rate, info.duration_seconds)
        self.smooth = _Smoother(settings.smoothing)
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.has_visual = callable(getattr(model, "visual_presence", None))
        self.has_audio = callable(getattr(model, "audio_presence", None))
        self.records: list[WindowRecord] = []
        self.timings = {"decode": 0.0, "model": 0.0, "render": 0.0}
        self.bar = tqdm(total=len(self.starts), unit="window", disable=not progress, leave=False)

    def run(self) -> list[WindowRecord]:
        """Decode once, process every window, and return the records in time order."""
        pending: list[_Pending] = []
        previous: tuple[float, np.ndarray, np.ndarray | None] | None = None
        next_window, last_time = 0, -1.0
        for t, frame, display in self._frames():
            while (
                next_window < len(self.centres)
                and previous is not None
                and t > self.centres[next_window] + 1e-4
            ):
                pending.append(self._pending(next_window, previous))
                next_window += 1
            previous, last_time = (t, frame, display), t
            if len(pending) >= self.settings.batch_size:
                self._process(pending)
                pending = []
        if previous is None:
            raise MediaError(f"{self.path}: video stream has no decodable frames")
        self._check_complete(last_time)
        pending += [self._pending(i, previous) for i in range(next_window, len(self.centres))]
        self._process(pending)
        self.sinks.finish(len(self.records))
        self.bar.close()
        return self.records

    def _pending(self, index: int, shown: tuple[float, np.ndarray, np.ndarray | None]) -> _Pending:
        """Window ``index`` takes the frame displayed at its centre (the last one at or before)."""
        return _Pending(index, resize_rgb(shown[1], self.size), shown[2])

    def _frames(self) -> Iterator[tuple[float, np.ndarray, np.ndarray | None]]:
        frames = iter_frames(self.path)
        while True:
            tick = time.perf_counter()
            item = next(frames, None)
            if item is None:
                self.timings["decode"] += time.perf_counter() - tick
                return
            t, frame = item
            display = self.sinks.display(frame)
            self.timings["decode"] += time.perf_counter() - tick
            tick = time.perf_counter()
            self.sinks.frame(t, display)
            self.timings["render"] += time.perf_counter() - tick
            yield t, frame, display

    def _check_complete(self, last_time: float) -> None:
        """A truncated file decodes fewer frames than its header promises: say so."""
        frame_seconds = 1.0 / self.info.fps if self.info.fps > 0 else 0.1
        missing = self.info.duration_seconds - (last_time + frame_seconds)
        if missing > max(0.5, self.settings.hop_seconds):
            raise MediaError(
                f"{self.path}: video ends at {last_time + frame_seconds:.2f} s but the file says "
                f"{self.info.duration_seconds:.2f} s; the file is truncated or corrupt"
            )

    def _inputs(self, pending: list[_Pending]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Images (B, 3, S, S) in [0, 1] and waves (B * k, n): k sub-clips tile each window."""
        window = self.settings.window_seconds
        k = max(1, round(window / self.clip_seconds))
        n_samples = int(round(self.clip_seconds * self.rate))
        images = np.stack([p.image for p in pending])
        waves = []
        for p in pending:
            for j in range(k):
                centre = self.starts[p.index] + (j + 0.5) * window / k
                waves.append(self.audio.window(centre - self.clip_seconds / 2, n_samples))
        image_tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
        return image_tensor.to(self.device), torch.from_numpy(np.stack(waves)).to(self.device), k

    def _forward(self, images: torch.Tensor, waves: torch.Tensor, k: int) -> dict[str, np.ndarray]:
        batch = images.shape[0]
        with torch.inference_mode():
            out = self.model.localize(images.repeat_interleave(k, dim=0), waves)
            cues = {
                "maps": out.maps.float().reshape(batch, k, *out.maps.shape[1:]).mean(1),
                "scores": out.scores.float().reshape(batch, k, -1).mean(1),
            }
            if self.has_visual:
                cues["visual"] = self.model.visual_presence(images).float()
            if self.has_audio:
                cues["audio"] = (
                    self.model.audio_presence(waves).float().reshape(batch, k, -1).mean(1)
                )
        return {key: value.clamp(0, 1).cpu().numpy() for key, value in cues.items()}

    def _process(self, pending: list[_Pending]) -> None:
        if not pending:
            return
        tick = time.perf_counter()
        images, waves, k = self._inputs(pending)
        self.timings["decode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        cues = self._forward(images, waves, k)
        self.timings["model"] += time.perf_counter() - tick
        tick = time.perf_counter()
        for row, item in enumerate(pending):
            smoothed = {key: self.smooth(key, value[row]) for key, value in cues.items()}
            record = self._record(item.index, smoothed)
            self.records.append(record)
            self.sinks.window(record, smoothed["maps"], item.display)
        self.bar.update(len(pending))
        self.timings["render"] += time.perf_counter() - tick

    def _record(self, index: int, cues: dict[str, np.ndarray]) -> WindowRecord:
        rule = self.settings.rule
        maps = cues["maps"]
        map_height, map_width = maps.shape[-2:]  # boxes and peaks at 4x the map resolution
        fine = viz.upsample_maps(maps, 4 * map_height, 4 * map_width)
        classes = []
        for c, name in enumerate(self.classes):
            visual = float(cues["visual"][c]) if "visual" in cues else None
            audio = float(cues["audio"][c]) if "audio" in cues else None
            score, peak_value = float(cues["scores"][c]), float(maps[c].max())
            state, confidence = decide(score, peak_value, rule, visual=visual, audio=audio)
            peak, box = peak_and_box(fine[c], rule.box_fraction)
            classes.append(
                ClassRecord(
                    name=name,
                    state=state,
                    confidence=confidence,
                    score=score,
                    peak_value=peak_value,
                    peak=peak,
                    box=box,
                    visual=visual,
                    audio=audio,
                )  # fmt: skip
            )
        start = float(self.starts[index])
        return WindowRecord(
            index=index, start_seconds=start, end_seconds=start + self.settings.window_seconds,
            time_seconds=float(self.centres[index]), classes=tuple(classes),
        )  # fmt: skip


# --------------------------------------------------------------------------- the public entry


def check_video(path: str | os.PathLike[str], window_seconds: float) -> tuple[Path, VideoInfo]:
    """Probe a video and check it can be localized: video and audio streams, at least a window.

    Raises:
        MediaError: Missing, corrupt, no video or audio stream, or shorter than one window.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video or info.width <= 0:
        raise MediaError(f"{path}: has no video stream; localization needs frames")
    if not info.has_audio:
        raise MediaError(f"{path}: has no audio stream; localization needs the soundtrack")
    if info.duration_seconds + 1e-6 < window_seconds:
        raise MediaError(
            f"{path}: video is {info.duration_seconds:.2f} s long, shorter than one "
            f"{window_seconds:g} s window; pass a shorter window"
        )
    return path, info


def localize(
    video: str | os.PathLike[str],
    *,
    model: nn.Module | str | os.PathLike[str] | None = None,
    window_seconds: float = 1.0,
    hop_seconds: float = 0.5,
    smoothing: float = 0.3,
    threshold: float = 0.5,
    settings: LocalizeSettings | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    save_maps: bool = False,
    write_overlay: bool = True,
    write_report: bool = True,
    progress: bool = False,
) -> LocalizationResult:
    """Localize every class over a whole video with sliding windows.

    Frames and audio stream through once; memory holds about one batch of windows, never all
    frames or maps. With ``out_dir`` it writes ``overlay.mp4`` (the original frames with
    heatmaps and labels, and the original audio), ``localization.json``, ``report.html`` and,
    with ``save_maps``, ``maps.npz``.

    Args:
        video: Video file with a video and an audio stream.
        model: A model object, a bundled model name or a checkpoint path (None: DEFAULT_MODEL).
        window_seconds: Analysis window length in seconds.
        hop_seconds: Step between windows in seconds.
        smoothing: EMA weight on the previous window (0 = none).
        threshold: Score and map-peak threshold of the decision rule.
        settings: Full settings; when given, the four arguments above are ignored.
        out_dir: Output folder, or None to only return the result.
        overwrite: Allow replacing outputs in an existing non-empty folder.
        save_maps: Also write the smoothed maps to ``maps.npz``.
        write_overlay: Write ``overlay.mp4`` (when ``out_dir`` is given).
        write_report: Write ``report.html`` (when ``out_dir`` is given).
        progress: Show a progress bar over windows (stderr).

    Raises:
        MediaError: Bad input video. IerError: Output folder exists or is not writable.
        CheckpointError: Model name or checkpoint cannot be loaded.
    """
    from ier.report import OutputSinks

    tick = time.perf_counter()
    if settings is None:
        rule = DecisionRule(score_threshold=threshold, peak_threshold=threshold)
        settings = LocalizeSettings(
            window_seconds=window_seconds, hop_seconds=hop_seconds, smoothing=smoothing, rule=rule
        )
    path, info = check_video(video, settings.window_seconds)
    out = prepare_out_dir(out_dir, overwrite=overwrite) if out_dir is not None else None
    net, name = _resolve_model(model)
    run = _Run(path, info, net, settings, sinks=None, progress=progress)
    result = LocalizationResult(
        video_path=path, video=info, model_name=name, classes=run.classes, settings=settings,
        cues={"visual_presence": run.has_visual, "audio_presence": run.has_audio},
    )  # fmt: skip
    run.sinks = OutputSinks(
        result, out, n_windows=len(run.starts), save_maps=save_maps,
        write_overlay=write_overlay, write_report=write_report,
    )  # fmt: skip
    try:
        result.windows = run.run()
    except BaseException:
        run.sinks.abort()
        raise
    run.timings["render"] += run.sinks.close()
    result.timings = {"total": time.perf_counter() - tick, **run.timings}
    if out is not None:  # the JSON holds the timings so far; the result adds writing it
        written = time.perf_counter()
        run.sinks.write_documents()
        result.timings["render"] += time.perf_counter() - written
        result.timings["total"] = time.perf_counter() - tick
    logger.info(
        "localized %d windows of %s in %.1f s", len(result.windows), path, result.timings["total"]
    )
    return result


def prepare_out_dir(out_dir: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Create or check an output folder; an existing non-empty one needs ``overwrite``.

    Only the files in ``OUTPUT_NAMES`` are ever replaced; nothing else is deleted.

    Raises:
        IerError: Not a folder, non-empty without ``overwrite``, or not writable.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IerError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise IerError(
            f"{out}: output folder exists and is not empty; pass --overwrite (overwrite=True) "
            f"to replace the outputs in it ({', '.join(OUTPUT_NAMES)})"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / f".ier-write-test-{os.getpid()}"
        probe_file.touch()
        probe_file.unlink()
    except OSError as err:
        raise IerError(f"{out}: cannot write to the output folder ({err.strerror or err})") from err
    return out


class _CallableModule(types.ModuleType):
    """``ier.localize`` names both this module and its main function: once the submodule is
    imported, Python binds the attribute ``ier.localize`` to the module, so calling the module
    runs the function and ``ier.localize(video, ...)`` works either way."""

    def __call__(self, *args: Any, **kwargs: Any) -> LocalizationResult:
        return localize(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
