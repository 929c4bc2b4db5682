"""SLAVC's Extended Flickr and Extended VGG-SS: the usual positives plus listed negatives.

A negative pairs the frame of ``video`` with the audio of ``audio`` (``*_plus_silent.csv``) and has
no sounding object. Unlike SLAVC's loader, a negative whose files are missing is reported, never
silently replaced by another sample.
"""

from __future__ import annotations

from pathlib import Path

from ier.adapters.common import AdapterOutput, SampleSpec, find_file, read_rows
from ier.adapters.flickr import TEST_LISTS, FlickrSet, frame_audio_spec, read_id_list
from ier.adapters.vggsound import CENTRE_SECONDS, clip_spec, media_index, read_vggss_json
from ier.adapters.vggsound import vggss_objects as _vggss_objects
from ier.errors import DatasetError

FORMAT_VERSION = "slavc-plus-silent-csv-v1"
NEGATIVE_LABEL = "non-sounding"


def read_negatives(path: Path, out: AdapterOutput, split: str) -> list[tuple[str, str]]:
    """(video id, audio id) rows of a ``*_plus_silent.csv``; other labels/bad rows are reported."""
    rows = []
    for line, cells in read_rows(path):
        if [c.lower() for c in cells] == ["video", "audio", "label"]:
            continue  # the header row
        where = f"{path.name}:{line}"
        if len(cells) != 3 or not cells[0] or not cells[1]:
            out.problem(
                split,
                where,
                f"expected 3 columns video,audio,label, got {cells!r}",
                kind="annotation",
            )
            continue
        if cells[2] != NEGATIVE_LABEL:
            out.problem(
                split,
                where,
                f"label {cells[2]!r} is not {NEGATIVE_LABEL!r}; row skipped",
                kind="annotation",
            )
            continue
        rows.append((cells[0], cells[1]))
    return rows


def negative_id(video: str, audio: str) -> str:
    """Sample id of a negative (SLAVC reuses the positive's name; ours must be unique)."""
    return f"{video}__neg__{audio}"


def build_extended_flickr(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """Extended Flickr: Flickr test positives + ``flickr_test_plus_silent.csv`` negatives."""
    split = "extended_flickr"
    out = AdapterOutput(format={"adapter": "extended-flickr", "version": FORMAT_VERSION})
    neg_path = find_file(root, ["flickr_test_plus_silent.csv"])
    test_list = find_file(root, TEST_LISTS)
    if neg_path is None or test_list is None:
        raise DatasetError(
            f"{root}: Extended Flickr needs flickr_test_plus_silent.csv and "
            "flickr_test.csv (SLAVC metadata/)"
        )
    data = FlickrSet(root, out, skip=skip)
    positives = read_id_list(test_list)
    negatives = read_negatives(neg_path, out, split)
    out.describe_file("test_list", test_list, rows=len(positives))
    out.describe_file("flickr_test_plus_silent.csv", neg_path, rows=len(negatives))
    out.count(split, "listed", len(positives) + len(negatives))
    out.count(split, "listed_negatives", len(negatives))
    for ident, label in positives:
        spec = data.spec(ident, split, split, label)
        if spec is not None:
            out.add(split, spec)
    for video, audio in negatives:
        frame, _, why_v = data.media(video)
        _, sound, why_a = data.media(audio)
        if frame is None or sound is None:
            out.problem(split, negative_id(video, audio), why_v if frame is None else why_a)
            continue
        out.add(
            split,
            frame_audio_spec(
                negative_id(video, audio),
                split=split,
                frame=frame,
                audio=sound,
                negative=True,
                extra=(("dataset", "flickr"), ("frame_of", video), ("audio_of", audio)),
            ),
        )
    return out


def build_extended_vggss(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """Extended VGG-SS: VGG-SS positives + ``vggss_test_plus_silent.csv`` negatives."""
    split = "extended_vggss"
    out = AdapterOutput(format={"adapter": "extended-vggss", "version": FORMAT_VERSION})
    neg_path = find_file(root, ["vggss_test_plus_silent.csv"])
    ann_path = find_file(root, ["vggss.json"])
    if neg_path is None or ann_path is None:
        raise DatasetError(
            f"{root}: Extended VGG-SS needs vggss_test_plus_silent.csv and "
            "vggss.json (SLAVC metadata/)"
        )
    index = media_index(root, skip)
    annotations = read_vggss_json(ann_path, out, split)
    negatives = read_negatives(neg_path, out, split)
    out.describe_file("vggss.json", ann_path, entries=len(annotations))
    out.describe_file("vggss_test_plus_silent.csv", neg_path, rows=len(negatives))
    out.count(split, "listed", len(annotations) + len(negatives))
    out.count(split, "listed_negatives", len(negatives))
    for clip, (label, boxes) in annotations.items():
        spec, why = clip_spec(
            clip,
            index,
            split=split,
            objects=_vggss_objects(label, boxes),
            extra=(("dataset", "vggss"),),
        )
        if spec is None:
            out.problem(split, clip, why)
        else:
            out.add(split, spec)
    for video, audio in negatives:
        sid = negative_id(video, audio)
        extra = (("dataset", "vggss"), ("frame_of", video), ("audio_of", audio))
        frame_spec, why_v = clip_spec(video, index, split=split, objects=())
        audio_spec, why_a = clip_spec(audio, index, split=split, objects=())
        if frame_spec is None or audio_spec is None:
            out.problem(split, sid, why_v if frame_spec is None else why_a)
            continue
        out.add(split, _pair(sid, split, frame_spec, audio_spec, extra))
    return out


def _pair(
    sid: str, split: str, frame_spec: SampleSpec, audio_spec: SampleSpec, extra: tuple
) -> SampleSpec:
    """Frame of one located clip with the audio (window and time) of another."""
    return SampleSpec(
        id=sid,
        split=split,
        frame=frame_spec.frame,
        video=frame_spec.video if frame_spec.frame is None else None,
        frame_time_seconds=frame_spec.time_seconds if frame_spec.frame is None else None,
        audio=audio_spec.audio_source,
        time_seconds=audio_spec.time_seconds,
        negative=True,
        extra=extra,
    )


__all__ = ["CENTRE_SECONDS", "build_extended_flickr", "build_extended_vggss", "negative_id"]
