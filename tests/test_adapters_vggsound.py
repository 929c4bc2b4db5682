"""VGGSound CSV, VGG-SS boxes and Extended VGG-SS -> manifests, with every problem reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataset_fixtures import VGGSS, make_extended_vggss, make_vggsound
from ier.adapters import prepare
from ier.cli import main
from ier.data.manifest import read_manifest


@pytest.fixture(scope="module")
def vgg(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("vgg")
    root = make_vggsound(base / "raw")
    report = prepare("vggsound", root, base / "out", progress=False)
    return base, report


def _problems(report, split: str) -> dict[str, str]:
    return {p.item: p.reason for p in report.problems if p.split == split}


def test_vggss_round_trip_boxes_labels_and_centre_frame(vgg) -> None:
    base, report = vgg
    samples = {s.id: s for s in read_manifest(report.manifests["vggss"], check_files=True)}
    assert set(samples) == {"FAKEvgg0001_000030", "FAKE-vg_002_000000", "FAKEvgg0005_000020"}
    expected = {e["file"]: e for e in VGGSS}
    for sid, sample in samples.items():
        assert [list(o.box) for o in sample.objects] == expected[sid]["bbox"]
        assert {o.label for o in sample.objects} == {expected[sid]["class"]}
        assert sample.split == "vggss" and all(o.sounding for o in sample.objects)
    flat = samples["FAKEvgg0001_000030"]  # frames/*.jpg + 10-s audio/*.wav
    assert flat.frame_path.name == "FAKEvgg0001_000030.jpg"
    assert flat.time == 5.0 and flat.window == (4.5, 5.5)
    clip = samples["FAKE-vg_002_000000"]  # 6-s clip video: frame at 5 s, window fits the file
    assert clip.video_path.name == "FAKE-vg_002_000000.mp4"
    assert clip.time == 5.0 and clip.window == (4.5, 5.5)
    full = samples["FAKEvgg0005_000020"]  # whole YouTube video: start 20 s + 5 s
    assert full.video_path.name == "FAKEvgg0005.mp4" and full.time == 25.0


def test_vggsound_reports_missing_corrupt_malformed_and_sentinel(vgg) -> None:
    base, report = vgg
    vggss = _problems(report, "vggss")
    assert "cannot open" in vggss["FAKEvgg0004_000010"]
    assert "no usable box" in vggss["-FAKEvgg003_000125"]
    assert "vggss_test.csv" in vggss["FAKEvggXXXX_000000"]
    assert "no media" in _problems(report, "train")["-FAKEvgg003_000125"]
    assert "malformed row" in _problems(report, "")["vggsound.csv:6"]
    on_disk = json.loads((base / "out" / "prepare_report.json").read_text())
    assert on_disk["splits"]["vggss"]["written"] == 3
    assert on_disk["splits"]["vggss"]["unreadable"] == 1
    assert on_disk["splits"]["train"]["missing"] == 1
    assert on_disk["annotation_format"]["files"]["vggss.json"]["sha256"]
    assert on_disk["presets"]["vggss"]["gt_rule"] == "union"
    labels = {o.label for s in read_manifest(report.manifests["test"]) for o in s.objects}
    assert labels == {"playing cello", "female speech, woman speaking"}


def test_cli_cache_writes_frames_and_windows_then_resumes(tmp_path: Path, capsys) -> None:
    root = make_vggsound(tmp_path / "raw")
    args = ["prepare", "vggss", "--root", str(root), "--out", str(tmp_path / "o"), "--cache"]
    assert main([*args, "--no-progress"]) == 0
    assert "missing or unreadable" in capsys.readouterr().out
    samples = read_manifest(tmp_path / "o" / "vggss" / "manifest.jsonl", check_files=True)
    assert len(samples) == 3
    for sample in samples:
        assert sample.frame_path.parent.name == "frames" and sample.audio_path.suffix == ".wav"
        assert sample.window == (0.0, 1.0) and sample.time == 0.5
        assert sample.extra["source_time"] in (5.0, 25.0)
    from ier.audio import load_audio

    assert load_audio(samples[0].audio_path).shape == (16000,)
    assert main([*args, "--no-progress"]) == 0  # resume: nothing is decoded twice
    report = json.loads((tmp_path / "o" / "prepare_report.json").read_text())
    assert report["reused_from_previous_run"] == 3


def test_refuses_bad_roots(tmp_path: Path) -> None:
    from ier.errors import DatasetError

    with pytest.raises(DatasetError, match="not found"):
        prepare("vggss", tmp_path / "nope", tmp_path / "out")
    with pytest.raises(DatasetError, match="vggss.json"):
        prepare("vggss", tmp_path, tmp_path / "out")
    with pytest.raises(DatasetError, match="must not be the dataset root"):
        prepare("vggss", tmp_path, tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset"):
        prepare("coco", tmp_path, tmp_path / "out")


def test_extended_vggss_positives_and_negatives(tmp_path: Path) -> None:
    root = make_extended_vggss(tmp_path / "raw")
    report = prepare("extended-vggss", root, tmp_path / "out", progress=False)
    samples = {s.id: s for s in read_manifest(report.manifests["extended_vggss"])}
    mismatched = samples["FAKEvgg0001_000030__neg__FAKE-vg_002_000000"]
    assert mismatched.is_negative and mismatched.extra["negative"] is True
    assert mismatched.frame_path.name == "FAKEvgg0001_000030.jpg"
    assert mismatched.audio_path.name == "FAKE-vg_002_000000.mp4"
    same = samples["FAKEvggX99_000040__neg__FAKEvggX99_000040"]
    assert same.video_path.name == "FAKEvggX99_000040.mp4" and same.objects == ()
    positives = [s for s in samples.values() if not s.is_negative]
    assert len(positives) == 3 and all(s.split == "extended_vggss" for s in samples.values())
    problems = _problems(report, "extended_vggss")
    gone = problems["FAKEvgg0001_000030__neg__FAKEgone001_000000"]
    assert "no media for FAKEgone001_000000" in gone
    assert "not 'non-sounding'" in problems["vggss_test_plus_silent.csv:5"]
