"""One explicit training loop over stages, with a task per stage; checkpoint/resume; DDP.

``fit`` builds the model once and runs ``cfg.stages`` in order. Each epoch ends with an atomic
training checkpoint (model, optimizer, task state, position), so ``resume=True`` continues a
killed run and reaches the same final weights as an uninterrupted run (CPU, fixed seed). The
loop inside a stage (``RunContext``, ``StageRun``, ``run_stage``) is ``ier.stage_loop``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ier.allocator import keep_freed_memory
from ier.checkpoint import init_weights, load_checkpoint, save_model
from ier.config import ExperimentConfig, load_config_file, save_config
from ier.data.datasets import read_classes
from ier.data.layout import split_manifest
from ier.devices import resolve_device
from ier.distributed import WorldInfo, barrier, init_distributed
from ier.errors import ConfigError
from ier.inference import evaluate_checkpoint, store_calibration
from ier.models import create_model
from ier.stage_loop import (  # noqa: F401  (re-exported)
    CHECKPOINT_NAME,
    RunContext,
    RunLog,
    RunPosition,
    StageRun,
    derive_seed,
    run_stage,
    stage_snapshot,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "model.safetensors"


@dataclass(frozen=True)
class FitResult:
    """What a finished run produced.

    Attributes:
        run_dir: The run directory.
        model_path: The final model (``RUN_DIR/model.safetensors``).
        history: One record per epoch (mean of every logged scalar) and per stage end.
        metrics: End-of-run evaluation (``{split: metrics}``), or None.
    """

    run_dir: Path
    model_path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] | None = None


def _prepare_run_dir(run_dir: Path, *, resume: bool, world: WorldInfo) -> None:
    if resume:
        if not run_dir.is_dir():
            raise ConfigError(f"cannot resume: run directory {run_dir} does not exist")
        return
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise ConfigError(
            f"run directory {run_dir} already exists; pass --resume to continue it, "
            "or choose a new --out"
        )
    barrier()  # every rank checks before rank 0 creates it
    if world.is_main:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)


def _resolve_config(
    cfg: ExperimentConfig | None, run_dir: Path, data_dir: Path, resume: bool
) -> ExperimentConfig:
    saved = run_dir / "config.json"
    if resume and saved.is_file():
        stored = load_config_file(saved)
        if cfg is not None and _with_clusters(cfg, stored.num_clusters) != stored:
            logger.warning("resuming with the run's saved config.json (the given config differs)")
        return stored
    if cfg is None:
        raise ConfigError(f"no config given and no {saved} to resume from")
    classes = read_classes(data_dir)
    return _with_clusters(cfg, cfg.num_clusters or len(classes))


def _with_clusters(cfg: ExperimentConfig, k: int) -> ExperimentConfig:
    model = dataclasses.replace(cfg.model, num_clusters=k)
    return dataclasses.replace(cfg, num_clusters=k, model=model)


def fit(
    cfg: ExperimentConfig | None,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> FitResult:
    """Train every stage of ``cfg`` on ``data_dir``; write the run to ``out_dir``.

    Args:
        cfg: The experiment; None with ``resume`` uses the run's ``config.json``.
        data_dir: Benchmark or prepared dataset folder (``<split>/manifest.jsonl``).
        out_dir: Run directory: ``config.json``, ``log.jsonl``, ``checkpoints/last.safetensors``,
            ``stages/<i>-<name>.safetensors``, ``model.safetensors``, ``eval/``.
        resume: Continue the run in ``out_dir`` from its last checkpoint. Without it an existing
            non-empty ``out_dir`` is an error (runs are never overwritten).
        device: Default: this process's GPU under torchrun if CUDA is available, else CPU.
        progress: Show a progress bar (rank 0).

    Returns:
        The run's ``FitResult``.
    """
    keep_freed_memory()
    world = init_distributed()
    run_dir, data_dir = Path(out_dir), Path(data_dir)
    cfg = _resolve_config(cfg, run_dir, data_dir, resume)
    if device is None:
        use_cuda = torch.cuda.is_available()
        device = torch.device("cuda", world.local_rank) if use_cuda else torch.device("cpu")
    device = resolve_device(device)  # a device this torch cannot use fails here
    classes = read_classes(data_dir)
    for stage in cfg.stages[cfg.start_stage : cfg.last_stage + 1]:
        split_manifest(data_dir, stage.split)  # a bad --data fails here
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model)  # a missing dependency (aisfx) fails here, before any file
    _prepare_run_dir(run_dir, resume=resume, world=world)  # creates nothing before this line
    ckpt_path = run_dir / CHECKPOINT_NAME
    ckpt = load_checkpoint(ckpt_path) if resume and ckpt_path.is_file() else None
    if world.is_main and ckpt is None:
        save_config(cfg, run_dir / "config.json")
    pos = RunPosition(stage=cfg.start_stage)
    if ckpt is not None:
        model.load_state_dict(ckpt.section("model"))
        pos = RunPosition(**ckpt.meta["training"])
        logger.info("resuming from %s at %s", ckpt_path, pos)
    elif cfg.init_from:
        report = init_weights(model, cfg.init_from)
        logger.info("initialised from %s (%s)", cfg.init_from, report)
    model.to(device)
    log = RunLog(run_dir / "log.jsonl", enabled=world.is_main)
    log.write({
        "event": "start", "resume": ckpt is not None, "world_size": world.world_size,
        "init_from": cfg.init_from, "start_stage": cfg.start_stage, "stop_stage": cfg.stop_stage,
    })  # fmt: skip
    ctx = RunContext(cfg, model, run_dir, data_dir, classes, world, device, log, progress)
    for index in range(len(cfg.stages)):
        if index < pos.stage or (index == pos.stage and pos.stage_done):
            continue
        if index > cfg.last_stage:
            break
        resume_state = ckpt if (ckpt is not None and index == pos.stage) else None
        if index != pos.stage:
            pos = RunPosition(stage=index, global_step=pos.global_step)
        run_stage(ctx, index, pos, resume_state)
    return _finish(ctx)


def _finish(ctx: RunContext) -> FitResult:
    cfg, model, run_dir, data_dir = ctx.cfg, ctx.model, ctx.run_dir, ctx.data_dir
    world, log, history = ctx.world, ctx.log, ctx.history
    model_path = run_dir / MODEL_NAME
    metrics = None
    if world.is_main:
        save_model(model_path, model.cpu(), model_config=cfg.model,
                   extra_meta={"experiment": cfg.to_dict()})  # fmt: skip
        if cfg.eval.at_end:
            single = single_source_checkpoint(cfg, run_dir)
            metrics = evaluate_checkpoint(
                model_path, data_dir, splits=cfg.eval.splits or None, out_dir=run_dir / "eval",
                single_source_checkpoint=single, batch_size=cfg.data.eval_batch_size,
                cache_dir=cfg.data.cache_dir or None,
            )  # fmt: skip
            store_calibration(model_path, metrics)
            log.write({"event": "eval", "metrics": _strip_settings(metrics)})
        log.write({"event": "done", "model": str(model_path)})
    barrier()
    return FitResult(run_dir=run_dir, model_path=model_path, history=history, metrics=metrics)


def single_source_checkpoint(cfg: ExperimentConfig, run_dir: Path) -> Path | None:
    """The stage snapshot that gives the single-source maps (``cfg.eval.single_source_stage``).

    A stage skipped by ``start_stage`` has no snapshot in this run: the ``init_from`` checkpoint
    (the model the run started from) stands in for it. A stage after ``stop_stage`` never ran:
    the final model serves for both kinds of maps.
    """
    i = cfg.eval.single_source_stage
    if i < 0 or i > cfg.last_stage:
        return None
    if i < cfg.start_stage:
        return Path(cfg.init_from) if cfg.init_from else None
    return stage_snapshot(run_dir, cfg, i)


def _strip_settings(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        split: {k: v for k, v in values.items() if k != "settings"}
        if isinstance(values, dict)
        else values
        for split, values in metrics.items()
    }
