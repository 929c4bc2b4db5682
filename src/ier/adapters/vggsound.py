"""VGGSound (official CSV) and VGG-SS (``vggss.json`` boxes on the centre frame of each clip)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ier.adapters.common import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    WHOLE_FRAME,
    AdapterOutput,
    MediaIndex,
    ObjectSpec,
    SampleSpec,
    clean_box,
    find_file,
    read_rows,
    split_vggsound_clip,
    vggsound_clip_name,
)
from ier.errors import DatasetError

logger = logging.getLogger(__name__)

CENTRE_SECONDS = 5.0  # VGG-SS boxes sit on the middle frame of the 10-s clip
FORMAT_VERSION = "vggsound-csv-v1 / vggss-json-v1"


def media_index(root: Path, skip: tuple[Path, ...]) -> MediaIndex:
    """Index every frame, audio and video file under ``root`` by stem."""
    exts = IMAGE_EXTENSIONS + AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
    return MediaIndex(root, exts, skip_paths=skip)


def clip_spec(
    clip: str,
    index: MediaIndex,
    *,
    split: str,
    objects: tuple[ObjectSpec, ...],
    extra: tuple[tuple[str, Any], ...] = (),
) -> tuple[SampleSpec | None, str]:
    """Locate a VGGSound clip's media; returns (spec, "") or (None, why it is missing).

    Looks for, in order: the flat layout ``frames/<clip>.jpg`` + ``audio/<clip>.wav`` (frame =
    clip centre, audio window centred on the file's midpoint); a clip video ``<clip>.mp4`` (frame
    and window at 5 s); the full YouTube video ``<ytid>.mp4`` (at start + 5 s).
    """
    image = index.find(clip, IMAGE_EXTENSIONS)
    audio = index.find(clip, AUDIO_EXTENSIONS)
    video = index.find(clip, VIDEO_EXTENSIONS)
    common = {"id": clip, "split": split, "objects": objects, "extra": extra}
    if image is not None and (audio is not None or video is not None):
        return SampleSpec(frame=image, audio=audio or video, **common), ""
    if video is not None:
        return SampleSpec(video=video, time_seconds=CENTRE_SECONDS, **common), ""
    parsed = split_vggsound_clip(clip)
    if parsed is not None:
        full = index.find(parsed[0], VIDEO_EXTENSIONS)
        if full is not None:
            time = parsed[1] + CENTRE_SECONDS
            return SampleSpec(video=full, time_seconds=time, **common), ""
    if image is not None:
        return None, f"frame found ({image.name}) but no audio/{clip}.wav or {clip}.mp4"
    if audio is not None:
        return None, f"audio found ({audio.name}) but no frames/{clip}.jpg or {clip}.mp4"
    return None, f"no media for {clip}: looked for frames/{clip}.jpg + audio/{clip}.wav, {clip}.mp4"


def read_vggsound_csv(path: Path, out: AdapterOutput) -> list[tuple[str, str, str]]:
    """Rows of the official CSV as (clip name, label, split); bad rows become problems."""
    rows = []
    for line, cells in read_rows(path):
        where = f"{path.name}:{line}"
        if len(cells) != 4:
            out.problem(
                "",
                where,
                f"expected 4 columns (ytid,start,label,split), got {cells!r}",
                kind="annotation",
            )
            continue
        ytid, start, label, split = cells
        if not start.isdigit() or split not in ("train", "test") or not ytid or not label:
            out.problem("", where, f"malformed row {cells!r}", kind="annotation")
            continue
        rows.append((vggsound_clip_name(ytid, int(start)), label, split))
    return rows


def read_vggss_json(path: Path, out: AdapterOutput, split: str) -> dict[str, tuple[str, list]]:
    """``vggss.json`` -> {clip: (class, boxes)}; sentinel/degenerate boxes are dropped and
    reported, and an entry left with no box is reported and excluded."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        out.problem(split, path.name, f"not valid JSON: {err}", kind="annotation")
        return {}
    if not isinstance(entries, list):
        out.problem(split, path.name, "expected a JSON list of entries", kind="annotation")
        return {}
    result: dict[str, tuple[str, list]] = {}
    for i, entry in enumerate(entries):
        where = f"{path.name}[{i}]"
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("file"), str)
            and isinstance(entry.get("class"), str)
            and isinstance(entry.get("bbox"), list)
        ):
            out.problem(
                split, where, f"entry lacks file/class/bbox: {entry!r}"[:300], kind="annotation"
            )
            continue
        boxes = []
        for raw in entry["bbox"]:
            box, note = clean_box(raw)
            if note:
                kind = "warning" if box is not None else "annotation"
                out.problem(
                    split, entry["file"], f"{note}" + ("" if box else " (box dropped)"), kind=kind
                )
            if box is not None:
                boxes.append(box)
        if not boxes:
            out.problem(
                split,
                entry["file"],
                "no usable box left (the reference evaluators score "
                "this entry with an empty ground-truth map)",
                kind="annotation",
            )
            continue
        if entry["file"] in result:
            out.problem(split, entry["file"], "duplicate entry; the first is kept", kind="warning")
            continue
        result[entry["file"]] = (entry["class"], boxes)
    return result


def read_clip_list(path: Path) -> list[str]:
    """A one-column clip list (``vggss_test.csv``, heard/unheard lists); first cell of each row."""
    return [cells[0] for _, cells in read_rows(path) if cells and cells[0]]


def vggss_objects(label: str, boxes: list) -> tuple[ObjectSpec, ...]:
    """One sounding object per VGG-SS box, labelled with the clip's class."""
    return tuple(ObjectSpec(label, box, True) for box in boxes)


def add_vggss(root: Path, index: MediaIndex, out: AdapterOutput) -> dict[str, tuple[str, list]]:
    """Add the ``vggss`` split (and ``vggss_heard``/``vggss_unheard`` when their lists exist)."""
    path = find_file(root, ["vggss.json"])
    if path is None:
        return {}
    annotations = read_vggss_json(path, out, "vggss")
    out.describe_file("vggss.json", path, entries=len(annotations), boxes="xyxy normalised")
    order = list(annotations)
    test_list = find_file(root, ["vggss_test.csv"])
    if test_list is not None:
        listed = read_clip_list(test_list)
        out.describe_file("vggss_test.csv", test_list, rows=len(listed))
        for clip in listed:
            if clip not in annotations:
                out.problem(
                    "vggss",
                    clip,
                    "listed in vggss_test.csv but has no usable box in vggss.json",
                    kind="annotation",
                )
    splits = {"vggss": order}
    for name in ("heard", "unheard"):
        lst = find_file(root, [f"vggss_{name}_test.csv"])
        if lst is not None:
            out.describe_file(f"vggss_{name}_test.csv", lst)
            splits[f"vggss_{name}"] = [c for c in read_clip_list(lst) if c in annotations]
    for split, clips in splits.items():
        out.count(split, "listed", len(clips))
        for clip in clips:
            label, boxes = annotations[clip]
            extra = (("dataset", "vggss"),)
            spec, why = clip_spec(
                clip, index, split="vggss", objects=vggss_objects(label, boxes), extra=extra
            )
            if spec is None:
                out.problem(split, clip, why)
            else:
                out.add(split, spec)
    return annotations


def build_vggss(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """VGG-SS only: the annotated test clips (needs ``vggss.json``)."""
    out = AdapterOutput(format={"adapter": "vggss", "version": FORMAT_VERSION})
    if find_file(root, ["vggss.json"]) is None:

        raise DatasetError(f"{root}: no vggss.json found (the VGG-SS box file)")
    add_vggss(root, media_index(root, skip), out)
    return out


def build_vggsound(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """VGGSound train/test from the official CSV, plus VGG-SS when ``vggss.json`` is present."""

    out = AdapterOutput(format={"adapter": "vggsound", "version": FORMAT_VERSION})
    csv_path = find_file(root, ["vggsound.csv"])
    if csv_path is None:
        raise DatasetError(f"{root}: no vggsound.csv found (the official VGGSound CSV)")
    index = media_index(root, skip)
    rows = read_vggsound_csv(csv_path, out)
    out.describe_file("vggsound.csv", csv_path, rows=len(rows))
    for clip, label, split in rows:
        out.count(split, "listed")
        weak = ObjectSpec(label, WHOLE_FRAME, True, extra=(("weak", True),))
        extra = (("dataset", "vggsound"),)
        spec, why = clip_spec(clip, index, split="vggsound", objects=(weak,), extra=extra)
        if spec is None:
            out.problem(split, clip, why)
        else:
            out.add(split, spec)
    add_vggss(root, index, out)
    return out
