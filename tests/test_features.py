"""The frozen visual trunk and its feature cache (``ier.data.features``): maps from pixels and from
the cache agree; the cache is keyed so it is never stale; extraction resumes, nests views, shards
across torchrun ranks; training and evaluation read it, also on an ``ier prepare`` dataset."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ier.data.extraction as extraction
import ier.data.features as features
from ier.cli import main
from ier.codec import apply_overrides
from ier.data.datasets import eval_batches, load_eval_split, load_split, read_classes
from ier.data.toy import build_toy_benchmark
from ier.errors import ConfigError
from ier.methods import preset
from ier.models import create_model, model_config

FLOAT16_TOLERANCE = 2e-3
"""Maps from cached float16 features agree with maps from pixels within this (absolute, maps in
[0, 1]): float16 keeps 11 significant bits, and the heads after the cache are smooth."""


def frozen(name: str = "ier", **overrides) -> torch.nn.Module:
    """A tiny model whose random ResNet trunk is frozen (cached at 64 px, 4 x 4 maps)."""
    return create_model(model_config("tiny", name=name, num_clusters=3, visual_trunk="frozen",
                                     **overrides)).eval()  # fmt: skip


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_benchmark(tmp_path_factory.mktemp("toy"), n_train=24, n_test=6)


def _eval(root: Path, model: torch.nn.Module, cache: Path, split: str = "test/wild"):
    return load_eval_split(root, split, model, classes=read_classes(root), cache_dir=cache)


def test_frozen_trunk_gets_no_gradient_and_keeps_batch_norm_fixed() -> None:
    model = frozen()
    model.train()
    trunk = model.visual_backbone
    assert trunk.trunk_frozen and not any(p.requires_grad for p in trunk.parameters())
    assert all(not m.training for m in trunk.frozen_modules())
    assert model.av_head.training  # the rest trains
    assert trunk.out_channels == trunk.trunk_channels  # the last block is dropped
    kept = create_model(model_config("tiny", name="ots", visual_trunk="frozen",
                                     train_last_block=True))  # fmt: skip
    assert kept.visual_backbone.out_channels == 2 * kept.visual_backbone.trunk_channels
    assert all(p.requires_grad for p in kept.visual_backbone.head.parameters())
    with pytest.raises(ValueError, match="train_last_block needs"):
        model_config("tiny", train_last_block=True)


@pytest.mark.parametrize("name", ["ier", "ots", "attention", "ezvsl", "supervised"])
def test_maps_from_cached_features_match_maps_from_pixels(toy, tmp_path, name) -> None:
    model = frozen(name)
    if name == "ier":  # the class-aware path: prototypes and a cluster -> category mapping
        d = model.embed_dim
        model.set_prototypes(torch.randn(3, d), torch.randn(3, d))
        model.set_class_mapping(("red", "green", "blue"), [0, 1, 2])
    cached = _eval(toy, model, tmp_path / "cache")
    pixels = load_split(toy, "test/wild", classes=read_classes(toy), input_size=64,
                        sample_rate=16_000, num_samples=16_000, train=False)  # fmt: skip
    assert cached.features and cached.frames.dtype == np.float16
    a = next(eval_batches(cached, 8))
    b = next(eval_batches(pixels, 8))
    assert a["image"].shape == (6, model.frozen_trunk().trunk_channels, 4, 4)
    torch.testing.assert_close(a["wave"], b["wave"])
    from_cache = model.localize(a["image"], a["wave"])
    from_pixels = model.localize(b["image"], b["wave"])
    assert from_cache.maps.shape == from_pixels.maps.shape
    assert float((from_cache.maps - from_pixels.maps).abs().max()) < FLOAT16_TOLERANCE
    assert float((from_cache.scores - from_pixels.scores).abs().max()) < FLOAT16_TOLERANCE


def test_the_cache_is_never_stale(toy, tmp_path, monkeypatch) -> None:
    model, cache = frozen(), tmp_path / "cache"
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = _eval(toy, model, cache, "test/solo")
    _eval(toy, model, cache, "test/solo")
    assert len(calls) == 1  # reused
    other = frozen()  # another random trunk: other features, another cache
    with torch.no_grad():
        other.visual_backbone.stem[0].weight.mul_(2.0)
    second = _eval(toy, other, cache, "test/solo")
    assert len(calls) == 2 and not np.array_equal(np.asarray(first.frames),
                                                  np.asarray(second.frames))  # fmt: skip
    copy = tmp_path / "copy"
    import shutil

    shutil.copytree(toy, copy)
    manifest = copy / "test/solo/manifest.jsonl"
    manifest.write_text("\n".join(manifest.read_text().splitlines()[:3]) + "\n")
    assert len(_eval(copy, model, cache, "test/solo")) == 3 and len(calls) == 3  # new manifest


def test_extraction_resumes_after_a_crash_and_gives_the_same_cache(toy, tmp_path, monkeypatch):
    model = frozen()
    kwargs = dict(classes=read_classes(toy), input_size=64, sample_rate=16_000,
                  num_samples=16_000, train=True, trunk=model.visual_backbone, views=2)  # fmt: skip
    monkeypatch.setattr(features, "CHUNK", 8)
    straight = load_split(toy, "train/solo", cache_dir=tmp_path / "a", **kwargs)
    real = features.cached_features
    done = []

    def dies_in_the_second_chunk(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        if len(done) == 1:
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kw)

    with monkeypatch.context() as patch:
        patch.setattr(features, "cached_features", dies_in_the_second_chunk)
        with pytest.raises(KeyboardInterrupt):
            load_split(toy, "train/solo", cache_dir=tmp_path / "b", **kwargs)
    folder = tmp_path / "b" / "features"
    assert list(folder.glob("*.partial")) and not list(folder.glob("*.features.npy"))
    flags = np.load(next(folder.glob("*.done.npy")))
    assert flags.tolist() == [1, 0, 0]  # 24 clips in chunks of 8: the first one is kept
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(features, "cached_features", lambda *a, **k: calls.append(1) or real(*a, **k))
        resumed = load_split(toy, "train/solo", cache_dir=tmp_path / "b", **kwargs)
    assert len(calls) == 2  # the two chunks left, one batch each
    assert np.array_equal(np.asarray(resumed.frames), np.asarray(straight.frames))
    assert np.array_equal(np.asarray(resumed.waves), np.asarray(straight.waves))
    assert not list(folder.glob("*.partial")) and not list(folder.glob("*.done.npy"))


def test_training_views_are_seeded_nested_and_cropped(toy, tmp_path) -> None:
    model = frozen()
    kwargs = dict(classes=read_classes(toy), input_size=64, sample_rate=16_000,
                  num_samples=16_000, train=True, trunk=model.visual_backbone,
                  cache_dir=tmp_path)  # fmt: skip
    four = load_split(toy, "train/solo", views=4, **kwargs)
    assert four.frames.shape == (24, 4, model.visual_backbone.trunk_channels, 6, 6)  # 64+32 px
    two = load_split(toy, "train/solo", views=2, **kwargs)  # served by the 4-view cache
    assert np.array_equal(np.asarray(two.frames), np.asarray(four.frames[:, :2]))
    assert len(list((tmp_path / "features").glob("*.features.npy"))) == 1
    views = np.asarray(four.frames[0], np.float32)
    assert not np.allclose(views[0], views[1])  # the mirrored view
    item = four[0]
    assert item["image"].shape == (model.visual_backbone.trunk_channels, 4, 4)
    four.set_epoch(1)
    again = [four[0]["image"] for _ in range(2)]
    torch.testing.assert_close(again[0], again[1])  # seeded: the same draw for the same epoch
    drawn = {four.item(0)["image"].numpy().tobytes() for four.epoch in range(12)}
    assert len(drawn) > 6  # views and crops vary over epochs (4 views x 9 crops)


def test_ier_trains_from_the_cache_and_the_extract_command_builds_it(toy, tmp_path) -> None:
    cache = tmp_path / "cache"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["features", "extract", "--data", str(toy), "--preset", "tiny", "--set",
                     "model.visual_trunk=frozen", "--views", "2", "--cache-dir", str(cache),
                     "--no-progress"]) == 0  # fmt: skip
    printed = out.getvalue()
    assert "train/solo: 24 clips x 2 view(s)" in printed
    assert "test/wild: 6 clips x 1 view" in printed
    made = sorted(p.name for p in (cache / "features").glob("*.features.npy"))
    assert len(made) == 4  # train/solo, train/unconstrained, test/solo, test/wild
    cfg = apply_overrides(preset("ier", "tiny"), [
        "model.visual_trunk=frozen", "data.feature_views=2", f"data.cache_dir={cache}",
        "stages.av.epochs=2", "stages.aii.epochs=1", "stages.cmr.epochs=1",
    ])  # fmt: skip
    from ier.train import fit

    result = fit(cfg, toy, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (cache / "features").glob("*.features.npy")) == made  # reused
    assert result.history[-1]["stage"] == "cmr" and result.metrics["test/wild"]["n"] == 6
    with pytest.raises(ConfigError, match="frozen visual trunk"):
        extraction.extract_features(toy, model_config("tiny"))


def test_a_prepared_dataset_trains_from_the_cache(tmp_path) -> None:
    from dataset_fixtures import make_music
    from ier.adapters import prepare

    root = make_music(tmp_path / "MUSIC")
    prepare("music", root, tmp_path / "prepared", progress=False)
    cfg = apply_overrides(preset("ots", "tiny"), [
        "model.visual_trunk=frozen", "data.feature_views=1", "stages.solo.epochs=1",
        "stages.wild.epochs=1", "stages.solo.split=solo_train_1", "stages.wild.split=solo_val",
        "eval.splits=solo_test",
    ])  # fmt: skip
    from ier.train import fit

    result = fit(cfg, tmp_path / "prepared", tmp_path / "run", progress=False)
    cached = sorted(p.name for p in
                    (tmp_path / "prepared" / ".ier-cache" / "features").glob("*.features.npy"))
    assert [name.split("-")[0] for name in cached] == ["prepared_solo_test",
                                                       "prepared_solo_train_1",
                                                       "prepared_solo_val"]  # fmt: skip
    assert result.metrics["solo_test"]["n"] > 0


@pytest.mark.slow
def test_two_torchrun_processes_share_the_extraction(toy, tmp_path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "ier", "features", "extract", "--data", str(toy), "--preset", "tiny", "--set",
           "model.visual_trunk=frozen", "--views", "2", "--splits", "train/solo",
           "--cache-dir", str(tmp_path / "ddp"), "--no-progress"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with contextlib.redirect_stdout(io.StringIO()):
        main(["features", "extract", "--data", str(toy), "--preset", "tiny", "--set",
              "model.visual_trunk=frozen", "--views", "2", "--splits", "train/solo",
              "--cache-dir", str(tmp_path / "one"), "--no-progress"])  # fmt: skip
    (a,), (b,) = ((tmp_path / d / "features").glob("*.features.npy") for d in ("ddp", "one"))
    assert a.name == b.name and np.array_equal(np.load(a), np.load(b))
    info = json.loads(next((tmp_path / "ddp" / "features").glob("*.json")).read_text())
    assert info["clips"] == 24 and "finished" in info


def test_freed_memory_is_kept_for_reuse() -> None:
    import resource

    from ier.allocator import keep_freed_memory

    assert keep_freed_memory() and keep_freed_memory()  # glibc here; idempotent
    x = torch.randn(16, 3, 256, 256)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        big = torch.relu(x.repeat(4, 1, 1, 1))  # 200 MiB allocated and freed each time
        del big
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 3 * (200 << 20) // 4096 // 2  # the blocks are reused, not faulted in anew


def test_the_extract_command_also_encodes_the_audio_of_a_frozen_audio_encoder(toy, tmp_path):
    """With aisfx, ``ier features extract`` writes every split's audio encodings, and a run with
    the same config then encodes none of those clips itself."""
    from ier.models.aisfx import AisfxAudio
    from ier.train import fit

    cache = tmp_path / "cache"
    settings = ["model.visual_trunk=frozen", "model.audio_backbone=aisfx", "model.pretrained=false",
                "data.feature_views=1", f"data.cache_dir={cache}"]  # fmt: skip
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        args = ["features", "extract", "--data", str(toy), "--method", "dsol", "--preset", "tiny"]
        assert main([*args, *(x for s in settings for x in ("--set", s)), "--no-progress"]) == 0
    assert "audio encodings of aisfx: 4 split(s)" in out.getvalue()
    assert len(list((cache / "audio-encodings").rglob("*.npy"))) == 4
    cfg = apply_overrides(preset("dsol", "tiny"), [*settings, "stages.0.epochs=1", "stop_stage=0"])
    encoded = []
    real = AisfxAudio._encode

    def counted(self: AisfxAudio, waves: torch.Tensor) -> torch.Tensor:
        encoded.append(len(waves))
        return real(self, waves)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AisfxAudio, "_encode", counted)
        result = fit(cfg, toy, tmp_path / "run", progress=False)
    assert encoded == [] and result.metrics["test/wild"]["n"] == 6  # trained and evaluated
