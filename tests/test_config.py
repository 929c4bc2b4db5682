"""Experiment configs: presets, dict/JSON round trip, ``--set`` overrides, TOML files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ier.methods
from ier.codec import apply_overrides
from ier.config import PRESETS, ExperimentConfig, StageConfig, save_config
from ier.errors import ConfigError
from ier.methods import Method, list_methods, load_config, preset, register_method

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("name", PRESETS)
def test_preset_round_trips_through_json(name: str) -> None:
    cfg = preset("ier", name)
    again = ExperimentConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert [s.task for s in cfg.stages] == ["ier_av", "ier_aii", "ier_cmr"]


def test_presets_scale_up() -> None:
    tiny, short, quick, cpu, paper = (preset("ier", n) for n in PRESETS)
    assert (tiny.model.input_size, quick.model.input_size, paper.model.input_size) == (64, 128, 224)
    assert tiny.model.width < quick.model.width < paper.model.width
    # ``short`` is the quick model for fewer epochs of every stage (the bench's quick budget)
    assert short.model == quick.model and short.stages[2].freeze == quick.stages[2].freeze
    assert all(s.epochs < q.epochs for s, q in zip(short.stages, quick.stages, strict=True))
    assert paper.stages[0].epochs == 15  # DSOL's stage-1 schedule
    assert paper.stages[2].negative_pooling == "quadrants"
    # ``cpu``: the paper's resolution and epochs, with the visual trunk frozen and cached
    assert cpu.model.input_size == 224 and cpu.model.frozen_trunk and cpu.model.pretrained
    assert [s.epochs for s in cpu.stages] == [s.epochs for s in paper.stages] == [15, 10, 5]
    # ... and the frozen pretrained audio encoder, for every method with an audio tower
    assert cpu.model.audio_backbone == "aisfx" and paper.model.audio_backbone == "resnet18"
    assert preset("dsol", "cpu").model.audio_backbone == "aisfx"
    assert preset("sop", "cpu").model.audio_backbone == "resnet18"  # its U-Net reads the mel


def test_overrides_are_coerced_to_declared_types() -> None:
    cfg = apply_overrides(
        preset("ier", "tiny"),
        [
            "model.width=16",
            "stages.0.epochs=5",
            "stages.cmr.lr=3e-4",
            "stages.aii.curriculum=false",
            "model.ier.tau_a=0.2",
            "eval.splits=test/solo,test/duet",
            "seed=7",
            "data.cache_dir=/tmp/x",
        ],
    )
    assert cfg.model.width == 16 and isinstance(cfg.model.width, int)
    assert cfg.stages[0].epochs == 5
    assert cfg.stages[2].lr == pytest.approx(3e-4)
    assert cfg.stages[1].curriculum is False
    assert cfg.model.ier.tau_a == pytest.approx(0.2)
    assert cfg.eval.splits == ("test/solo", "test/duet")
    assert cfg.seed == 7 and cfg.data.cache_dir == "/tmp/x"


def test_overrides_leave_the_original_untouched() -> None:
    cfg = preset("ier", "tiny")
    apply_overrides(cfg, ["stages.0.epochs=9"])
    assert cfg.stages[0].epochs == preset("ier", "tiny").stages[0].epochs


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.widht=3", "unknown config key 'model.widht'"),
        ("nope=1", "unknown config key 'nope'"),
        ("stages.7.lr=1", "only 3 item"),
        ("stages.0.epochs=abc", "expected an integer"),
        ("stages.0.curriculum=maybe", "expected true or false"),
        ("stages.0.negative_pooling=mean", "expected one of"),
        ("stages.0.epochs=0", "epochs and batch_size must be >= 1"),
        ("model.width=0", "must be >= 1"),
        ("seed", "expected key=value"),
    ],
)
def test_bad_overrides_raise_config_error(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        apply_overrides(preset("ier", "tiny"), [override])


def test_from_dict_rejects_unknown_and_mistyped_keys() -> None:
    data = preset("ier", "tiny").to_dict()
    with pytest.raises(ConfigError, match="unknown config key"):
        ExperimentConfig.from_dict({**data, "epochz": 3})
    data["stages"][0]["lr"] = "fast"
    with pytest.raises(ConfigError, match=r"stages\[0\].lr: expected a number"):
        ExperimentConfig.from_dict(data)


def test_unknown_preset_and_method() -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("ier", "huge")
    with pytest.raises(ConfigError, match="unknown method 'not-a-method'; known: ots"):
        preset("not-a-method", "tiny")


def test_recipe_registry_accepts_new_methods() -> None:
    def _recipe(name: str) -> ExperimentConfig:
        base = preset("ier", name)
        stage = StageConfig(name="s1", task="ier_av", cluster=False)
        return ExperimentConfig(method="test-only-method", model=base.model, stages=(stage,))

    register_method(Method("test-only-method", _recipe, label="Test", order=999))
    try:
        assert list_methods()[-1] == "test-only-method"  # ordered after every built-in method
        assert preset("test-only-method", "tiny").stages[0].cluster is False
    finally:
        ier.methods._METHODS.pop("test-only-method")


def test_the_old_recipe_api_still_works_with_a_deprecation_warning() -> None:
    import ier.config

    with pytest.warns(DeprecationWarning, match="moved to ier.methods"):
        old_preset = ier.config.preset
    assert old_preset("ier", "tiny") == preset("ier", "tiny")


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_config_files_load(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.method == "ier" and cfg.stages


def test_toml_base_tables_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "exp.toml"
    path.write_text(
        'base = "ier/tiny"\nseed = 3\noverrides = ["stages.aii.curriculum=false"]\n'
        "[model]\nwidth = 12\n[data]\ntrain_frames = 3\n",
        encoding="utf-8",
    )
    cfg = load_config(path)
    assert (cfg.seed, cfg.model.width, cfg.data.train_frames) == (3, 12, 3)
    assert cfg.model.input_size == 64  # untouched fields keep the preset's values
    assert cfg.stages[1].curriculum is False
    saved = save_config(cfg, tmp_path / "config.json")
    assert load_config(saved) == cfg


def test_bad_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("base = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid"):
        load_config(path)
    path.write_text('base = "ier/tiny"\n[model]\ndepth = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="model.depth"):
        load_config(path)
