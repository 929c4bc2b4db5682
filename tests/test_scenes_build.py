"""The `small` build of the benchmark: layout, provenance, hold-out, determinism, audio, CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from ier.audio import SAMPLE_RATE, load_audio
from ier.cli import main
from ier.data.manifest import read_manifest
from ier.errors import ConfigError
from ier.scenes import PRESETS, SPLITS, assets, build, build_benchmark, catalog, compose
from ier.scenes.stats import _record_problems, check_benchmark, load_benchmark, train_test_overlaps


def test_layout_counts_and_vocabulary(small_benchmark):
    info = json.loads((small_benchmark / "benchmark.json").read_text())
    assert info["complete"] and info["preset"] == "small" and info["seed"] == 0
    assert info["classes"] == list(catalog.class_names())
    for split, (kind, _) in SPLITS.items():
        samples = read_manifest(small_benchmark / split / "manifest.jsonl", check_files=True)
        assert len(samples) == PRESETS["small"][split] == info["splits"][split]["count"]
        assert {s.split for s in samples} == {kind}
        for s in samples:
            assert s.time == pytest.approx(1.5) and s.window == pytest.approx((1.0, 2.0))


def test_small_build_passes_its_checks(small_benchmark):
    assert check_benchmark(small_benchmark) == []


def test_every_class_is_represented(small_benchmark):
    _, records = load_benchmark(small_benchmark)
    for split in ("train/solo", "test/solo", "train/unconstrained"):
        labels = {o["label"] for r in records[split] for o in r["objects"] if o["sounding"]}
        assert labels == set(catalog.class_names()), split


def test_split_semantics(small_benchmark):
    _, records = load_benchmark(small_benchmark)
    for r in records["test/synthetic"]:
        assert len(r["objects"]) == 4 and len({o["label"] for o in r["objects"]}) == 4
        assert sum(o["sounding"] for o in r["objects"]) == 2
    for r in records["test/duet"]:
        gains = [s["gain_db"] for s in r["sources"] if s["role"] == "object"]
        assert len(gains) == 2 and abs(gains[0] - gains[1]) <= 3.0
    for r in records["test/wild"]:
        n_sound = sum(o["sounding"] for o in r["objects"])
        assert 1 <= n_sound <= 3 and 1 <= len(r["objects"]) - n_sound <= 2
        assert len(r["offscreen"]) <= 2 and 0 <= r["noise"]["snr_db"] <= 20
    for r in records["test/negative"]:
        assert r["negative"] and not any(o["sounding"] for o in r["objects"])
    test_records = [r for s, rs in records.items() if s.startswith("test/") for r in rs]
    assert not any(s["asset"].startswith("soundfont:") for r in test_records for s in r["sources"])


def test_boxes_lie_inside_and_do_not_overlap_badly(small_benchmark):
    _, records = load_benchmark(small_benchmark)
    for rs in records.values():
        for r in rs:
            boxes = [o["box"] for o in r["objects"]]
            for k, (x0, y0, x1, y1) in enumerate(boxes):
                assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
                for other in boxes[k + 1 :]:
                    assert compose.box_iou(boxes[k], other) <= compose.MAX_BOX_IOU + 0.02


def test_checks_catch_leaks_and_disagreements(small_benchmark):
    _, records = load_benchmark(small_benchmark)
    leaked = copy.deepcopy(records)
    test_source = next(s for s in leaked["test/solo"][0]["sources"] if s["role"] == "object")
    leaked["train/solo"][0]["sources"].append(dict(test_source))
    assert any(test_source["asset"] in p for p in train_test_overlaps(leaked))
    bad = copy.deepcopy(records["test/wild"][0])
    bad["objects"][0]["sounding"] = not bad["objects"][0]["sounding"]
    bad["objects"][0]["box"] = [0.5, 0.5, 1.2, 0.9]
    assert len(_record_problems(bad)) == 2


def test_solo_audio_is_its_source(small_benchmark):
    """The decoded clip audio matches the recorded segment named in the provenance."""
    _, records = load_benchmark(small_benchmark)
    checked = 0
    for r in records["test/solo"]:
        (src,) = [s for s in r["sources"] if s["role"] == "object"]
        if src["end_seconds"] - src["start_seconds"] < 2.999:
            continue  # a short recording repeated with random gaps: checked by level below
        clip = load_audio(small_benchmark / "test/solo" / r["video"], sample_rate=SAMPLE_RATE)
        a = round(src["start_seconds"] * SAMPLE_RATE)
        ref = assets.load_wave(src["asset"])[a : a + 3 * SAMPLE_RATE]
        n = min(len(ref), len(clip)) - 200
        corr = max(
            np.corrcoef(clip[100 + lag : 100 + lag + n - 100], ref[100:n])[0, 1]
            for lag in range(-8, 9)
        )
        assert corr > 0.9, r["id"]
        checked += 1
    assert checked >= 3


def test_solo_audio_level_is_normalised(small_benchmark):
    _, records = load_benchmark(small_benchmark)
    for r in records["test/solo"][:12]:
        clip = load_audio(small_benchmark / "test/solo" / r["video"], sample_rate=SAMPLE_RATE)
        level_db = 20 * np.log10(np.sqrt(np.mean(clip**2)))
        peak_limited = np.abs(clip).max() > 0.9
        assert peak_limited or abs(level_db - compose.SOURCE_LEVEL_DBFS) < 2.0, r["id"]


def test_frames_drift(small_benchmark):
    from ier.video import load_frames

    r = load_benchmark(small_benchmark)[1]["test/duet"][0]
    frames = load_frames(small_benchmark / "test/duet" / r["video"], [0.0, 1.5, 2.875])
    assert np.abs(frames[0].astype(int) - frames[2].astype(int)).mean() > 0.5


@pytest.fixture()
def tiny_preset(monkeypatch):
    monkeypatch.setitem(build.PRESETS, "tiny", dict.fromkeys(SPLITS, 2))
    return "tiny"


def test_same_seed_same_records_any_worker_count(small_benchmark, tiny_preset, tmp_path):
    out = build_benchmark(tmp_path / "b", preset=tiny_preset, seed=0, workers=2, progress=False)
    _, small = load_benchmark(small_benchmark)
    _, tiny = load_benchmark(out)
    for split in SPLITS:
        assert tiny[split] == small[split][:2], split
    other = build_benchmark(tmp_path / "c", preset=tiny_preset, seed=1, progress=False)
    assert load_benchmark(other)[1]["test/wild"] != tiny["test/wild"]


def test_resume_skips_finished_clips_and_refuses_other_settings(tiny_preset, tmp_path):
    out = build_benchmark(tmp_path / "b", preset=tiny_preset, seed=3, size=64, progress=False)
    clip = out / "test/wild/clips/test-wild-00001.mp4"
    stamp = clip.stat().st_mtime_ns
    (out / "test/wild/clips/test-wild-00000.mp4").unlink()  # an interrupted build
    build_benchmark(out, preset=tiny_preset, seed=3, size=64, progress=False)
    assert clip.stat().st_mtime_ns == stamp
    assert (out / "test/wild/clips/test-wild-00000.mp4").is_file()
    assert check_benchmark(out) == []
    with pytest.raises(ConfigError, match="seed"):
        build_benchmark(out, preset=tiny_preset, seed=4, size=64, progress=False)
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        build_benchmark(tmp_path / "user", preset=tiny_preset, progress=False)


def test_cli_check_stats_and_sheet(small_benchmark, tmp_path, capsys):
    assert main(["scenes", "check", str(small_benchmark)]) == 0
    assert main(["scenes", "stats", str(small_benchmark)]) == 0
    out = capsys.readouterr().out
    assert "| test/wild | 32 |" in out
    sheet = tmp_path / "sheet.png"
    assert (
        main(["scenes", "sheet", str(small_benchmark), "-o", str(sheet), "--per-split", "1"]) == 0
    )
    from PIL import Image

    with Image.open(sheet) as image:
        assert image.height >= 7 * 224


def test_noise_only_negatives_carry_their_noise_bed(small_benchmark):
    from ier.data.manifest import read_manifest

    _, records = load_benchmark(small_benchmark)
    noise_only = [r for r in records["test/negative"] if r["audio_content"] == "noise"]
    assert noise_only
    for r in noise_only:
        bed = [s["label"] for s in r["sources"] if s["role"] == "noise"]
        assert r["noise"]["kind"] == bed[0] and r["noise"]["snr_db"] is None
        assert isinstance(r["noise"]["level_dbfs"], float)
    for rs in records.values():  # every clip with a noise bed says so in its record
        for r in rs:
            if any(s["role"] == "noise" for s in r["sources"]):
                assert r["noise"] is not None, r["id"]
    samples = read_manifest(small_benchmark / "test/negative/manifest.jsonl")
    alone = [s for s in samples if s.noise is not None and s.noise["snr_db"] is None]
    assert len(alone) == len(noise_only)
    stale = copy.deepcopy(noise_only[0])
    stale["noise"] = None  # what builds before this fix wrote
    assert any("noise is null" in p for p in _record_problems(stale))


def test_a_negative_seed_fails_before_anything_is_written(tmp_path, capsys):
    from ier.cli import main

    out = tmp_path / "bench"
    assert main(["scenes", "build", str(out), "--preset", "small", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--seed" in err and "Traceback" not in err and not out.exists()


def _asset_sides() -> dict[str, set[str]]:
    """Every catalog asset -> the hold-out sides it is used on ({"train"}, {"test"} or both: a
    recording whose time ranges are split)."""
    sides: dict[str, set[str]] = {}

    def add(side: str, ids) -> None:
        for asset in ids:
            sides.setdefault(asset, set()).add(side)

    for side in ("train", "test"):
        for c in catalog.CLASSES:
            add(side, [a.asset for a in getattr(c, f"{side}_audio")])
            add(side, getattr(c, f"{side}_images"))
        for pool in (*catalog.offscreen_pools(), *catalog.NOISES):
            add(side, [a.asset for a in getattr(pool, side)])
        add(side, catalog.backgrounds()[side])
        add(side, catalog.distractors()[side])
    return sides


def test_diagnostic_splits_hold_out_one_modality(small_benchmark, tmp_path):
    from ier.scenes.recipes import audio_side, image_side

    out = build.build_diagnostic_splits(small_benchmark, tmp_path / "diag", count=6,
                                        progress=False)  # fmt: skip
    info = json.loads((out / "benchmark.json").read_text())
    assert info["complete"] and info["preset"] == "diagnostic:small"
    assert info["classes"] == list(catalog.class_names())
    sides = _asset_sides()
    _, records = load_benchmark(out)
    for split, (kind, side) in build.DIAGNOSTIC_SPLITS.items():
        assert len(records[split]) == 6 and {r["split"] for r in records[split]} == {kind}
        exclusive = {"audio": 0, "image": 0}
        for r in records[split]:
            for src in r["sources"]:
                asset = src["asset"]
                if asset.startswith(("soundfont:", "generated:")):
                    assert not asset.startswith("soundfont:") or audio_side(side) == "train"
                    continue
                modality = "audio" if src["role"] in ("object", "offscreen", "noise") else "image"
                want = audio_side(side) if modality == "audio" else image_side(side)
                assert want in sides[asset], (split, asset)
                exclusive[modality] += sides[asset] == {want}
        assert exclusive["audio"] and exclusive["image"], split  # the check is not vacuous
    # the folder passes the checks, the benchmark's own splits are untouched, and a second
    # build resumes, never mixes
    assert check_benchmark(out) == [] and check_benchmark(small_benchmark) == []
    assert build.build_diagnostic_splits(small_benchmark, out, count=6, progress=False) == out
    with pytest.raises(ConfigError, match="holds a benchmark built with"):
        build.build_diagnostic_splits(small_benchmark, small_benchmark, count=6, progress=False)


def test_unknown_asset_side_is_refused():
    from ier.scenes.recipes import RECIPES, audio_side, image_side

    assert (audio_side("test-images"), image_side("test-images")) == ("train", "test")
    assert (audio_side("test-audio"), image_side("test-audio")) == ("test", "train")
    with pytest.raises(ValueError, match="unknown asset side 'val'"):
        RECIPES["wild"](np.random.default_rng(0), 0, "val")


def test_extra_training_images_keep_the_test_clips(small_benchmark, tiny_preset, tmp_path):
    """--extra-train-images openclipart: training objects also come from the drawings, the test
    splits are the build's without them record for record, and the two never mix in a folder."""
    from ier.scenes.recipes import with_extra_images

    assert with_extra_images("train", "openclipart") == "train+openclipart"
    assert with_extra_images("test", "openclipart") == "test"
    assert with_extra_images("train", None) == "train"
    with pytest.raises(ValueError, match="unknown extra image source"):
        with_extra_images("train", "emoji")
    every = {c: set(catalog.EXTRA_TRAIN_IMAGES["openclipart"][c]) for c in catalog.class_names()}
    assert all(every.values()) and all(assets.exists(a) for ids in every.values() for a in ids)
    counts = dict.fromkeys(SPLITS, 2)
    counts["train/solo"] = 32  # 2 clips per class: most draw an extra image
    build.PRESETS[tiny_preset] = counts  # the fixture restores PRESETS
    out = build_benchmark(tmp_path / "x", preset=tiny_preset, progress=False,
                          extra_train_images="openclipart")  # fmt: skip
    info = json.loads((out / "benchmark.json").read_text())
    assert info["extra_train_images"] == "openclipart"
    _, extended = load_benchmark(out)
    _, small = load_benchmark(small_benchmark)
    for split in SPLITS:
        if split.startswith("test/"):
            assert extended[split] == small[split][:2], split
    images = [s["asset"] for r in extended["train/solo"] for s in r["sources"]
              if s["role"] == "image"]  # fmt: skip
    drawn = [a for a in images if a.startswith(catalog.OPENCLIPART)]
    assert len(images) == 32 and 8 <= len(drawn) < 32  # about 2 in 3 from the drawings
    for record in extended["train/solo"]:
        label = record["objects"][0]["label"]
        image = next(s["asset"] for s in record["sources"] if s["role"] == "image")
        assert image in every[label] or image in catalog.CLASSES[
            catalog.class_names().index(label)].train_images  # fmt: skip
    assert check_benchmark(out) == []
    with pytest.raises(ConfigError, match="extra_train_images"):
        build_benchmark(out, preset=tiny_preset, progress=False)
    with pytest.raises(ConfigError, match="unknown extra training image source"):
        build_benchmark(tmp_path / "y", preset=tiny_preset, extra_train_images="emoji")
