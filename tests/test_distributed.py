"""Distributed training: the torchrun environment, and a 2-process DDP run on the gloo backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ier.checkpoint import load_checkpoint
from ier.data.toy import build_toy_benchmark
from ier.distributed import WorldInfo, is_main_process, world_info_from_env, wrap_ddp


def test_world_info_from_torchrun_and_slurm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (
        "RANK",
        "LOCAL_RANK",
        "WORLD_SIZE",
        "SLURM_PROCID",
        "SLURM_LOCALID",
        "SLURM_NTASKS",
    ):
        monkeypatch.delenv(key, raising=False)
    assert world_info_from_env() == WorldInfo(0, 0, 1)
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    assert world_info_from_env() == WorldInfo(5, 1, 8)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    info = world_info_from_env()  # torchrun's variables win
    assert info == WorldInfo(3, 1, 4) and info.distributed and not info.is_main


def test_single_process_helpers_are_no_ops() -> None:
    module = torch.nn.Linear(2, 2)
    assert wrap_ddp(module) is module
    assert is_main_process()


def test_two_process_ddp_run_on_gloo(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node=2 -m ier train ...`` on CPU: both ranks train their shard."""
    data = build_toy_benchmark(tmp_path / "toy", n_train=32, n_test=4)
    run = tmp_path / "run"
    overrides = [
        "stages.av.epochs=2", "stages.aii.epochs=1", "stages.cmr.epochs=1",
        "stages.av.batch_size=8", "stages.aii.batch_size=8", "stages.cmr.batch_size=8",
        "data.train_frames=1", "eval.splits=test/solo",
    ]  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "ier", "train", "--preset", "tiny", "--data", str(data), "--out", str(run),
        "--no-progress", *[arg for o in overrides for arg in ("--set", o)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(line) for line in (run / "log.jsonl").open()]
    assert records[0]["world_size"] == 2
    assert sum(r["event"] == "epoch" for r in records) == 4  # rank 0 logs each epoch once
    # 32 clips over 2 ranks at batch 8: 2 steps per epoch and rank, 4 epochs in all.
    ckpt = load_checkpoint(run / "checkpoints/last.safetensors")
    assert ckpt.meta["training"]["global_step"] == 8
    assert (run / "model.safetensors").is_file()
    assert "test/solo" in json.loads((run / "eval/metrics.json").read_text())
