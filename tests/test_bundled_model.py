"""The bundled model: it loads by name, fits the size budget, and runs the README's main job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ier.localization as localize_module
from ier.checkpoint import load_checkpoint
from ier.cli import main
from ier.errors import CheckpointError

BUNDLE = localize_module.WEIGHTS_DIR / "ier-wild-small.safetensors"


def test_bundle_is_shipped_and_within_budget() -> None:
    assert BUNDLE.exists(), "the package must ship its default model"
    assert BUNDLE.stat().st_size <= 20 * 1024 * 1024
    meta = load_checkpoint(BUNDLE).meta
    assert meta["name"] == "ier-wild-small" and meta["weights_dtype"] == "float16"


def test_bundle_loads_by_name_with_the_benchmark_classes() -> None:
    model = localize_module.load_model("ier-wild-small")
    assert len(model.classes) == 16 and "violin" in model.classes and "*" not in model.classes
    assert model.has_prototypes


def test_missing_bundled_weights_give_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(localize_module, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="no weights"):
        localize_module.load_model("ier-wild-small")


def test_demo_runs_with_the_bundled_model(tmp_path: Path) -> None:
    """`ier demo` is the README's main job (scripts/demo.sh); run it on one clip."""
    from ier.commands.demo import run_demo

    index = run_demo(tmp_path / "demo", clips=(("test/wild", 0),))
    clip_dir = tmp_path / "demo" / "test-wild-00000"
    doc = json.loads((clip_dir / "localization.json").read_text())
    assert doc["windows"] and len(doc["windows"][0]["classes"]) == 16
    assert (clip_dir / "overlay.mp4").stat().st_size > 0
    assert "test-wild-00000/report.html" in index.read_text()


def test_demo_cli_refuses_an_existing_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "keep.txt").write_text("user data")
    assert main(["demo", "-o", str(tmp_path / "demo")]) != 0
    assert (tmp_path / "demo" / "keep.txt").read_text() == "user data"
