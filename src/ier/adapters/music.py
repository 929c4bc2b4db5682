"""MUSIC as used by DSOL/IEr: video-ID JSONs, raw videos, DSOL's 1-s layout, split lists and the
``solotest.json``/``duettest.json`` boxes (4 fps frames, 1-s audio windows). Where a clip's media
live is ``ier.adapters.music_media``."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from ier.adapters.common import (
    DSOL_CATEGORY_TO_LABEL,
    MUSIC_NEVER_BOXED,
    WHOLE_FRAME,
    AdapterOutput,
    ObjectSpec,
    SampleSpec,
    clean_box,
    find_file,
    music_ytid,
    read_rows,
    xywh_to_xyxy,
)
from ier.adapters.music_media import MusicMedia, frame_time, second_media
from ier.errors import DatasetError, MediaError
from ier.video import probe

logger = logging.getLogger(__name__)

FORMAT_VERSION = "dsol-music-v1"
_KEY = re.compile(r"^(?P<clip>.+)/frame_(?P<second>\d{3})/(?P<index>\d{5})\.jpg$")
SOLO_LISTS = {
    "solo_train_1": "solo_training_1.txt",
    "solo_train_2": "solo_training_2.txt",
    "solo_val": "solo_validation.txt",
}
DUET_LISTS = {"duet_train": "duet_pairs_train.txt"}


def read_id_json(path: Path, out: AdapterOutput) -> dict[str, tuple[str, ...]]:
    """A MUSIC video-ID JSON -> {ytid: class names} (a duet key "a b" gives two names)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        videos = data["videos"]
        assert isinstance(videos, dict)
    except (json.JSONDecodeError, KeyError, TypeError, AssertionError, UnicodeDecodeError) as err:
        out.problem(
            "", path.name, f"not a MUSIC id list ({type(err).__name__}: {err})", kind="annotation"
        )
        return {}
    out.describe_file(path.name, path, version=data.get("version"), classes=len(videos))
    labels: dict[str, tuple[str, ...]] = {}
    for key, ids in videos.items():
        for ytid in ids if isinstance(ids, list) else []:
            labels[str(ytid)] = tuple(key.split())
    return labels


def read_pair_list(path: Path, out: AdapterOutput, split: str) -> list[str]:
    """DSOL split list lines ``<clip>.flac <clip>.mp4`` -> clip names (stems must agree)."""
    clips = []
    for line, cells in read_rows(path):
        parts = " ".join(cells).split()
        stems = {os.path.splitext(p)[0] for p in parts}
        if not parts or len(stems) != 1:
            out.problem(
                split,
                f"{path.name}:{line}",
                f"expected '<clip>.flac <clip>.mp4', got {' '.join(parts)!r}",
                kind="annotation",
            )
            continue
        clips.append(stems.pop())
    out.describe_file(path.name, path, rows=len(clips))
    return clips


def training_specs(
    clip: str, labels: tuple[str, ...], media: MusicMedia, *, split: str, field: str
) -> tuple[list[SampleSpec], str]:
    """One sample per second of a clip (DSOL pairing): the frame nearest the middle of the second
    and the 1-s audio window. Returns (specs, "") or ([], why the clip has no media)."""
    objects = tuple(ObjectSpec(lab, WHOLE_FRAME, True, extra=(("weak", True),)) for lab in labels)
    extra = (("dataset", "music"), ("clip", clip))
    folder = media.frames.get(clip)
    specs = []
    if folder is not None:
        for sub in sorted(folder.glob("frame_[0-9][0-9][0-9]")):
            second = int(sub.name[-3:])
            jpgs = sorted(sub.glob("*.jpg"))
            audio = second_media(media, clip, second)
            if not jpgs or audio is None:
                continue
            jpg = jpgs[len(jpgs) // 2]
            time = frame_time(second, int(jpg.stem)) if jpg.stem.isdigit() else second + 0.5
            specs.append(
                SampleSpec(
                    id=f"{clip}/frame_{second:03d}",
                    split=field,
                    objects=objects,
                    frame=jpg,
                    time_seconds=time,
                    window=(second, second + 1.0),
                    extra=extra,
                    **audio,
                )
            )
        if specs:
            return specs, ""
    video = media.raw_video(clip)
    if video is None:
        return [], f"no frames folder video_frames/{clip}/ with audio, and no raw video {clip}.mp4"
    try:

        info = probe(video)
    except MediaError as err:
        return [], f"unreadable raw video: {err}"
    for second in range(int(info.duration_seconds)):
        specs.append(
            SampleSpec(
                id=f"{clip}/frame_{second:03d}",
                split=field,
                objects=objects,
                video=video,
                time_seconds=second + 0.5,
                window=(second, second + 1.0),
                extra=extra,
            )
        )
    return specs, "" if specs else f"raw video {video.name} is shorter than 1 s"


def read_box_json(path: Path, out: AdapterOutput, split: str) -> dict[str, dict]:
    """``solotest.json``/``duettest.json`` -> {key: entry}; a non-dict file is a problem."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        out.problem(split, path.name, f"not valid JSON: {err}", kind="annotation")
        return {}
    if not isinstance(data, dict):
        out.problem(
            split, path.name, "expected a JSON object keyed by frame path", kind="annotation"
        )
        return {}
    out.describe_file(path.name, path, frames=len(data), boxes="normbox xywh normalised")
    return data


def box_objects(entry: Any) -> tuple[tuple[ObjectSpec, ...], str]:
    """Objects of one annotated frame from ``normbox`` + ``category_id``; (objects, problem)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("bbox"), list):
        return (), f"entry has no 'bbox' list: {entry!r}"[:200]
    objects = []
    for raw in entry["bbox"]:
        if not isinstance(raw, dict) or "normbox" not in raw or "category_id" not in raw:
            return (), f"box lacks normbox/category_id: {raw!r}"[:200]
        label = DSOL_CATEGORY_TO_LABEL.get(raw["category_id"])
        if label is None:
            known = sorted(DSOL_CATEGORY_TO_LABEL)
            return (), f"unknown category_id {raw['category_id']!r} (known: {known})"
        try:
            box, note = clean_box(xywh_to_xyxy(raw["normbox"]))
        except (TypeError, ValueError):
            box, note = None, f"normbox is not 4 numbers: {raw['normbox']!r}"
        if box is None:
            return (), f"{label}: {note}"
        objects.append(ObjectSpec(label, box, True, extra=(("category_id", raw["category_id"]),)))
    return tuple(objects), ""


def test_specs(
    data: dict[str, Any],
    media: MusicMedia,
    out: AdapterOutput,
    *,
    split: str,
    field: str,
    labels: dict[str, tuple[str, ...]],
) -> None:
    """Add one sample per annotated frame with at least one box (DSOL skips empty frames)."""
    clip_problem: dict[str, str] = {}
    for key, entry in data.items():
        match = _KEY.match(key)
        if match is None:
            out.problem(
                split, key, "key is not '<clip>/frame_<sss>/<fffff>.jpg'", kind="annotation"
            )
            continue
        objects, problem = box_objects(entry)
        if problem:
            out.problem(split, key, problem, kind="annotation")
            continue
        if not objects:
            out.count(split, "skipped_no_box")
            continue
        clip, second, index = match["clip"], int(match["second"]), int(match["index"])
        out.count(split, "annotated_frames")
        spec = _test_spec(key, clip, second, index, objects, media, field, labels)
        if isinstance(spec, str):
            clip_problem.setdefault(clip, spec)
            out.count(split, "frames_without_media")
        else:
            out.add(split, spec)
    for clip, why in clip_problem.items():
        out.problem(split, clip, f"{why} (all annotated frames of this video are skipped)")


def _test_spec(
    key: str,
    clip: str,
    second: int,
    index: int,
    objects: tuple[ObjectSpec, ...],
    media: MusicMedia,
    field: str,
    labels: dict[str, tuple[str, ...]],
) -> SampleSpec | str:
    """The sample of one annotated frame, or why its media are missing."""
    video_labels = labels.get(music_ytid(clip), ())
    extra: dict[str, Any] = {"dataset": "music", "clip": clip, "dsol_key": key}
    if video_labels:
        extra["video_labels"] = list(video_labels)
        unboxed = [lab for lab in video_labels if lab in MUSIC_NEVER_BOXED]
        if unboxed:
            extra["unboxed_sounding"] = unboxed  # sounding, but the detector had no class for it
    jpg = media.frames.get(clip)
    jpg = jpg / f"frame_{second:03d}" / f"{index:05d}.jpg" if jpg is not None else None
    frame = jpg if jpg is not None and jpg.is_file() else None
    video = media.raw_video(clip) if frame is None else None
    audio = second_media(media, clip, second)
    if frame is None and video is None:
        return f"frame {key} not found and no raw video {clip}.mp4"
    if audio is None:
        return f"no audio for {clip}: no raw {clip}.wav/.flac/.mp4 and no audio_frames pickle"
    return SampleSpec(
        id=key.removesuffix(".jpg"),
        split=field,
        objects=objects,
        frame=frame,
        video=video,
        time_seconds=frame_time(second, index),
        window=(float(second), second + 1.0),
        extra=tuple(extra.items()),
        **audio,
    )


def _read_ids(path: Path | None, out: AdapterOutput, unreadable: list[str]) -> dict:
    """``read_id_json`` of a file that may be missing; a file that exists but gives no ids adds
    a line saying so (and why) to ``unreadable``."""
    if path is None:
        return {}
    before = len(out.problems)
    labels = read_id_json(path, out)
    if not labels:
        why = out.problems[-1].reason if len(out.problems) > before else "it lists no videos"
        unreadable.append(f"{path.name} exists but cannot be read: {why}")
    return labels


def _lists(root: Path, names: dict[str, str], out: AdapterOutput) -> dict[str, list[str]]:
    found = {}
    for split, name in names.items():
        path = find_file(root, [name])
        if path is not None:
            found[split] = read_pair_list(path, out, split)
    return found


def build_music(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """MUSIC solo/duet: training splits from DSOL's lists (or every JSON id), test splits from
    ``solotest.json`` (``musictest.json``) and ``duettest.json``."""
    out = AdapterOutput(
        format={
            "adapter": "music",
            "version": FORMAT_VERSION,
            "category_id": DSOL_CATEGORY_TO_LABEL,
        }
    )
    solo_json = find_file(root, ["MUSIC_solo_videos.json", "MUSIC21_solo_videos.json"])
    duet_json = find_file(root, ["MUSIC_duet_videos.json"])
    unreadable: list[str] = []
    solo = _read_ids(solo_json, out, unreadable)
    duet = _read_ids(duet_json, out, unreadable)
    solo_test = find_file(root, ["solotest.json", "musictest.json"])
    duet_test = find_file(root, ["duettest.json"])
    if not (solo or duet or solo_test or duet_test):
        if unreadable:
            raise DatasetError(
                f"{root}: {'; '.join(unreadable)}; and there is no solotest.json/duettest.json"
            )
        raise DatasetError(
            f"{root}: no MUSIC id JSON (MUSIC_solo_videos.json, ...) and no "
            "solotest.json/duettest.json found"
        )
    media = MusicMedia(root, skip)
    lists = _lists(root, SOLO_LISTS, out) if solo else {}
    if solo and not lists:
        lists = {"solo_all": [f"{y}_0_1000" for y in solo]}
    duet_lists = _lists(root, DUET_LISTS, out) if duet else {}
    if duet and not duet_lists:
        duet_lists = {"duet_all": [f"{y}_0_1000" for y in duet]}
    all_labels = {**solo, **duet}
    test_clips: set[str] = set()
    for split, path, field in (("solo_test", solo_test, "solo"), ("duet_test", duet_test, "duet")):
        if path is not None:
            data = read_box_json(path, out, split)
            test_clips |= {k.split("/")[0] for k in data}
            test_specs(data, media, out, split=split, field=field, labels=all_labels)
    for field, labels, split_lists in (("solo", solo, lists), ("duet", duet, duet_lists)):
        for split, clips in split_lists.items():
            if split.endswith("_all"):  # no official list: keep the annotated test videos out
                out.count(split, "excluded_test_videos", sum(c in test_clips for c in clips))
                clips = [c for c in clips if c not in test_clips]
            elif test_clips & set(clips):
                out.problem(
                    split,
                    split,
                    f"{len(test_clips & set(clips))} video(s) of this "
                    "training list are annotated test videos",
                    kind="warning",
                )
            _add_training(out, split, field, clips, labels, media)
    _check_test_list(root, out)
    return out


def _add_training(
    out: AdapterOutput,
    split: str,
    field: str,
    clips: list[str],
    labels: dict[str, tuple[str, ...]],
    media: MusicMedia,
) -> None:
    out.count(split, "listed_videos", len(clips))
    for clip in clips:
        clip_labels = labels.get(music_ytid(clip))
        if clip_labels is None:
            out.problem(
                split, clip, "not in the MUSIC id JSON, so its class is unknown", kind="annotation"
            )
            continue
        specs, why = training_specs(clip, clip_labels, media, split=split, field=field)
        if not specs:
            out.problem(split, clip, why)
        for spec in specs:
            out.add(split, spec)


def _check_test_list(root: Path, out: AdapterOutput) -> None:
    """Report ``solo_testing.txt`` videos that have no annotated frame in the test split."""
    path = find_file(root, ["solo_testing.txt"])
    if path is None or "solo_test" not in out.counts:
        return
    annotated = {s.extra_dict().get("clip") for s in out.splits.get("solo_test", [])}
    annotated |= {p.item for p in out.problems if p.split == "solo_test"}
    for clip in read_pair_list(path, out, "solo_test"):
        if clip not in annotated:
            out.problem(
                "solo_test",
                clip,
                "listed in solo_testing.txt but has no annotated frame",
                kind="warning",
            )
