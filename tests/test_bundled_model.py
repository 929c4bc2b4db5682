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


def test_the_bundled_model_states_its_measured_quality(capsys, monkeypatch, tmp_path) -> None:
    """README, `ier demo` and its index page say how good the bundled model is, from the
    checkpoint (or the line recorded for these exact weights), with a link to the card."""
    from ier.bundled import KNOWN_QUALITY, UNKNOWN_QUALITY

    model = localize_module.load_model("ier-wild-small")
    quality, card = localize_module.model_card(model)
    assert quality != UNKNOWN_QUALITY and card == "docs/models.md"
    assert load_checkpoint(BUNDLE).digest in KNOWN_QUALITY or "quality" in load_checkpoint(
        BUNDLE
    ).meta
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert quality in " ".join(readme.split()) and "docs/models.md" in readme
    import ier.commands.demo as demo

    def fake_run_demo(out_dir, *, model, overwrite):
        out = Path(out_dir)
        out.mkdir()
        (out / "demo.json").write_text(json.dumps(
            {"model": {"name": model, "quality": quality, "card": "file:///card"}}))
        return out / "index.html"

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    assert main(["demo", "-o", str(tmp_path / "d")]) == 0
    printed = capsys.readouterr().out
    assert f"model ier-wild-small: {quality} (card: file:///card)" in printed


def test_a_quality_line_is_read_from_the_checkpoint(tmp_path: Path) -> None:
    from ier.checkpoint import export_model

    out = export_model(BUNDLE, tmp_path / "m.safetensors", quality="good: 90 % IoU",
                       card="https://example.org/card")  # fmt: skip
    model = localize_module.load_model(str(out))
    assert localize_module.model_card(model) == ("good: 90 % IoU", "https://example.org/card")
    plain = export_model(BUNDLE, tmp_path / "plain.safetensors")  # other weights: no claim
    quality, _ = localize_module.model_card(localize_module.load_model(str(plain)))
    assert quality == "no measured quality is recorded for this model"
    with pytest.raises(ValueError, match="one non-empty line"):
        export_model(BUNDLE, tmp_path / "x.safetensors", quality="two\nlines")
