"""Decoded datasets: batch keys/shapes, the decode cache, seeded augmentation, DDP sharding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ier.data.decode as decode
from ier.data.datasets import (
    AVDataset,
    collate,
    eval_batches,
    list_splits,
    load_split,
    num_train_batches,
    read_classes,
    train_batches,
)
from ier.data.decode import train_cache_size
from ier.data.manifest import read_manifest
from ier.data.toy import TOY_CLASSES, build_toy_benchmark
from ier.errors import DatasetError


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_benchmark(tmp_path_factory.mktemp("toy"), n_train=20, n_test=8)


def _load(root: Path, split: str = "train/solo", *, train: bool = True, **kwargs) -> AVDataset:
    return load_split(
        root, split, classes=read_classes(root), input_size=64, sample_rate=16_000,
        num_samples=16_000, train=train, num_frames=2, **kwargs,
    )  # fmt: skip


def test_classes_and_splits(toy: Path) -> None:
    assert read_classes(toy) == TOY_CLASSES[:3]
    assert list_splits(toy) == ["test/solo", "test/wild"]
    with pytest.raises(DatasetError, match="not found"):
        _load(toy, "train/missing")


def test_batch_keys_shapes_and_ranges(toy: Path) -> None:
    dataset = _load(toy)
    batch = collate([dataset[0], dataset[1], dataset[2]])
    assert batch["image"].shape == (3, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert 0.0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1.0
    assert batch["wave"].shape == (3, 16_000)
    assert batch["index"].tolist() == [0, 1, 2]
    assert batch["boxes"].shape[0] == 3 and batch["boxes"].shape[2] == 4
    assert batch["audible"].shape == (3, 3)
    samples = read_manifest(toy / "train/solo/manifest.jsonl")
    plain = collate([dataset.item(i, augment=False) for i in range(3)])
    for i in range(3):
        label = TOY_CLASSES.index(samples[i].objects[0].label)
        assert batch["label"][i] == label  # the single sounding object's class
        assert batch["box_labels"][i, 0] == label and batch["box_labels"][i, 1] == -1  # padding
        assert torch.allclose(plain["boxes"][i, 0], torch.tensor(samples[i].objects[0].box))
        assert (batch["boxes"][i, 1:] == 0).all()  # padding stays zero after the crop


def _colour_inside(image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Mean RGB of the central half of ``box`` in a (3, S, S) image."""
    s = image.shape[-1]
    x0, y0, x1, y1 = (box * s).tolist()
    cx0, cx1 = int(x0 + (x1 - x0) / 4), int(x1 - (x1 - x0) / 4)
    cy0, cy1 = int(y0 + (y1 - y0) / 4), int(y1 - (y1 - y0) / 4)
    return image[:, cy0:cy1, cx0:cx1].mean(dim=(1, 2))


def test_boxes_follow_the_training_crop_and_flip(toy: Path) -> None:
    # the toy objects are flat coloured squares: after any crop, flip and jitter, the centre of the
    # moved box must still show the object's colour, and its hue must differ from the background
    from ier.data.toy import _COLOURS

    dataset = _load(toy)
    flips = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            item = dataset[i]
            box = item["boxes"][0]
            colour = torch.tensor(_COLOURS[dataset.samples[i].objects[0].label]) / 255.0
            inside = _colour_inside(item["image"], box)
            # jitter scales brightness/saturation: compare the colour's direction, not its value
            assert float(torch.nn.functional.cosine_similarity(inside, colour, dim=0)) > 0.97
            original = dataset.samples[i].objects[0].box
            flips += abs((box[0] + box[2]) / 2 - (original[0] + original[2]) / 2) > 0.2
    assert flips > 0  # some draws were mirrored


def test_multi_source_samples_have_no_single_label(toy: Path) -> None:
    dataset = _load(toy, "train/unconstrained")
    for i, sample in enumerate(dataset.samples):
        expected = (
            -1
            if len(sample.sounding_labels) != 1
            else read_classes(toy).index(sample.sounding_labels[0])
        )
        assert int(dataset.annotations["label"][i]) == expected
        heard = set(sample.sounding_labels) | set(sample.offscreen)
        assert dataset.annotations["audible"][i].sum() == len(heard)


def test_cache_is_built_once_and_rebuilt_when_the_manifest_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = build_toy_benchmark(tmp_path / "t", n_train=6, n_test=2)
    calls = []
    real = decode.decode_sample
    monkeypatch.setattr(
        decode, "decode_sample", lambda s, spec: calls.append(s.id) or real(s, spec)
    )
    first = _load(root)
    assert len(calls) == 6
    second = _load(root)
    assert len(calls) == 6  # reused
    assert np.array_equal(np.asarray(first.frames), np.asarray(second.frames))
    assert first.frames.shape[2] == train_cache_size(64)  # room for the random crop
    manifest = root / "train/solo/manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:4]) + "\n")
    third = _load(root)
    assert len(third) == 4 and len(calls) == 10  # stale cache ignored, new one built


def test_augmentation_is_seeded_per_epoch(toy: Path) -> None:
    dataset = _load(toy, seed=3)
    dataset.set_epoch(0)
    a, b = dataset[5]["image"], dataset[5]["image"]
    assert torch.equal(a, b)  # same (seed, epoch, index) -> same draw
    dataset.set_epoch(1)
    assert not torch.equal(a, dataset[5]["image"])
    before = torch.get_rng_state()
    dataset[6]
    assert torch.equal(before, torch.get_rng_state())  # the global RNG is never touched
    plain = dataset.item(5, augment=False)["image"]
    assert torch.equal(plain, dataset.item(5, augment=False)["image"])


def test_eval_split_is_the_annotated_frame_resized(toy: Path) -> None:
    dataset = _load(toy, "test/solo", train=False)
    assert dataset.frames.shape[1:] == (1, 64, 64, 3)
    batch = next(eval_batches(dataset, 4))
    assert batch["image"].shape == (4, 3, 64, 64)
    expected = torch.from_numpy(np.array(dataset.frames[0, 0])).permute(2, 0, 1).float() / 255
    assert torch.allclose(batch["image"][0], expected)


def test_ddp_shards_are_disjoint_and_cover_the_split(toy: Path) -> None:
    dataset = _load(toy)
    shards = []
    for rank in range(2):
        batches = list(
            train_batches(dataset, batch_size=4, epoch=1, seed=0, rank=rank, world_size=2)
        )
        assert len(batches) == num_train_batches(dataset, 4, world_size=2)
        shards.append(torch.cat([b["index"] for b in batches]).tolist())
    assert not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(range(len(dataset)))
    again = [b["index"].tolist() for b in train_batches(dataset, batch_size=4, epoch=1, seed=0)]
    other = [b["index"].tolist() for b in train_batches(dataset, batch_size=4, epoch=2, seed=0)]
    assert again != other  # a new order each epoch


def test_max_samples_takes_a_seeded_subset(toy: Path, tmp_path: Path) -> None:
    a = _load(toy, max_samples=7, seed=1, cache_dir=tmp_path)
    b = _load(toy, max_samples=7, seed=1, cache_dir=tmp_path)
    assert len(a) == 7 and [s.id for s in a.samples] == [s.id for s in b.samples]


def test_real_benchmark_clips_decode(small_benchmark: Path) -> None:
    info = json.loads((small_benchmark / "benchmark.json").read_text())
    assert read_classes(small_benchmark) == tuple(info["classes"])
    sample = read_manifest(small_benchmark / "test/solo/manifest.jsonl")[0]
    spec = decode.DecodeSpec(image_size=64, num_frames=3, sample_rate=16_000, num_samples=16_000)
    frames, wave = decode.decode_sample(sample, spec)
    assert frames.shape == (3, 64, 64, 3) and frames.dtype == np.uint8
    assert wave.shape == (16_000,) and float(np.abs(wave).max()) > 0
