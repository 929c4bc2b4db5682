"""Checkpoints: safetensors round trip, embedded config/version, tamper and foreign-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ier import __version__
from ier.checkpoint import (
    FORMAT_VERSION,
    export_model,
    load_checkpoint,
    load_model,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    save_model,
)
from ier.errors import CheckpointError
from ier.models import create_model, model_config


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(model_config("tiny", num_clusters=3)).eval()
    model.set_prototypes(torch.randn(3, model.embed_dim), torch.randn(3, model.embed_dim))
    model.set_class_mapping(("a", "b"), [0, 1, 1])
    return model


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.rand(2, 3, 64, 64, generator=gen), torch.randn(2, 16_000, generator=gen) * 0.1


def test_saved_model_reloads_with_identical_outputs(tiny_model, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    loaded = load_model(path)
    images, waves = _inputs()
    with torch.no_grad():
        expected, got = tiny_model.localize(images, waves), loaded.localize(images, waves)
    assert torch.equal(expected.maps, got.maps)
    assert loaded.classes == ("a", "b")
    assert loaded.config == tiny_model.config
    meta = load_checkpoint(path).meta
    assert meta["ier_version"] == __version__ and meta["format_version"] == FORMAT_VERSION
    assert meta["classes"] == ["a", "b"] and meta["cluster_to_class"] == [0, 1, 1]


def test_no_temporary_files_are_left_behind(tiny_model, tmp_path: Path) -> None:
    save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_tampered_tensor_bytes_are_detected(tiny_model, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(path)


def test_tampered_metadata_is_detected(tiny_model, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    blob = path.read_bytes()
    edited = blob.replace(b'\\"width\\": 8', b'\\"width\\": 9')
    assert edited != blob
    path.write_bytes(edited)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(path)


def test_truncated_file_is_detected(tiny_model, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError):
        load_model(path)


def test_pickled_file_is_refused_without_unpickling(tiny_model, tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(tiny_model.state_dict(), path)
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint.*pickled"):
        load_model(path)


def test_foreign_safetensors_and_garbage_are_refused(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an ier checkpoint"):
        load_model(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"hello world, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_model(garbage)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.safetensors")


def test_newer_format_and_missing_config_are_refused(tmp_path: Path) -> None:
    newer = save_checkpoint(tmp_path / "n.safetensors", {}, {"format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="newer than this ier"):
        load_checkpoint(newer)
    bare = save_checkpoint(tmp_path / "b.safetensors", {"x": torch.ones(1)}, {})
    with pytest.raises(CheckpointError, match="has no model config"):
        load_model(bare)


def test_weights_of_another_architecture_are_refused(tiny_model, tmp_path: Path) -> None:
    path = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    ckpt = load_checkpoint(path)
    wider = tiny_model.config.to_dict() | {"width": 16}
    save_checkpoint(tmp_path / "w.safetensors", ckpt.tensors, {"model_config": wider})
    with pytest.raises(CheckpointError, match="weights do not fit the model"):
        load_model(tmp_path / "w.safetensors")


def test_optimizer_state_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam([{"params": net.parameters(), "lr": 0.1, "name": "body"}])
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    tensors, meta = optimizer_to_flat(opt)
    prefixed = {f"optim.{k}": v for k, v in tensors.items()}
    path = save_checkpoint(tmp_path / "o.safetensors", prefixed, {"optimizer": meta})
    ckpt = load_checkpoint(path)
    fresh = torch.optim.Adam([{"params": net.parameters(), "lr": 0.5, "name": "body"}])
    optimizer_from_flat(fresh, ckpt.section("optim"), ckpt.meta["optimizer"])
    assert fresh.param_groups[0]["lr"] == 0.1
    for p in net.parameters():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(fresh.state[p][key], opt.state[p][key])


def test_half_precision_export_is_smaller_and_matches(tiny_model, tmp_path: Path) -> None:
    full = save_model(tmp_path / "m.safetensors", tiny_model, model_config=tiny_model.config)
    half = export_model(full, tmp_path / "bundle.safetensors", extra_meta={"name": "x"})
    assert half.stat().st_size < 0.6 * full.stat().st_size
    meta = load_checkpoint(half).meta
    assert meta["weights_dtype"] == "float16" and meta["name"] == "x" and "optimizer" not in meta
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.classes == ("a", "b")
    images, waves = _inputs()
    with torch.no_grad():
        expected, got = tiny_model.localize(images, waves), loaded.localize(images, waves)
    assert torch.allclose(expected.maps, got.maps, atol=2e-2)


def test_pretrained_models_reload_without_reading_imagenet_weights(tmp_path: Path, monkeypatch):
    config = model_config("tiny", num_clusters=2)
    model = create_model(config)
    path = save_model(tmp_path / "m.safetensors", model, model_config=config)
    # Pretend the checkpoint was trained from ImageNet weights, then make them unavailable.
    ckpt = load_checkpoint(path)
    meta = dict(ckpt.meta, model_config={**ckpt.meta["model_config"], "pretrained": True})
    meta = {k: v for k, v in meta.items() if k not in ("format", "format_version", "ier_version")}
    save_checkpoint(tmp_path / "p.safetensors", ckpt.tensors, meta)
    import ier.models.backbones as backbones

    def refuse(*args, **kwargs):
        raise AssertionError("ImageNet weights must not be read when loading a checkpoint")

    monkeypatch.setattr(backbones, "EfficientNetLite0", refuse)
    loaded = load_model(tmp_path / "p.safetensors")
    assert loaded.config.pretrained is True
