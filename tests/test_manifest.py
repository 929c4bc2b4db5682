"""Tests for the JSON Lines sample manifest: parsing, validation messages, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ier.data.manifest import (
    ObjectAnnotation,
    Sample,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from ier.errors import ManifestError


def _record(sample_id: str = "s0", **changes) -> dict:
    record = {
        "id": sample_id,
        "split": "synthetic",
        "video": f"clips/{sample_id}.mp4",
        "time": 2.0,
        "window": [1.5, 2.5],
        "objects": [
            {"label": "violin", "box": [0.0, 0.0, 0.5, 0.5], "sounding": True},
            {"label": "cello", "box": [0.5, 0.5, 1.0, 1.0], "sounding": False},
            {"label": "violin", "box": [0.5, 0.0, 1.0, 0.5], "sounding": False},
        ],
        "offscreen": ["dog"],
        "noise": {"kind": "wind", "snr_db": 10.0},
    }
    record.update(changes)
    return record


def _write_lines(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_read_valid_manifest_resolves_paths_and_labels(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "manifest.jsonl", [_record("a"), _record("b")])
    samples = read_manifest(path)
    assert [s.id for s in samples] == ["a", "b"]
    a = samples[0]
    assert a.video_path == tmp_path.resolve() / "clips" / "a.mp4"
    assert a.frame_path is None and a.audio_path is None
    assert a.sounding_labels == ("violin",)
    # A label with one sounding instance is a sounding category, not a silent one.
    assert a.silent_labels == ("cello",)
    assert a.visible_labels == ("violin", "cello")
    assert not a.is_negative
    assert a.objects[1] == ObjectAnnotation("cello", (0.5, 0.5, 1.0, 1.0), False)
    assert a.noise == {"kind": "wind", "snr_db": 10.0}


def test_frame_plus_audio_form(tmp_path: Path) -> None:
    record = _record("f", frame="frames/f.jpg", audio="audio/f.wav")
    del record["video"]
    sample = read_manifest(_write_lines(tmp_path / "m.jsonl", [record]))[0]
    assert sample.video_path is None
    assert sample.frame_path == tmp_path.resolve() / "frames" / "f.jpg"
    assert sample.audio_path == tmp_path.resolve() / "audio" / "f.wav"


def test_every_bad_line_is_reported_with_path_line_and_field(tmp_path: Path) -> None:
    bad_box = _record("b1")
    bad_box["objects"][0]["box"] = [0.6, 0.1, 0.4, 0.9]
    bad_time = _record("b2", time=9.0)
    no_media = _record("b3")
    del no_media["video"]
    bad_noise = _record("b4", noise={"kind": "rain"})
    records = [_record("ok"), bad_box, "{broken json", bad_time, no_media, bad_noise, _record("ok")]
    path = _write_lines(tmp_path / "m.jsonl", records)
    problems = validate_manifest(path)
    expected = [
        (2, "objects[0].box"),
        (3, "invalid JSON"),
        (4, "field `time`"),
        (5, "field `video`"),
        (6, "noise.snr_db"),
        (7, "duplicate id 'ok' (first on line 1)"),
    ]
    assert len(problems) == len(expected)
    for problem, (line, text) in zip(problems, expected):
        assert problem.startswith(f"{path}:{line}: ")
        assert text in problem
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    assert info.value.problems == problems
    assert "6 problem(s)" in str(info.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": ""}, "`id`"),
        ({"split": 3}, "`split`"),
        ({"window": [2.0, 1.0]}, "`window`"),
        ({"window": [0.0]}, "`window`"),
        ({"time": -1}, "`time`"),
        ({"offscreen": "dog"}, "`offscreen`"),
        ({"objects": {"label": "x"}}, "`objects`"),
        ({"noise": "loud"}, "`noise`"),
        ({"sources": [{"asset": "a", "gain_db": "loud"}]}, "`sources[0].gain_db`"),
        ({"negative": True}, "`negative`"),
        ({"duration": 2.2}, "`window`"),
        ({"frame": "x.jpg"}, "`video`"),
    ],
)
def test_single_field_errors(tmp_path: Path, change: dict, field: str) -> None:
    path = _write_lines(tmp_path / "m.jsonl", [_record(**change)])
    problems = validate_manifest(path)
    assert problems and all(p.startswith(f"{path}:1: ") for p in problems)
    assert any(field in p for p in problems), problems


def test_object_field_errors_are_all_listed(tmp_path: Path) -> None:
    record = _record()
    record["objects"] = [{"label": "", "box": [0, 0, 1.2, 1], "sounding": "yes"}, {"box": 5}]
    problems = validate_manifest(_write_lines(tmp_path / "m.jsonl", [record]))
    fields = ["objects[0].label", "objects[0].box", "objects[0].sounding"]
    fields += ["objects[1].label", "objects[1].sounding", "objects[1].box"]
    for name in fields:
        assert any(f"`{name}`" in p for p in problems), (name, problems)


def test_missing_file_and_check_files(tmp_path: Path) -> None:
    assert "not found" in validate_manifest(tmp_path / "nope.jsonl")[0]
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")
    path = _write_lines(tmp_path / "m.jsonl", [_record("a")])
    assert validate_manifest(path) == []
    assert any("file not found" in p for p in validate_manifest(path, check_files=True))


def test_round_trip_keeps_unknown_keys_and_optional_fields(tmp_path: Path) -> None:
    record = _record("a", sources=[{"asset": "pkg/x.ogg", "gain_db": -3.0}], negative=False)
    record["objects"][0]["annotators"] = [[0.0, 0.0, 0.4, 0.4], [0.1, 0.1, 0.5, 0.5]]
    record["objects"][0]["mask"] = "masks/a0.png"
    record["objects"][0]["score"] = 0.9
    record["adapter_note"] = {"frame_index": 12}
    path = _write_lines(tmp_path / "m.jsonl", [record])
    sample = read_manifest(path)[0]
    assert sample.objects[0].annotators == ((0.0, 0.0, 0.4, 0.4), (0.1, 0.1, 0.5, 0.5))
    assert sample.objects[0].extra == {"score": 0.9}
    assert sample.extra == {"negative": False, "adapter_note": {"frame_index": 12}}
    out = write_manifest(tmp_path / "copy.jsonl", read_manifest(path))
    again = read_manifest(out)
    assert again == read_manifest(path)
    assert json.loads(out.read_text().splitlines()[0]) == json.loads(json.dumps(sample.to_dict()))


def test_write_rebases_relative_paths_into_a_new_folder(tmp_path: Path) -> None:
    sample = read_manifest(_write_lines(tmp_path / "m.jsonl", [_record("a")]))[0]
    out = write_manifest(tmp_path / "sub" / "deeper" / "m.jsonl", [sample])
    moved = read_manifest(out)[0]
    assert moved.video == "../../clips/a.mp4"
    assert moved.video_path.resolve() == sample.video_path.resolve()


def test_write_accepts_dicts_and_rejects_bad_ones_without_touching_the_file(tmp_path: Path) -> None:
    target = tmp_path / "m.jsonl"
    write_manifest(target, [_record("a"), _record("b")])
    before = target.read_text()
    with pytest.raises(ManifestError) as info:
        write_manifest(target, [_record("a"), _record("a"), _record("c", time="now")])
    assert len(info.value.problems) == 2
    assert any("duplicate id 'a'" in p for p in info.value.problems)
    assert any("sample 2: field `time`" in p for p in info.value.problems)
    assert target.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.jsonl"]


def test_from_dict_and_negative_sample() -> None:
    record = _record("n", negative=True, split="negative")
    for obj in record["objects"]:
        obj["sounding"] = False
    sample = Sample.from_dict(record)
    assert sample.is_negative and sample.sounding_labels == ()
    assert sample.silent_labels == ("violin", "cello")
    with pytest.raises(ManifestError, match="bad sample record"):
        Sample.from_dict(_record("x", window=[3.0, 4.0]))


def test_public_names_stay_importable_from_the_manifest_module() -> None:
    import ier.data
    import ier.data.manifest as manifest
    import ier.data.sample as records

    for name in ("SPLIT_KINDS", "Box", "ObjectAnnotation", "Sample", "parse_record"):
        assert getattr(manifest, name) is getattr(records, name)
    assert ier.data.Sample is Sample and ier.data.read_manifest is read_manifest
    sample, problems = manifest.parse_record(_record(), root=None)
    assert problems == [] and sample is not None and sample.id == "s0"
    sample, problems = manifest.parse_record(_record(time=-1), root=None)
    assert sample is None and any("`time`" in p for p in problems)


def test_invalid_json_reports_the_real_column(tmp_path: Path) -> None:
    """The line is parsed without its line break: an unfinished record points past its last
    character, not to "column 1" of the next line."""
    text = '{"id": "a", "split": "solo"'
    path = tmp_path / "m.jsonl"
    path.write_text(text + "\n" + '{"id": "b",, "split": "solo"}' + "\r\n")
    problems = validate_manifest(path)
    assert problems[0] == (
        f"{path}:1: invalid JSON: Expecting ',' delimiter (column {len(text) + 1})"
    )
    assert problems[1].endswith("(column 12)")  # the second comma


def test_a_noise_bed_alone_has_a_level_instead_of_an_snr(tmp_path: Path) -> None:
    alone = _record("n1", noise={"kind": "rain", "snr_db": None, "level_dbfs": -26.0})
    bad = _record("n2", noise={"kind": "rain", "snr_db": None})
    path = _write_lines(tmp_path / "m.jsonl", [alone, bad])
    problems = validate_manifest(path)
    assert len(problems) == 1 and "noise.level_dbfs" in problems[0]
    assert problems[0].startswith(f"{path}:2: ")
