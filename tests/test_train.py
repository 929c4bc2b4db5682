"""Training: the stage loop end to end, resume after a crash, run-dir safety, AII curriculum."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ier.checkpoint import load_checkpoint, load_model
from ier.cli import main
from ier.codec import apply_overrides
from ier.config import load_config_file
from ier.data.manifest import read_manifest
from ier.data.toy import build_toy_benchmark
from ier.errors import CheckpointError, ConfigError
from ier.evaluate import evaluate
from ier.methods import preset
from ier.methods.ier.tasks import MixSchedule, curriculum, mix_waves
from ier.models.output import DECISION_CUES
from ier.predictions import Predictions, load_predictions
from ier.protocol import EvalSettings
from ier.tasks import create_task, list_tasks
from ier.train import fit

# A few steps per stage on the toy data: 48 clips, batch 16 -> 3 steps per epoch.
SHORT = [
    "stages.av.epochs=2", "stages.aii.epochs=2", "stages.cmr.epochs=1", "eval.at_end=false",
    "data.train_frames=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_benchmark(tmp_path_factory.mktemp("toy"), n_train=48, n_test=8)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "model.safetensors").section("model")


def test_ier_tasks_are_registered() -> None:
    assert {"ier_av", "ier_aii", "ier_cmr"} <= set(list_tasks())
    stage = dataclasses.replace(preset("ier", "tiny").stages[0], task="nope")
    with pytest.raises(Exception, match="unknown task 'nope'"):
        create_task(torch.nn.Linear(1, 1), stage, seed=0)


def test_tiny_ier_trains_end_to_end_on_the_small_benchmark(
    small_benchmark: Path, tmp_path: Path
) -> None:
    """All three IEr stages at the ``tiny`` preset on real scenes, then every test split."""
    result = fit(preset("ier", "tiny"), small_benchmark, tmp_path / "run", progress=False)
    by_stage: dict[str, list[dict]] = {}
    for record in result.history:
        by_stage.setdefault(record["stage"], []).append(record)
    assert list(by_stage) == ["av", "aii", "cmr"]
    assert by_stage["av"][-1]["loss_av"] < by_stage["av"][0]["loss_av"]
    assert by_stage["cmr"][-1]["loss"] < by_stage["cmr"][0]["loss"]
    assert "ce_v" in by_stage["av"][-1] and "ce_v" not in by_stage["av"][0]  # clusters from ep. 2
    classes = tuple(json.loads((small_benchmark / "benchmark.json").read_text())["classes"])
    model = load_model(result.model_path)
    assert model.classes == classes and model.has_prototypes
    assert by_stage["av"][-1]["end"]["clusters_used"] >= len(classes) // 2
    splits = ["test/duet", "test/negative", "test/solo", "test/synthetic", "test/wild"]
    assert sorted(result.metrics) == ["calibration", *splits, "test/wild+negative"]
    calibration = result.metrics["calibration"]  # chosen on val/wild + val/negative only
    assert calibration["splits"] == ["val/wild", "val/negative"] and 0 <= calibration["tau"] <= 1
    assert calibration["n_negative"] == len(read_manifest(small_benchmark / "val/negative"
                                                          / "manifest.jsonl"))  # fmt: skip
    assert "silent_fp@cal" in result.metrics["test/wild"]
    presence = calibration["presence"]  # IEr's calibrated presence, fitted on the same splits
    assert presence["splits"] == ["val/wild", "val/negative"]
    assert presence["cues"] == list(DECISION_CUES)  # every cue IEr gives, one weight each
    assert len(presence["weights"]) == len(DECISION_CUES)
    assert presence["val_negative_fp"] <= presence["budget"] and 0 <= presence["tau"] <= 1
    assert 0 <= result.metrics["test/wild"]["presence_hit@cal"] <= 1
    assert 0 <= result.metrics["test/negative"]["presence_marked@cal"] <= 1
    assert 0 <= result.metrics["test/wild+negative"]["presence_auroc"] <= 1
    assert load_checkpoint(result.model_path).meta["calibration"]["presence"] == presence
    assert "silent_fp@cal" not in result.metrics["test/solo"]  # the class-agnostic stage-1 map
    assert 0.0 <= result.metrics["test/wild+negative"]["peak_auroc"] <= 1.0
    for split in splits:
        n = len(read_manifest(small_benchmark / split / "manifest.jsonl"))
        assert result.metrics[split]["n"] == n and result.metrics[split]["n_missing"] == 0
        assert (tmp_path / "run/eval" / f"predictions_{split.split('/')[1]}.npz").is_file()
    assert 0.0 <= result.metrics["test/solo"]["aii_nmi"] <= 1.0
    assert result.metrics["test/synthetic"]["aii_recall"] is not None
    assert (tmp_path / "run/stages/1-aii.safetensors").is_file()  # the single-source model


def test_tiny_training_localizes_better_than_a_uniform_map(tmp_path: Path) -> None:
    """Stage 1 on toy scenes (a coloured square hums its tone) learns where the sound is.

    A uniform map is alpha-invariant (it binarises to the whole frame), so the comparison holds
    at any relative threshold; alpha = 0.5 keeps a coarse (6x6) sigmoid map from binarising to
    all-on. 96 px instead of the preset's 64 px: a 4x4 map is too coarse for a reliable margin.
    """
    data = build_toy_benchmark(tmp_path / "data", n_train=64, n_test=16)
    cfg = preset("ier", "tiny")
    cfg = dataclasses.replace(cfg, stages=cfg.stages[:1])
    cfg = apply_overrides(cfg, [
        "stages.av.epochs=20", "stages.av.batch_size=8", "stages.av.cluster=false",
        "model.input_size=96", "data.train_frames=1", "eval.splits=test/solo",
        "eval.single_source_stage=0",
    ])  # fmt: skip
    result = fit(cfg, data, tmp_path / "run", progress=False)
    losses = [r["loss_av"] for r in result.history]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.1
    preds = load_predictions(tmp_path / "run/eval/predictions_solo.npz")
    uniform = Predictions(ids=preds.ids, classes=preds.classes, maps=np.ones_like(preds.maps))
    samples = read_manifest(data / "test/solo/manifest.jsonl")
    settings = EvalSettings(alpha=0.5)
    learned, flat = evaluate(preds, samples, settings), evaluate(uniform, samples, settings)
    assert learned["auc"] > flat["auc"] + 0.03


class SimulatedCrash(RuntimeError):
    """A kill between two optimizer steps."""


def test_resume_after_a_crash_gives_the_same_final_weights(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = apply_overrides(preset("ier", "tiny"), SHORT)
    straight = fit(cfg, toy, tmp_path / "straight", progress=False)
    steps, real_step = [], torch.optim.Adam.step

    def step_then_die(self, *args, **kwargs):  # noqa: ANN001, ANN202
        if len(steps) == 3:  # the 4th step: the 2nd epoch of stage 1, after a checkpoint
            raise SimulatedCrash("killed")
        steps.append(1)
        return real_step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.Adam, "step", step_then_die)
        with pytest.raises(SimulatedCrash):
            fit(cfg, toy, tmp_path / "crashed", progress=False)
    ckpt = load_checkpoint(tmp_path / "crashed/checkpoints/last.safetensors")
    assert ckpt.meta["training"] == {
        "stage": 0, "next_epoch": 1, "stage_done": False, "global_step": 3
    }  # fmt: skip
    assert not (tmp_path / "crashed/model.safetensors").exists()
    code = main(["train", "--data", str(toy), "--out", str(tmp_path / "crashed"), "--resume",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "crashed")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.history[-1]["stage"] == "cmr"
    events = [json.loads(line)["event"] for line in (tmp_path / "crashed/log.jsonl").open()]
    assert events.count("start") == 2 and events[-1] == "done"


def test_an_existing_run_directory_is_never_overwritten(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    code = main(["train", "--preset", "tiny", "--data", str(toy), "--out", str(run)])
    assert code == 2
    assert "already exists; pass --resume" in capsys.readouterr().err
    assert (run / "notes.txt").read_text() == "mine" and len(list(run.iterdir())) == 1
    assert main(["train", "--data", str(toy), "--out", str(tmp_path / "none"), "--resume"]) == 2


def test_bad_data_or_device_fails_before_anything_is_created(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--preset", "tiny", "--out", str(run), "--no-progress"]
    assert main([*argv, "--data", str(tmp_path / "no-such-benchmark")]) == 2
    assert "no benchmark.json and no labelled manifests" in capsys.readouterr().err
    assert not run.exists()
    assert main([*argv, "--data", str(toy / "test")]) == 2  # labelled, but no training split
    assert "not found" in capsys.readouterr().err and not run.exists()
    if not torch.cuda.is_available():
        assert main([*argv, "--data", str(toy), "--device", "cuda"]) == 2
        err = capsys.readouterr().err
        assert "--device cuda" in err and "Traceback" not in err and not run.exists()
    assert main([*argv, "--data", str(toy), "--device", "tpu"]) == 2
    assert "--device tpu" in capsys.readouterr().err and not run.exists()


def test_cli_rejects_unknown_override(toy: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", "--preset", "tiny", "--data", str(toy), "--out", str(tmp_path / "r"),
                 "--set", "stages.av.epoch=2"])  # fmt: skip
    assert code == 2
    assert "unknown config key 'stages.0.epoch'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_kill_9_then_resume_completes(toy: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ier", "train", "--preset", "tiny", "--data", str(toy),
           "--out", str(run), "--no-progress", *sum((["--set", s] for s in SHORT), [])]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (run / "checkpoints/last.safetensors").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(run / "checkpoints/last.safetensors")  # intact despite the kill
    resumed = subprocess.run([*cmd[: -2 * len(SHORT)], "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "model.safetensors").is_file()


# --- AII curriculum and mixing -------------------------------------------------------------------


def test_curriculum_follows_the_method_table() -> None:
    assert curriculum(0.1) == MixSchedule(0.0, (1,), 0.0)
    assert curriculum(0.35).mix_prob == pytest.approx(0.25)
    assert curriculum(0.35).sources == (2,) and curriculum(0.35).gain_db == 6.0
    assert curriculum(0.65).mix_prob == pytest.approx(0.65)
    assert curriculum(0.65).sources == (2, 3)
    assert curriculum(0.95) == MixSchedule(0.8, (2, 3), 10.0)
    assert curriculum(0.0, enabled=False) == curriculum(1.0)  # "AII w/o curriculum"
    narrow = [curriculum(p, gain_db=4.0).gain_db for p in (0.1, 0.35, 0.65, 0.95)]
    assert narrow == [0.0, 4.0, 4.0, 4.0]  # stages.aii.mix_gain_db caps every phase
    assert curriculum(0.35, gain_db=20.0).gain_db == 6.0
    assert curriculum(0.95, gain_db=20.0).gain_db == 20.0


def test_mix_gain_db_is_validated_and_reaches_the_stage() -> None:
    from ier.codec import apply_overrides
    from ier.errors import ConfigError
    from ier.methods import preset

    cfg = apply_overrides(preset("ier", "tiny"), ["stages.aii.mix_gain_db=6"])
    assert [s.mix_gain_db for s in cfg.stages] == [10.0, 6.0, 10.0]
    with pytest.raises(ConfigError, match="mix_gain_db"):
        apply_overrides(preset("ier", "tiny"), ["stages.aii.mix_gain_db=-3"])


def test_mix_waves_applies_gains_in_db_and_avoids_clipping() -> None:
    a, b = torch.full((4,), 0.1), torch.full((4,), 0.2)
    mixed = mix_waves([a, b], np.array([0.0, -20.0 * np.log10(2.0)]))  # b at half amplitude
    assert torch.allclose(mixed, torch.full((4,), 0.2))
    loud = mix_waves([torch.tensor([0.9, -0.5]), torch.tensor([0.9, 0.0])], np.zeros(2))
    assert float(loud.abs().max()) == pytest.approx(1.0)  # peak-normalised
    assert loud[1] / loud[0] == pytest.approx(-0.5 / 1.8)


# --- freezing modules, and re-running later stages from a snapshot -------------------------------

AUDIO_SIDE = '["audio_backbone","av_head.audio_proj","identify"]'


def test_a_frozen_module_keeps_weights_and_batch_norm_statistics(toy: Path, tmp_path: Path) -> None:
    cfg = apply_overrides(preset("ier", "tiny"), [*SHORT, f"stages.cmr.freeze={AUDIO_SIDE}"])
    fit(cfg, toy, tmp_path / "run", progress=False)
    before = load_checkpoint(tmp_path / "run/stages/1-aii.safetensors").section("model")
    after = _weights(tmp_path / "run")
    audio = [k for k in before if k.startswith(("audio_backbone.", "av_head.audio_proj.",
                                                "identify."))]  # fmt: skip
    assert any("running_mean" in k for k in audio)  # batch-norm statistics are covered too
    assert all(torch.equal(before[k], after[k]) for k in audio)
    visual = [k for k in before if k.startswith("visual_backbone.") and "weight" in k]
    assert any(not torch.equal(before[k], after[k]) for k in visual)  # the rest still trains
    model = load_model(tmp_path / "run/model.safetensors")
    assert all(p.requires_grad for p in model.parameters())


def test_the_ier_recipe_freezes_the_audio_side_in_stage_2() -> None:
    from ier.models import create_model
    from ier.tasks import frozen_modules

    cfg = preset("ier", "tiny")
    assert [s.freeze for s in cfg.stages][:2] == [(), ()]
    assert set(cfg.stages[2].freeze) == {"audio_backbone", "av_head.audio_proj", "identify"}
    full = create_model(cfg.model)
    assert len(frozen_modules(full, cfg.stages[2].freeze)) == 3
    # the no-AII ablation has no Identify branch: nothing to freeze there, and no error
    no_aii = create_model(apply_overrides(cfg, ["model.ier.use_aii=false"]).model)
    assert frozen_modules(no_aii, ("identify",)) == []
    with pytest.raises(ConfigError, match="'identify_x' is not a module"):
        frozen_modules(no_aii, ("identify_x",))


def test_freeze_names_must_exist(toy: Path, tmp_path: Path) -> None:
    cfg = apply_overrides(preset("ier", "tiny"), [*SHORT, 'stages.av.freeze=["audio_tower"]'])
    with pytest.raises(ConfigError, match="'audio_tower' is not a module or parameter"):
        fit(cfg, toy, tmp_path / "run", progress=False)


def test_later_stages_rerun_from_a_stage_snapshot(toy: Path, tmp_path: Path) -> None:
    """--init + --start-stage 2 continues from stage 1's snapshot exactly as the full run does."""
    full = apply_overrides(preset("ier", "tiny"), SHORT)
    fit(full, toy, tmp_path / "full", progress=False)
    snapshot = tmp_path / "full/stages/1-aii.safetensors"
    args = ["train", "--preset", "tiny", "--data", str(toy), "--out", str(tmp_path / "again"),
            "--init", str(snapshot), "--start-stage", "2", "--no-progress",
            *sum((["--set", s] for s in SHORT), [])]  # fmt: skip
    assert main(args) == 0
    log = [json.loads(line) for line in (tmp_path / "again/log.jsonl").open()]
    assert [r["stage"] for r in log if r["event"] == "epoch"] == ["cmr"]
    assert not (tmp_path / "again/stages/0-av.safetensors").exists()
    saved = json.loads((tmp_path / "again/config.json").read_text())
    assert saved["init_from"] == str(snapshot) and saved["start_stage"] == 2
    # Stage 2 starts from identical weights; its own randomness is seeded by the stage index, so
    # the re-run reproduces the full run's final model.
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "again")
    assert all(torch.allclose(a[k].float(), b[k].float()) for k in a)


def test_stop_stage_ends_the_run_with_the_stage_1_model(toy: Path, tmp_path: Path) -> None:
    """--stop-stage 1 trains stages av and aii only; its final model is stage 1's snapshot."""
    args = [
        "train",
        "--preset",
        "tiny",
        "--data",
        str(toy),
        "--out",
        str(tmp_path / "s1"),
        "--stop-stage",
        "1",
        "--no-progress",
        *sum((["--set", s] for s in SHORT), []),
    ]
    assert main(args) == 0
    log = [json.loads(line) for line in (tmp_path / "s1/log.jsonl").open()]
    assert {r["stage"] for r in log if r["event"] == "epoch"} == {"av", "aii"}
    assert log[-1]["event"] == "done"
    assert not (tmp_path / "s1/stages/2-cmr.safetensors").exists()
    snapshot = load_checkpoint(tmp_path / "s1/stages/1-aii.safetensors").section("model")
    final = _weights(tmp_path / "s1")
    assert all(torch.equal(snapshot[k], final[k]) for k in snapshot)
    cfg = preset("ier", "tiny")
    with pytest.raises(ConfigError, match="stop_stage"):
        apply_overrides(cfg, ["start_stage=2", "stop_stage=1"])
    with pytest.raises(ConfigError, match="stop_stage"):
        apply_overrides(cfg, ["stop_stage=3"])
    assert apply_overrides(cfg, ["stop_stage=1"]).last_stage == 1 and cfg.last_stage == 2


def test_init_from_an_incompatible_checkpoint_is_a_clear_error(toy: Path, tmp_path: Path) -> None:
    from ier.checkpoint import init_weights
    from ier.models import create_model

    fit(apply_overrides(preset("ier", "tiny"), SHORT), toy, tmp_path / "run", progress=False)
    cfg = load_config_file(tmp_path / "run/config.json")  # K resolved from the data
    wider = create_model(dataclasses.replace(cfg.model, width=cfg.model.width * 2))
    with pytest.raises(CheckpointError, match="another shape"):
        init_weights(wider, tmp_path / "run/model.safetensors")
    # The no-AII ablation can start from a full model: the AII branch is simply ignored.
    no_aii = create_model(apply_overrides(cfg, ["model.ier.use_aii=false"]).model)
    assert "ignored" in init_weights(no_aii, tmp_path / "run/model.safetensors")
    assert create_model(cfg.model).identify is not None
    with pytest.raises(CheckpointError, match="missing"):
        init_weights(create_model(cfg.model), _no_aii_model(no_aii, tmp_path))
    with pytest.raises(ConfigError, match="start_stage"):
        apply_overrides(cfg, ["start_stage=3"])


def _no_aii_model(model: torch.nn.Module, tmp_path: Path) -> Path:
    from ier.checkpoint import save_model

    return save_model(tmp_path / "no_aii.safetensors", model, model_config=model.config)


def test_validation_splits_are_scored_after_every_epoch(small_benchmark: Path, tmp_path) -> None:
    cfg = apply_overrides(preset("ots", "tiny"), [
        "stages.solo.epochs=2", "stages.wild.epochs=1", "stages.solo.max_steps=2",
        "stages.wild.max_steps=2", "eval.at_end=false", 'eval.every_epoch=["val/wild", "val/x"]',
    ])  # fmt: skip
    result = fit(cfg, small_benchmark, tmp_path / "run", progress=False)
    assert len(result.history) == 3
    for record in result.history:  # the missing split is skipped with a warning
        assert list(record["val"]) == ["val/wild"]
        assert 0.0 <= record["val"]["val/wild"]["av_pointing"] <= 1.0
    logged = [json.loads(line) for line in (tmp_path / "run/log.jsonl").open()]
    assert [r["val"]["val/wild"] for r in logged if r["event"] == "epoch"] == [
        r["val"]["val/wild"] for r in result.history
    ]
    with pytest.raises(ConfigError, match="validation splits"):
        apply_overrides(cfg, ["eval.every_epoch=test/wild"])
