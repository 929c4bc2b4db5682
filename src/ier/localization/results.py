"""Settings and result records of ``ier.localize``: decision thresholds, per-class and per-window
records, and the result object."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ier import __version__
from ier.devices import usable_cores
from ier.errors import ConfigError
from ier.localization.schema import OUTPUT_NAMES, SCHEMA_NAME, SCHEMA_VERSION, STATES
from ier.models.output import DECISION_CUES
from ier.presence import has_cues, presence_usable
from ier.video import VideoInfo

logger = logging.getLogger(__name__)

__all__ = [
    "OUTPUT_NAMES", "SCHEMA_VERSION", "STATES", "ClassRecord", "DecisionRule", "LocalizeSettings",
    "LocalizationResult", "WindowRecord", "default_threads", "localization_document",
    "drawing_threshold", "sounding_evidence", "strongest_candidates",
]  # fmt: skip
"""Every file ``localize`` writes in its output folder (and all that ``overwrite`` replaces)."""


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of the per-class state decision (docs/localize.md, "Decision rule").

    Attributes:
        score_threshold: The class is heard when its cue (``audio_presence`` if the model has it,
            else the model's score) is at least this; for a model with a calibrated presence
            (``presence_calibration``), the class sounds on screen when its presence is at least
            this. None: the model's calibrated threshold (``calibration_threshold``), else
            ``DEFAULT_THRESHOLD``.
        peak_threshold: A heard class is on screen when its smoothed map peak is at least this.
            None: as ``score_threshold``.
        visual_threshold: A class that is not heard is visible-silent when the model's
            ``visual_presence`` is at least this (only for models that have that method).
        box_fraction: The box is the connected region of the map >= ``box_fraction`` x peak
            that holds the peak.
    """

    score_threshold: float | None = None
    peak_threshold: float | None = None
    visual_threshold: float = 0.5
    box_fraction: float = 0.5

    def resolved(self, threshold: float) -> DecisionRule:
        """The rule with every unset threshold set to ``threshold``."""
        return replace(
            self,
            score_threshold=threshold if self.score_threshold is None else self.score_threshold,
            peak_threshold=threshold if self.peak_threshold is None else self.peak_threshold,
        )


DEFAULT_THRESHOLD = 0.5
"""The decision threshold of a model without a calibrated one."""


def presence_calibration(model: object) -> dict[str, Any] | None:
    """The model's calibrated presence (``ier.presence``) when its checkpoint stores one and the
    model gives the decision cues it needs, else None. A presence fitted on other cues than this
    version's ``DECISION_CUES`` give (``ier.presence.presence_usable``) is ignored, with a
    warning that says how to recalibrate; the map threshold then decides."""
    calibration = getattr(model, "calibration", None) or {}
    presence = calibration.get("presence")
    if not (isinstance(presence, dict) and has_cues(model)):
        return None
    if not presence_usable(presence):
        if id(presence) not in _WARNED:
            _WARNED.add(id(presence))
            logger.warning(
                "the model's calibrated presence uses the cues %s, this version gives %s: "
                "ignoring it and deciding with the map threshold; recalibrate with `ier evaluate "
                "--checkpoint CKPT --data DIR --store-calibration`",
                presence.get("cues"), list(DECISION_CUES),
            )  # fmt: skip
        return None
    return presence


_WARNED: set[int] = set()  # stale presences already warned about (once per loaded model)


def calibration_threshold(model: object) -> tuple[float, str]:
    """The decision threshold of a model and where it comes from: the presence threshold when the
    model has a calibrated presence (``presence_calibration``), else the map threshold calibrated
    on validation splits when its checkpoint stores one (``ier.inference.evaluate_checkpoint``
    writes both), else ``DEFAULT_THRESHOLD``."""
    presence = presence_calibration(model)
    if presence is not None:
        splits = " + ".join(presence.get("splits") or ["validation splits"])
        budget = presence.get("budget")
        why = f"calibrated presence on {splits}" + (
            f" (at most {100 * budget:g} % of negative clips marked)" if budget is not None else ""
        )
        return float(presence["tau"]), why
    calibration = getattr(model, "calibration", None) or {}
    if isinstance(calibration.get("tau"), (int, float)):
        splits = " + ".join(calibration.get("splits") or ["validation splits"])
        budget = calibration.get("budget")
        why = f"calibrated on {splits}" + (
            f" (at most {100 * budget:g} % false positives)" if budget is not None else ""
        )
        return float(calibration["tau"]), why
    return DEFAULT_THRESHOLD, "default (the model stores no calibrated threshold)"


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
        threads: torch CPU threads for the model during the run (restored afterwards); None
            leaves torch's setting alone. ``default_threads()`` is what ``ier localize`` uses.
    """

    window_seconds: float = 1.0
    hop_seconds: float = 0.5
    smoothing: float = 0.3
    rule: DecisionRule = field(default_factory=DecisionRule)
    batch_size: int = 8
    min_display_side: int | None = 224
    max_display_side: int | None = 480
    key_frames: int = 6
    threads: int | None = None

    def __post_init__(self) -> None:
        if not (self.window_seconds > 0 and self.hop_seconds > 0):
            raise ConfigError(
                f"window and hop must be > 0 s, got {self.window_seconds} and {self.hop_seconds}"
            )
        if not 0 <= self.smoothing < 1:
            raise ConfigError(f"smoothing must be in [0, 1), got {self.smoothing}")
        for name, value in asdict(self.rule).items():
            if value is not None and not 0 <= value <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {value}")
        if self.batch_size < 1 or self.key_frames < 0:
            raise ConfigError("batch_size must be >= 1 and key_frames >= 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")


def default_threads() -> int:
    """CPU threads for the model: every core this process may use but one, which the decoding and
    overlay threads use (on 2 cores, 1: two model threads and the frame threads on 2 cores stall
    each other; see docs/localize.md, "Speed")."""
    return max(1, usable_cores() - 1)


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
        presence: Smoothed calibrated presence (``ier.presence``), or None when the model has
            none; when present it alone decides ``state``.
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
    presence: float | None = None


@dataclass(frozen=True)
class WindowRecord:
    """One analysis window: [start_seconds, end_seconds), centred on ``time_seconds``; the model
    saw the frame shown at the centre, whose own time is ``frame_seconds`` (earlier than the
    centre by less than a frame, or by more where the picture ended and its last frame is held).
    """

    index: int
    start_seconds: float
    end_seconds: float
    time_seconds: float
    classes: tuple[ClassRecord, ...]
    frame_seconds: float | None = None


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
        timings: Seconds: ``total`` (wall clock), and the busy time of each stage, on whichever
            thread ran it: ``decode`` (frames and audio, converting and resizing), ``model``,
            ``render`` (records, layers, labels, blending, key frames, report) and ``encode``
            (H.264, the audio track, the JSON and maps files). Stages overlap, so they can add
            up to more than ``total``.
        frames_end_seconds: Where the decoded picture ends (None before a run).
        last_frame_held: The soundtrack runs on more than 0.5 s past the picture, so the
            windows (and overlay frames) after it use the last frame.
        threshold_source: Where the decision threshold of ``settings.rule`` comes from (the
            model's calibration, the default, or "given").
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
    frames_end_seconds: float | None = None
    last_frame_held: bool = False
    threshold_source: str = "given"

    @property
    def notes(self) -> list[str]:
        """Plain-language remarks about the input that a reader of the results should know."""
        notes = []
        if self.last_frame_held and self.frames_end_seconds is not None:
            notes.append(
                f"the picture ends at {self.frames_end_seconds:.2f} s but the soundtrack runs to "
                f"{self.video.duration_seconds:.2f} s: windows after {self.frames_end_seconds:.2f}"
                " s (and the overlay) show the last frame"
            )
        return notes

    def track(self, name: str) -> list[tuple[float, str, float]]:
        """(time_seconds, state, confidence) of one class over all windows."""
        index = self.classes.index(name)
        return [
            (w.time_seconds, w.classes[index].state, w.classes[index].confidence)
            for w in self.windows
        ]

    def to_dict(self) -> dict[str, Any]:
        """The ``localization.json`` document (schema in docs/localize.md)."""
        return localization_document(self)


def _round(value: float, digits: int = 4) -> float:
    return round(float(value), digits)


def _class_entry(item: ClassRecord, width: int, height: int) -> dict[str, Any]:
    px, py = item.peak
    entry: dict[str, Any] = {
        "name": item.name,
        "state": item.state,
        "confidence": _round(item.confidence),
        "score": _round(item.score),
        "peak_value": _round(item.peak_value),
        "peak": [_round(px), _round(py)],
        "peak_pixels": [int(px * width), int(py * height)],
        "box": None,
        "box_pixels": None,
        "visual": None if item.visual is None else _round(item.visual),
        "audio": None if item.audio is None else _round(item.audio),
        "presence": None if item.presence is None else _round(item.presence),
    }
    if item.box is not None:
        x0, y0, x1, y1 = item.box
        entry["box"] = [_round(v) for v in item.box]
        entry["box_pixels"] = [
            round(x0 * width),
            round(y0 * height),
            round(x1 * width),
            round(y1 * height),
        ]
    return entry


def localization_document(result: LocalizationResult) -> dict[str, Any]:
    """The JSON-able ``localization.json`` document (schema: docs/localize.md)."""
    info, settings = result.video, result.settings
    return {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "ier_version": __version__,
        "video": {
            "path": str(result.video_path),
            "duration_seconds": _round(info.duration_seconds),
            "fps": _round(info.fps),
            "width": info.width,
            "height": info.height,
            "n_frames": info.n_frames,
            "audio_sample_rate": info.audio_sample_rate,
            "frames_end_seconds": None
            if result.frames_end_seconds is None
            else _round(result.frames_end_seconds),
            "last_frame_held": result.last_frame_held,
        },
        "model": {"name": result.model_name, "classes": list(result.classes), "cues": result.cues},
        "settings": {
            "window_seconds": settings.window_seconds,
            "hop_seconds": settings.hop_seconds,
            "smoothing": settings.smoothing,
            **{k: getattr(settings.rule, k) for k in settings.rule.__dataclass_fields__},
            "threshold_source": result.threshold_source,
        },
        "states": list(STATES),
        "windows": [
            {
                "index": w.index,
                "start_seconds": _round(w.start_seconds),
                "end_seconds": _round(w.end_seconds),
                "time_seconds": _round(w.time_seconds),
                "frame_seconds": None if w.frame_seconds is None else _round(w.frame_seconds),
                "classes": [_class_entry(c, info.width, info.height) for c in w.classes],
            }
            for w in result.windows
        ],
        "notes": result.notes,
        "outputs": {kind: Path(p).name for kind, p in sorted(result.outputs.items())},
        "timings_seconds": {k: _round(v, 3) for k, v in result.timings.items()},
    }


def sounding_evidence(entry: dict[str, Any]) -> float:
    """The highest ``--threshold`` at which one class entry of ``localization.json`` is
    "sounding-on-screen": its presence when the model has a calibrated one, else the smaller of
    its heard cue (``audio``, else ``score``) and its map peak (``engine.decide`` with one
    threshold for both)."""
    if entry.get("presence") is not None:
        return float(entry["presence"])
    heard = entry["audio"] if entry.get("audio") is not None else entry["score"]
    return float(min(heard, entry["peak_value"]))


def drawing_threshold(evidence: float) -> float:
    """The ``--threshold`` to suggest for drawing a class with this much evidence: the largest
    two-decimal value at or below it (so the suggestion, as printed, does draw it)."""
    return math.floor(evidence * 100) / 100


def strongest_candidates(document: dict[str, Any], k: int = 3) -> list[dict[str, Any]]:
    """The ``k`` classes with the most evidence of sounding on screen in any window of a
    ``localization.json`` document, strongest first, drawn or not: what a user looks at when the
    overlay stays dark, and the ``--threshold`` that would draw each one.

    Returns:
        One dict per class: ``name``; ``evidence``, its largest ``sounding_evidence`` over the
        windows (the class is drawn as sounding wherever this reaches the threshold);
        ``time_seconds`` of that window; ``windows_sounding``, the windows it was drawn in; and
        ``threshold``, the one the run used (``settings.score_threshold``).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    windows = document["windows"]
    if not windows:
        return []
    threshold = document["settings"]["score_threshold"]
    out = []
    for c, name in enumerate(document["model"]["classes"]):
        values = [sounding_evidence(w["classes"][c]) for w in windows]
        best = max(range(len(values)), key=values.__getitem__)  # the first of equal ones
        sounding = sum(w["classes"][c]["state"] == "sounding-on-screen" for w in windows)
        out.append({"name": name, "evidence": values[best],
                    "time_seconds": windows[best]["time_seconds"],
                    "windows_sounding": int(sounding), "threshold": threshold})  # fmt: skip
    out.sort(key=lambda r: -r["evidence"])
    return out[:k]
