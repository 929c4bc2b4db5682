"""MUSIC (DSOL layout, raw videos, split lists, solotest/duettest boxes) and MUSIC-Synthetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataset_fixtures import (
    DUET_TEST,
    SOLO_TEST,
    SYNTH_BOXES,
    make_music,
    make_music_synthetic,
)
from ier.adapters import prepare
from ier.data.manifest import read_manifest


@pytest.fixture(scope="module")
def music(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("music")
    root = make_music(base / "raw")
    return prepare("music", root, base / "out", progress=False)


def _problems(report, split: str) -> dict[str, str]:
    return {p.item: p.reason for p in report.problems if p.split == split}


def _xyxy(normbox: list[float]) -> list[float]:
    x, y, w, h = normbox
    return [x, y, x + w, y + h]


def test_solo_test_round_trip_boxes_labels_and_times(music) -> None:
    samples = {s.id: s for s in read_manifest(music.manifests["solo_test"], check_files=True)}
    assert set(samples) == {
        "FAKEsolo004_0_1000/frame_000/00000",
        "FAKE-solo_2_0_1000/frame_004/00141",
    }
    for sid, sample in samples.items():
        raw = SOLO_TEST[sid + ".jpg"]["bbox"][0]
        assert list(sample.objects[0].box) == pytest.approx(_xyxy(raw["normbox"]))
        assert sample.split == "solo" and sample.extra["dsol_key"] == sid + ".jpg"
    cello = samples["FAKEsolo004_0_1000/frame_000/00000"]
    assert cello.objects[0].label == "cello"
    assert cello.frame_path.name == "00000.jpg" and cello.audio_path.name.endswith(".wav")
    assert cello.time == 0.0 and cello.window == (0.0, 1.0)
    accordion = samples["FAKE-solo_2_0_1000/frame_004/00141"]  # only the raw <ytid>.mp4 exists
    assert accordion.objects[0].label == "accordion"
    assert accordion.video_path.name == "FAKE-solo_2.mp4"
    assert accordion.time == pytest.approx(141 / 30) and accordion.window == (4.0, 5.0)


def test_duet_from_dsol_frames_and_audio_pickle(music) -> None:
    (sample,) = read_manifest(music.manifests["duet_test"], check_files=True)
    raw = DUET_TEST["FAKEduet001_0_1000/frame_010/00314.jpg"]["bbox"]
    assert [o.label for o in sample.objects] == ["cello", "acoustic_guitar"]
    for obj, box in zip(sample.objects, raw):
        assert list(obj.box) == pytest.approx(_xyxy(box["normbox"]))
    assert sample.split == "duet" and sample.extra["video_labels"] == ["cello", "acoustic_guitar"]
    assert sample.extra["source_window"] == [10.0, 11.0] and sample.window == (0.0, 1.0)
    assert sample.time == pytest.approx(314 / 30 - 10)
    assert sample.extra["audio_reconstruction_error_db"] < 2.0
    features = np.load(sample.root / sample.extra["audio_features"])
    assert features.shape == (201, 64)


def test_training_splits_one_sample_per_second(music) -> None:
    train = read_manifest(music.manifests["solo_train_1"], check_files=True)
    assert [s.id for s in train] == ["FAKEsolo001_0_1000/frame_000", "FAKEsolo001_0_1000/frame_001"]
    assert [s.window for s in train] == [(0.0, 1.0), (1.0, 2.0)]
    assert train[1].frame_path.name == "00044.jpg"  # the frame nearest the middle of second 1
    assert train[0].objects[0].label == "accordion" and train[0].objects[0].extra["weak"]
    val = read_manifest(music.manifests["solo_val"])
    assert len(val) == 5 and val[0].video_path.name == "FAKE-solo_2.mp4"


def test_music_reports_missing_corrupt_unknown_category_and_bad_lines(music) -> None:
    assert "no frames folder" in _problems(music, "solo_train_1")["FAKEsolo003_0_1000"]
    test = _problems(music, "solo_test")
    assert "unknown category_id 5" in test["FAKEsolo004_0_1000/frame_000/00014.jpg"]
    assert "cannot open" in test["FAKEsolo005_0_1000/frame_000/00000"]
    assert "broken.flac other.mp4" in _problems(music, "solo_val")["solo_validation.txt:2"]
    assert music.counts["solo_test"]["skipped_no_box"] == 1
    assert music.counts["duet_all"]["excluded_test_videos"] == 1  # no duet lists: test kept out
    report = json.loads(music.path.read_text())
    assert report["annotation_format"]["files"]["MUSIC_solo_videos.json"]["version"] == 1.0
    assert report["presets"]["solo"]["alpha"] == 0.1 and report["presets"]["duet"]["alpha"] == 0.2


def test_music_synthetic_round_trip_and_hostile_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "marker-created-by-pickle"
    root = make_music_synthetic(tmp_path / "raw", marker)
    report = prepare("music-synthetic", root, tmp_path / "out", progress=False)
    assert not marker.exists()
    (sample,) = read_manifest(report.manifests["synthetic_test"], check_files=True)
    assert sample.id == "FAKEmix_0001" and sample.split == "synthetic"
    assert [o.label for o in sample.objects] == ["violin", "accordion"]
    for obj, row in zip(sample.objects, SYNTH_BOXES):
        assert list(obj.box) == pytest.approx([row[0], row[1], row[0] + row[2], row[1] + row[3]])
    assert sample.window == (0.0, 1.0) and sample.audio_path.suffix == ".wav"
    assert sample.extra["audio_reconstruction_error_db"] < 2.0
    problems = {p.item: p for p in report.problems}
    assert (
        problems["FAKEmix_0002"].kind == "unsafe" and "refused" in problems["FAKEmix_0002"].reason
    )
    assert "unknown category_id 5" in problems["FAKEmix_0003"].reason
    assert problems["FAKEmix_0004"].kind == "missing"
    assert len(read_manifest(report.manifests["synthetic_train"])) == 1


def test_prepared_manifests_decode_with_the_training_data_layer(music) -> None:
    from ier.data.decode import DecodeSpec, decode_sample

    spec = DecodeSpec(image_size=32, num_frames=1, sample_rate=16000, num_samples=16000)
    for split in ("solo_test", "duet_test", "solo_train_1", "solo_val"):
        for sample in read_manifest(music.manifests[split]):
            frames, wave = decode_sample(sample, spec)
            assert frames.shape == (1, 32, 32, 3) and wave.shape == (16000,)
            assert float(abs(wave).max()) > 0.01  # the tone is there, not zero padding


def test_a_junk_id_json_is_reported_as_unreadable_not_missing(tmp_path: Path, capsys) -> None:
    from ier.cli import main

    root = tmp_path / "raw"
    root.mkdir()
    (root / "MUSIC_solo_videos.json").write_text("this is not JSON {")
    out = tmp_path / "out"
    assert main(["prepare", "music", "--root", str(root), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "MUSIC_solo_videos.json exists but cannot be read" in err and "JSONDecodeError" in err
    assert "not found" not in err
    (root / "MUSIC_solo_videos.json").write_text(json.dumps({"version": 1, "videos": {}}))
    assert main(["prepare", "music", "--root", str(root), "--out", str(out), "--no-progress"]) == 2
    assert "exists but cannot be read: it lists no videos" in capsys.readouterr().err


def test_a_prepare_run_that_writes_no_sample_fails_and_says_why(tmp_path: Path, capsys) -> None:
    from ier.cli import main

    root = tmp_path / "raw"
    root.mkdir()
    (root / "MUSIC_solo_videos.json").write_text(
        json.dumps({"version": 1, "videos": {"violin": ["NOMEDIA01"]}})
    )
    out = tmp_path / "out"
    assert main(["prepare", "music", "--root", str(root), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "wrote no samples" in err and "NOMEDIA01" in err and "prepare_report.json" in err
