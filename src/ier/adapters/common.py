"""Shared pieces of the dataset adapters: sample specs, problems, list readers, box and id helpers.

An adapter parses a dataset's own annotation files into :class:`SampleSpec` records (one per
manifest sample, pointing at the user's raw media) plus :class:`Problem` records for everything it
could not use; :mod:`ier.adapters.engine` then checks/decodes the media and writes the manifests.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]

CLIP_SECONDS = 1.0  # audio window of one sample (the model's clip length)
WHOLE_FRAME: Box = (0.0, 0.0, 1.0, 1.0)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

# The 15-class instrument-detector table behind DSOL's ``category_id`` (dataset-formats.md §1.5).
DETECTOR_CLASSES = (
    "Banjo",
    "Cello",
    "Drum",
    "Guitar",
    "Harp",
    "Harmonica",
    "Oboe",
    "Piano",
    "Saxophone",
    "Trombone",
    "Trumpet",
    "Violin",
    "Flute",
    "Accordion",
    "Horn",
)
# The only ids that occur in the MUSIC boxes, mapped to MUSIC class names (DSOL's evaluators).
DSOL_CATEGORY_TO_LABEL = {
    1: "cello",
    3: "acoustic_guitar",
    8: "saxophone",
    10: "trumpet",
    11: "violin",
    12: "flute",
    13: "accordion",
}
MUSIC_NEVER_BOXED = ("clarinet", "erhu", "tuba", "xylophone")


@dataclass(frozen=True)
class Problem:
    """An item that was listed or annotated but cannot become a sample (or a dubious annotation).

    Attributes:
        split: output split name ("" for a file-level problem).
        item: the dataset's own item id (clip name, frame key, Flickr id, file:line).
        reason: what is wrong, for a human.
        kind: ``missing`` (file absent), ``unreadable`` (corrupt media), ``annotation`` (bad or
            unusable annotation record), ``unsafe`` (refused pickle), ``warning`` (kept, but odd).
        path: the file concerned, if any.
    """

    split: str
    item: str
    reason: str
    kind: str = "missing"
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``prepare_report.json``."""
        out = {"split": self.split, "item": self.item, "kind": self.kind, "reason": self.reason}
        if self.path is not None:
            out["path"] = self.path
        return out


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a sample: label, normalised xyxy box, sounding flag, extras."""

    label: str
    box: Box
    sounding: bool = True
    annotators: tuple[Box, ...] | None = None
    extra: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The manifest record of this object."""
        out: dict[str, Any] = {
            "label": self.label,
            "box": list(self.box),
            "sounding": self.sounding,
        }
        if self.annotators is not None:
            out["annotators"] = [list(b) for b in self.annotators]
        out.update(dict(self.extra))
        return out


@dataclass(frozen=True)
class SampleSpec:
    """One manifest sample before its media are checked (all paths absolute, in the raw root).

    The frame comes from ``frame`` (an image) or from ``video`` at ``frame_time_seconds``. The audio
    comes from ``audio`` (any audio or video file), else from ``video``, else from ``features``
    (a DSOL log-mel pickle, reconstructed to a waveform). ``time_seconds`` is the annotated frame
    time on the audio's timeline (None: the audio's midpoint); the audio window is ``window`` if
    given, else ``window_seconds`` centred on that time and shifted to fit inside the file.

    Attributes:
        id: unique sample id (also the cache file stem).
        split: the manifest ``split`` field (a kind such as ``solo`` or a dataset name).
        objects: annotated objects.
        offscreen: labels heard but not visible.
        negative: True for a sample whose audio comes from nothing visible.
        extra: extra top-level manifest keys (provenance: dataset, source key, ...).
    """

    id: str
    split: str
    objects: tuple[ObjectSpec, ...] = ()
    frame: Path | None = None
    video: Path | None = None
    audio: Path | None = None
    features: Path | None = None
    time_seconds: float | None = None
    frame_time_seconds: float | None = None
    window: tuple[float, float] | None = None
    window_seconds: float = CLIP_SECONDS
    offscreen: tuple[str, ...] = ()
    negative: bool = False
    extra: tuple[tuple[str, Any], ...] = ()

    def extra_dict(self) -> dict[str, Any]:
        """The extra manifest keys as a dict."""
        return dict(self.extra)

    @property
    def audio_source(self) -> Path | None:
        """The file the audio window is read from (None when only features exist)."""
        return self.audio if self.audio is not None else self.video


@dataclass
class AdapterOutput:
    """What an adapter found: samples per output split, problems, and annotation provenance.

    Attributes:
        splits: output split name -> sample specs (in the dataset's order).
        problems: items that cannot become samples, and warnings.
        format: annotation format description (files with sha256, versions, conventions).
        counts: extra per-split counts for the report (e.g. ``listed``, ``skipped_no_box``).
    """

    splits: dict[str, list[SampleSpec]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    format: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, split: str, spec: SampleSpec) -> None:
        """Append a sample spec to ``split``."""
        self.splits.setdefault(split, []).append(spec)

    def problem(self, split: str, item: str, reason: str, **kwargs: Any) -> None:
        """Record a problem (see :class:`Problem`)."""
        self.problems.append(Problem(split, item, reason, **kwargs))

    def count(self, split: str, key: str, n: int = 1) -> None:
        """Add ``n`` to the report counter ``key`` of ``split``."""
        per = self.counts.setdefault(split, {})
        per[key] = per.get(key, 0) + n

    def describe_file(self, role: str, path: Path, **info: Any) -> None:
        """Record an annotation/list file that was read, with its sha256 and any extra facts."""
        self.format.setdefault("files", {})[role] = {
            "name": path.name,
            "sha256": sha256_file(path),
            **info,
        }


# --------------------------------------------------------------------------- files and lists


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file (annotation provenance in the report)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_text(path: Path) -> str:
    """Read a text file as UTF-8, dropping a byte-order mark."""
    return path.read_text(encoding="utf-8-sig", errors="replace")


def read_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Rows of a CSV/list file as (1-based line number, stripped cells); empty lines skipped.

    Tolerates CRLF, a missing trailing newline and quoted cells containing commas.
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    for row in reader:
        cells = [c.strip() for c in row]
        if any(cells):
            yield reader.line_num, cells


def find_file(root: Path, names: Sequence[str], *, max_depth: int = 5) -> Path | None:
    """First file under ``root`` (breadth first, ``max_depth`` levels) named one of ``names``.

    Media folders (``video_frames``, ``audio_frames``, ``frames``, ``audio``, ``video``, ``Data``)
    are not descended into, so this stays cheap on a full dataset tree.
    """
    wanted = {n.lower(): i for i, n in enumerate(names)}
    level = [root]
    for _depth in range(max_depth + 1):
        found: list[tuple[int, Path]] = []
        next_level: list[Path] = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.is_file() and entry.name.lower() in wanted:
                    found.append((wanted[entry.name.lower()], Path(entry.path)))
                elif entry.is_dir() and entry.name not in _MEDIA_DIRS:
                    next_level.append(Path(entry.path))
        if found:
            return min(found)[1]
        level = next_level
    return None


_MEDIA_DIRS = {"video_frames", "audio_frames", "frames", "audio", "video", "Data", ".git"}


class MediaIndex:
    """Media files under a root, indexed by stem (one walk of the tree, skipping frame folders).

    Args:
        root: dataset root.
        extensions: file extensions to index (lower case, with the dot).
        skip_dirs: folder names not to descend into (e.g. the output folder).
        max_depth: how many folder levels to descend.
    """

    def __init__(
        self,
        root: Path,
        extensions: Iterable[str],
        *,
        skip_dirs: Iterable[str] = ("video_frames", "audio_frames", ".git"),
        skip_paths: Iterable[Path] = (),
        max_depth: int = 4,
    ) -> None:
        self.by_stem: dict[str, list[Path]] = {}
        exts = {e.lower() for e in extensions}
        skip = set(skip_dirs)
        skip_resolved = {p.resolve() for p in skip_paths}
        stack = [(root, 0)]
        while stack:
            folder, depth = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.is_dir():
                    path = Path(entry.path)
                    if entry.name in skip or depth >= max_depth or path.resolve() in skip_resolved:
                        continue
                    stack.append((path, depth + 1))
                else:
                    stem, ext = os.path.splitext(entry.name)
                    if ext.lower() in exts:
                        self.by_stem.setdefault(stem, []).append(Path(entry.path))
        for paths in self.by_stem.values():
            paths.sort(key=lambda p: (len(p.parts), str(p)))

    def find(self, stem: str, extensions: Sequence[str]) -> Path | None:
        """The first indexed file named ``stem`` whose extension is in ``extensions`` (in order)."""
        paths = self.by_stem.get(stem, ())
        for ext in extensions:
            for path in paths:
                if path.suffix.lower() == ext:
                    return path
        return None


# --------------------------------------------------------------------------- ids


def split_vggsound_clip(name: str) -> tuple[str, int] | None:
    """``'<ytid>_<start:06d>'`` -> (ytid, start seconds), splitting on the LAST underscore.

    YouTube ids may themselves contain ``_`` and start with ``-``. Returns None if malformed.
    """
    ytid, sep, start = name.rpartition("_")
    if not sep or not ytid or not start.isdigit():
        return None
    return ytid, int(start)


def vggsound_clip_name(ytid: str, start_seconds: int) -> str:
    """The canonical VGGSound clip name ``<ytid>_<start:06d>``."""
    return f"{ytid}_{start_seconds:06d}"


def music_ytid(clip: str) -> str:
    """DSOL clip name ``<ytid>_0_1000`` -> ytid (drops the two right-most ``_`` fields)."""
    parts = clip.rsplit("_", 2)
    return parts[0] if len(parts) == 3 else clip


def safe_stem(sample_id: str) -> str:
    """A file-system-safe cache file stem for a sample id."""
    out = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in sample_id)
    return out.lstrip(".") or "_"


# --------------------------------------------------------------------------- boxes


def xywh_to_xyxy(box: Sequence[float]) -> Box:
    """(x, y, w, h) -> (x0, y0, x1, y1), same units."""
    x, y, w, h = (float(v) for v in box)
    return (x, y, x + w, y + h)


def clean_box(box: Sequence[Any]) -> tuple[Box | None, str | None]:
    """Validate and clip a normalised xyxy box to [0, 1].

    Returns:
        (box, note): ``box`` is None when the box is unusable (not 4 finite numbers, or empty after
        clipping); ``note`` describes any clipping or the reason for rejecting it.
    """
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        return None, f"expected 4 numbers, got {box!r}"
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        return None, f"non-numeric coordinate in {box!r}"
    if not all(math.isfinite(v) for v in values):
        return None, f"non-finite coordinate in {box!r}"
    clipped = [min(1.0, max(0.0, v)) for v in values]
    x0, y0, x1, y1 = clipped
    if not (x0 < x1 and y0 < y1):
        return None, f"empty or degenerate box {list(box)!r} after clipping to [0, 1]"
    note = None
    if clipped != values:
        note = f"box {list(box)!r} clipped to [0, 1]"
    return (x0, y0, x1, y1), note


def envelope(boxes: Sequence[Box]) -> Box:
    """Smallest box containing all ``boxes`` (normalised xyxy)."""
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
