"""Settings and result records of ``ier.localize``: decision thresholds, per-class and per-window
records, and the result object."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ier.errors import ConfigError
from ier.video import VideoInfo

SCHEMA_VERSION = 1
STATES = ("sounding-on-screen", "visible-silent", "heard-off-screen", "absent")
OUTPUT_NAMES = ("overlay.mp4", "localization.json", "maps.npz", "report.html")


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
        from ier.localization.outputs import localization_document

        return localization_document(self)
