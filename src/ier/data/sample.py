"""Manifest records: ``Sample`` and ``ObjectAnnotation``, and validation of one JSON record.

``parse_record`` checks a record against ``docs/formats.md`` and returns *every* problem found;
reading and writing whole files is ``ier.data.manifest``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ier.errors import ManifestError

SPLIT_KINDS = ("solo", "synthetic", "duet", "wild", "negative")
"""The split kinds the evaluator knows; a split may also carry a dataset's own name."""

_SAMPLE_KEYS = (
    "id",
    "split",
    "video",
    "frame",
    "audio",
    "time",
    "window",
    "duration",
    "objects",
    "offscreen",
    "noise",
    "sources",
    "negative",
)
_OBJECT_KEYS = ("label", "box", "sounding", "mask", "annotators")
_TIME_TOLERANCE_SECONDS = 1e-6

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class ObjectAnnotation:
    """One visible object in the annotated frame.

    Attributes:
        label: category name.
        box: ``(x0, y0, x1, y1)`` normalised to [0, 1], with ``x0 < x1`` and ``y0 < y1``.
        sounding: whether the object makes sound in the audio window.
        mask: optional path (relative to the manifest) of a binary PNG mask of the object.
        annotators: optional boxes drawn by individual annotators (Flickr-SoundNet consensus);
            ``box`` is then their union or the dataset's reference box.
        extra: unknown keys of the record, kept verbatim and written back.
    """

    label: str
    box: Box
    sounding: bool
    mask: str | None = None
    annotators: tuple[Box, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of this object."""
        out: dict[str, Any] = {
            "label": self.label,
            "box": list(self.box),
            "sounding": self.sounding,
        }
        if self.mask is not None:
            out["mask"] = self.mask
        if self.annotators is not None:
            out["annotators"] = [list(b) for b in self.annotators]
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Sample:
    """One annotated frame with its audio window.

    Attributes:
        id: unique id within the manifest.
        split: split kind (``solo``, ``synthetic``, ``duet``, ``wild``, ``negative``) or a
            dataset's own split name.
        time: annotated frame time in seconds (from the start of ``video``/``audio``).
        window: audio window ``(start_seconds, end_seconds)``.
        objects: the visible objects with boxes.
        offscreen: labels heard but not visible.
        noise: ``{"kind": str, "snr_db": float}``; for a noise bed with no sound over it
            ``{"kind": str, "snr_db": None, "level_dbfs": float}``; None without noise.
        video: clip file, relative to ``root``; or None when ``frame`` and ``audio`` are given.
        frame: image file of the annotated frame (with ``audio``), relative to ``root``.
        audio: audio file (with ``frame``), relative to ``root``.
        sources: provenance records (asset ids, gains in dB), or None.
        duration: optional clip duration in seconds.
        root: directory the paths are relative to (the manifest's folder); None = unknown.
        extra: unknown top-level keys of the record, kept verbatim and written back.
    """

    id: str
    split: str
    time: float
    window: tuple[float, float]
    objects: tuple[ObjectAnnotation, ...]
    offscreen: tuple[str, ...] = ()
    noise: Mapping[str, Any] | None = None
    video: str | None = None
    frame: str | None = None
    audio: str | None = None
    sources: tuple[Mapping[str, Any], ...] | None = None
    duration: float | None = None
    root: Path | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def sounding_labels(self) -> tuple[str, ...]:
        """Distinct labels of visible sounding objects, in order of first appearance."""
        return tuple(dict.fromkeys(o.label for o in self.objects if o.sounding))

    @property
    def visible_labels(self) -> tuple[str, ...]:
        """Distinct labels of all visible objects, in order of first appearance."""
        return tuple(dict.fromkeys(o.label for o in self.objects))

    @property
    def silent_labels(self) -> tuple[str, ...]:
        """Visible labels none of whose instances is sounding."""
        sounding = set(self.sounding_labels)
        return tuple(label for label in self.visible_labels if label not in sounding)

    @property
    def is_negative(self) -> bool:
        """True when no visible object is sounding (silence, off-screen or mismatched audio)."""
        return not any(o.sounding for o in self.objects)

    def _resolve(self, rel: str | None) -> Path | None:
        if rel is None:
            return None
        return (self.root / rel) if self.root is not None else Path(rel)

    @property
    def video_path(self) -> Path | None:
        """Absolute path of the clip (when ``root`` is known), else None if there is no clip."""
        return self._resolve(self.video)

    @property
    def frame_path(self) -> Path | None:
        """Path of the separate frame image, or None."""
        return self._resolve(self.frame)

    @property
    def audio_path(self) -> Path | None:
        """Path of the separate audio file, or None."""
        return self._resolve(self.audio)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of this sample (paths stay relative; ``root`` is not written)."""
        out: dict[str, Any] = {"id": self.id, "split": self.split}
        for key in ("video", "frame", "audio"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        out["time"] = self.time
        out["window"] = list(self.window)
        if self.duration is not None:
            out["duration"] = self.duration
        out["objects"] = [o.to_dict() for o in self.objects]
        out["offscreen"] = list(self.offscreen)
        out["noise"] = dict(self.noise) if self.noise is not None else None
        if self.sources is not None:
            out["sources"] = [dict(s) for s in self.sources]
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, root: Path | str | None = None) -> Sample:
        """Build a sample from a JSON record, raising ``ManifestError`` listing every problem."""
        sample, problems = parse_record(record, root=Path(root) if root is not None else None)
        if problems or sample is None:
            raise ManifestError(f"bad sample record {record.get('id', '?')!r}", problems)
        return sample


# --- parsing -------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _parse_box(value: Any, name: str, problems: list[str]) -> Box | None:
    if not (isinstance(value, (list, tuple)) and len(value) == 4):
        problems.append(f"field `{name}`: expected [x0, y0, x1, y1], got {value!r}")
        return None
    if not all(_is_number(v) for v in value):
        problems.append(f"field `{name}`: coordinates must be finite numbers, got {value!r}")
        return None
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        problems.append(
            f"field `{name}`: need 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 "
            f"(normalised coordinates), got {list(value)!r}"
        )
        return None
    return (x0, y0, x1, y1)


def _parse_label(value: Any, name: str, problems: list[str]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"field `{name}`: expected a non-empty string, got {value!r}")
        return None
    return value


def _parse_object(value: Any, index: int, problems: list[str]) -> ObjectAnnotation | None:
    name = f"objects[{index}]"
    if not isinstance(value, Mapping):
        problems.append(f"field `{name}`: expected an object, got {value!r}")
        return None
    n_before = len(problems)
    for key in ("label", "box", "sounding"):
        if key not in value:
            problems.append(f"field `{name}.{key}`: missing")
    label = (
        _parse_label(value.get("label"), f"{name}.label", problems) if "label" in value else None
    )
    box = _parse_box(value.get("box"), f"{name}.box", problems) if "box" in value else None
    sounding = value.get("sounding")
    if "sounding" in value and not isinstance(sounding, bool):
        problems.append(f"field `{name}.sounding`: expected true or false, got {sounding!r}")
    mask = value.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask):
        problems.append(f"field `{name}.mask`: expected a relative path string, got {mask!r}")
    annotators = None
    if value.get("annotators") is not None:
        raw = value["annotators"]
        if not isinstance(raw, (list, tuple)) or not raw:
            problems.append(f"field `{name}.annotators`: expected a non-empty list of boxes")
        else:
            parsed = [_parse_box(b, f"{name}.annotators[{j}]", problems) for j, b in enumerate(raw)]
            annotators = tuple(b for b in parsed if b is not None)
    if len(problems) > n_before:
        return None
    extra = {k: v for k, v in value.items() if k not in _OBJECT_KEYS}
    return ObjectAnnotation(
        label=label, box=box, sounding=sounding, mask=mask, annotators=annotators, extra=extra
    )


def _parse_media(record: Mapping[str, Any], problems: list[str]) -> None:
    for key in ("video", "frame", "audio"):
        value = record.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            problems.append(f"field `{key}`: expected a path string, got {value!r}")
    has_video = record.get("video") is not None
    has_frame, has_audio = record.get("frame") is not None, record.get("audio") is not None
    if has_video and (has_frame or has_audio):
        problems.append("field `video`: give either `video`, or `frame` plus `audio`, not both")
    elif not has_video and not (has_frame and has_audio):
        missing = "audio" if has_frame else "frame" if has_audio else "video"
        problems.append(f"field `{missing}`: missing (need `video`, or `frame` plus `audio`)")


def _parse_timing(record: Mapping[str, Any], problems: list[str]) -> None:
    time, window, duration = record.get("time"), record.get("window"), record.get("duration")
    ok_time = _is_number(time) and float(time) >= 0
    if not ok_time:
        problems.append(f"field `time`: expected a number of seconds >= 0, got {time!r}")
    ok_window = (
        isinstance(window, (list, tuple))
        and len(window) == 2
        and all(_is_number(v) for v in window)
        and 0 <= float(window[0]) < float(window[1])
    )
    if not ok_window:
        problems.append(
            f"field `window`: expected [start, end] seconds, 0 <= start < end, got {window!r}"
        )
    if duration is not None and not (_is_number(duration) and float(duration) > 0):
        problems.append(
            f"field `duration`: expected a positive number of seconds, got {duration!r}"
        )
        duration = None
    tol = _TIME_TOLERANCE_SECONDS
    if (
        ok_time
        and ok_window
        and not float(window[0]) - tol <= float(time) <= float(window[1]) + tol
    ):
        problems.append(f"field `time`: {time} s lies outside the audio window {list(window)}")
    if duration is not None:
        if ok_time and float(time) > float(duration) + tol:
            problems.append(f"field `time`: {time} s lies after the clip end ({duration} s)")
        if ok_window and float(window[1]) > float(duration) + tol:
            problems.append(f"field `window`: ends after the clip end ({duration} s)")


def _parse_noise(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append(f"field `noise`: expected null or {{kind, snr_db}}, got {value!r}")
        return
    if not isinstance(value.get("kind"), str) or not value.get("kind"):
        problems.append(
            f"field `noise.kind`: expected a non-empty string, got {value.get('kind')!r}"
        )
    if value.get("snr_db") is None and "snr_db" in value:  # a noise bed with nothing over it
        if not _is_number(value.get("level_dbfs")):
            problems.append(
                "field `noise.level_dbfs`: a noise bed alone (snr_db null) needs its level in "
                f"dBFS, got {value.get('level_dbfs')!r}"
            )
    elif not _is_number(value.get("snr_db")):
        problems.append(
            f"field `noise.snr_db`: expected a number (dB), got {value.get('snr_db')!r}"
        )


def _parse_sources(value: Any, problems: list[str]) -> None:
    if value is None:
        return
    if not isinstance(value, (list, tuple)):
        problems.append(f"field `sources`: expected a list of objects, got {value!r}")
        return
    for j, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            problems.append(f"field `sources[{j}]`: expected an object, got {entry!r}")
        elif "gain_db" in entry and not _is_number(entry["gain_db"]):
            problems.append(
                f"field `sources[{j}].gain_db`: expected a number, got {entry['gain_db']!r}"
            )


def parse_record(record: Any, *, root: Path | None) -> tuple[Sample | None, list[str]]:
    """Validate one record; returns the sample (None if invalid) and the problems found."""
    problems: list[str] = []
    if not isinstance(record, Mapping):
        return None, [f"record: expected a JSON object, got {type(record).__name__}"]
    for key in ("id", "split", "time", "window", "objects", "offscreen", "noise"):
        if key not in record:
            problems.append(f"field `{key}`: missing")
    if "id" in record:
        _parse_label(record["id"], "id", problems)
    if "split" in record:
        _parse_label(record["split"], "split", problems)
    _parse_media(record, problems)
    if "time" in record and "window" in record:
        _parse_timing(record, problems)
    raw_objects = record.get("objects")
    objects: list[ObjectAnnotation | None] = []
    if "objects" in record:
        if not isinstance(raw_objects, (list, tuple)):
            problems.append(f"field `objects`: expected a list, got {raw_objects!r}")
        else:
            objects = [_parse_object(o, i, problems) for i, o in enumerate(raw_objects)]
    offscreen = record.get("offscreen")
    if "offscreen" in record and not (
        isinstance(offscreen, (list, tuple)) and all(isinstance(x, str) and x for x in offscreen)
    ):
        problems.append(f"field `offscreen`: expected a list of labels, got {offscreen!r}")
    _parse_noise(record.get("noise"), problems)
    _parse_sources(record.get("sources"), problems)
    negative = record.get("negative")
    if negative is not None and not isinstance(negative, bool):
        problems.append(f"field `negative`: expected true or false, got {negative!r}")
    elif negative and any(o is not None and o.sounding for o in objects):
        problems.append("field `negative`: true, but an object is marked sounding")
    if problems:
        return None, problems
    extra = {k: v for k, v in record.items() if k not in _SAMPLE_KEYS}
    if negative is not None:
        extra = {"negative": negative, **extra}
    sample = Sample(
        id=record["id"],
        split=record["split"],
        time=float(record["time"]),
        window=(float(record["window"][0]), float(record["window"][1])),
        objects=tuple(objects),
        offscreen=tuple(offscreen),
        noise=dict(record["noise"]) if record["noise"] is not None else None,
        video=record.get("video"),
        frame=record.get("frame"),
        audio=record.get("audio"),
        sources=tuple(dict(s) for s in record["sources"]) if record.get("sources") else None,
        duration=float(record["duration"]) if record.get("duration") is not None else None,
        root=root,
        extra=extra,
    )
    return sample, problems
