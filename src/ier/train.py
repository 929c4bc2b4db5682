"""One explicit training loop over stages, with a task per stage; checkpoint/resume; DDP.

``fit`` builds the model once and runs ``cfg.stages`` in order. Each epoch ends with an atomic
training checkpoint (model, optimizer, task state, position), so ``resume=True`` continues a
killed run and reaches the same final weights as an uninterrupted run (CPU, fixed seed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ier.allocator import keep_freed_memory
from ier.checkpoint import (
    init_weights,
    load_checkpoint,
    model_meta,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    save_model,
)
from ier.config import ExperimentConfig, StageConfig, load_config_file, save_config
from ier.data.audio_memo import memo_encoders
from ier.data.datasets import (
    AVDataset,
    load_eval_split,
    load_split,
    num_train_batches,
    read_classes,
    train_batches,
)
from ier.data.layout import split_manifest
from ier.devices import resolve_device
from ier.distributed import WorldInfo, barrier, init_distributed, wrap_ddp
from ier.errors import ConfigError, DatasetError
from ier.inference import evaluate_checkpoint, store_calibration, validate
from ier.models import create_model
from ier.tasks import (
    StageData,
    Task,
    TaskRunner,
    create_task,
    freeze_parameters,
    frozen_modules,
)

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoints/last.safetensors"
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


@dataclass
class _Position:
    stage: int = 0
    next_epoch: int = 0
    stage_done: bool = False
    global_step: int = 0


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and Python versions)."""
    digest = hashlib.sha256(json.dumps(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class RunLog:
    """JSON Lines log (rank 0 only), appended across resumes."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")


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


def _load_train_split(
    cfg: ExperimentConfig, stage: StageConfig, data_dir: Path, classes: tuple[str, ...],
    world: WorldInfo, model: torch.nn.Module, progress: bool,
) -> AVDataset:  # fmt: skip
    mc = cfg.model
    kwargs = dict(
        classes=classes, input_size=mc.input_size, sample_rate=mc.frontend.sample_rate,
        num_samples=mc.frontend.n_samples, train=True, num_frames=cfg.data.train_frames,
        augment=cfg.data.augment, cache_dir=cfg.data.cache_dir or None,
        max_samples=cfg.data.max_train_samples, seed=cfg.seed, workers=cfg.data.decode_workers,
        audio_encoders=memo_encoders(model),
    )  # fmt: skip
    if mc.frozen_trunk:  # every process extracts its share of the feature cache
        return load_split(data_dir, stage.split, trunk=model.frozen_trunk(),
                          views=cfg.data.feature_views, progress=progress and world.is_main,
                          **kwargs)  # fmt: skip
    if world.is_main:
        dataset = load_split(data_dir, stage.split, **kwargs)
    barrier()
    if not world.is_main:
        dataset = load_split(data_dir, stage.split, build=False, **kwargs)
    return dataset


@dataclass
class RunContext:
    """What every stage of one run shares (``fit`` builds it once).

    Attributes:
        cfg: The resolved experiment.
        model: The model, on ``device``.
        run_dir: The run directory.
        data_dir: The data folder.
        classes: The data's category vocabulary.
        world: This process's place in a torchrun job.
        device: Where the model trains.
        log: The run's JSON Lines log.
        progress: Show progress bars (rank 0).
        history: One record per epoch and stage end, appended as the run goes.
    """

    cfg: ExperimentConfig
    model: torch.nn.Module
    run_dir: Path
    data_dir: Path
    classes: tuple[str, ...]
    world: WorldInfo
    device: torch.device
    log: RunLog
    progress: bool
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, AVDataset | None] = field(default_factory=dict, repr=False)

    def validation_split(self, split: str) -> AVDataset | None:
        """A validation split as this model reads it (decoded or feature-cached once); None,
        with a warning, when the data has no such split."""
        if split not in self.validation:
            try:
                self.validation[split] = load_eval_split(
                    self.data_dir, split, self.model, classes=self.classes,
                    cache_dir=self.cfg.data.cache_dir or None,
                )  # fmt: skip
            except DatasetError as err:
                logger.warning("no per-epoch validation on %s: %s", split, err)
                self.validation[split] = None
        return self.validation[split]

    def stage_data(self, index: int) -> StageData:
        """Stage ``index``'s training split, loaded (decoded or feature-cached) for this model."""
        stage = self.cfg.stages[index]
        dataset = _load_train_split(self.cfg, stage, self.data_dir, self.classes, self.world,
                                    self.model, self.progress)  # fmt: skip
        steps = num_train_batches(dataset, stage.batch_size, self.world.world_size)
        steps = min(steps, stage.max_steps) if stage.max_steps else steps
        return StageData(dataset, self.classes, self.cfg.data.eval_batch_size, steps, self.device)


@dataclass
class StageRun:
    """One stage in progress: its task, optimizer and (DDP-wrapped) runner.

    Built by ``StageRun.start`` (which restores a resumed stage's optimizer and task state);
    ``epoch`` trains one epoch, ``finish_epoch`` logs it and writes the checkpoints.
    """

    ctx: RunContext
    index: int
    data: StageData
    task: Task
    optimizer: torch.optim.Optimizer
    runner: torch.nn.Module

    @property
    def stage(self) -> StageConfig:
        """The stage's config."""
        return self.ctx.cfg.stages[self.index]

    @classmethod
    def start(cls, ctx: RunContext, index: int, data: StageData, resume_state: Any) -> StageRun:
        """The stage's task and optimizer (restored from ``resume_state`` when resuming)."""
        stage = ctx.cfg.stages[index]
        seed = derive_seed(ctx.cfg.seed, index) % (1 << 31) + ctx.world.rank
        task = create_task(ctx.model, stage, seed=seed)
        optimizer = torch.optim.Adam(task.param_groups(), weight_decay=stage.weight_decay)
        if resume_state is not None:
            optimizer_from_flat(
                optimizer, resume_state.section("optim"), resume_state.meta["optimizer"]
            )
            task.load_extra_state(resume_state.section("task"))
        frozen = frozen_modules(ctx.model, stage.freeze)
        runner = wrap_ddp(TaskRunner(ctx.model, task, frozen), data.device)
        return cls(ctx, index, data, task, optimizer, runner)

    def epoch(self, epoch: int, pos: _Position) -> dict[str, Any]:
        """Train one epoch; returns its record (preparation scalars and loss means)."""
        ctx, stage = self.ctx, self.stage
        torch.manual_seed(derive_seed(ctx.cfg.seed, self.index, epoch))
        ctx.model.train()
        prep = self.task.begin_epoch(epoch, stage.epochs, self.data)
        desc = f"{stage.name} {epoch + 1}/{stage.epochs}"
        show = ctx.progress and ctx.world.is_main
        with tqdm(total=self.data.steps_per_epoch, desc=desc, disable=not show) as bar:
            batches = train_batches(
                self.data.dataset, batch_size=stage.batch_size, epoch=epoch, seed=ctx.cfg.seed,
                rank=ctx.world.rank, world_size=ctx.world.world_size,
            )  # fmt: skip
            means = self._steps(batches, pos, bar)
        return {"event": "epoch", "stage": stage.name, "epoch": epoch + 1, **prep, **means}

    def _steps(self, batches: Any, pos: _Position, bar: tqdm) -> dict[str, float]:
        stage, log_every = self.stage, max(self.ctx.cfg.log_every, 1)
        sums: dict[str, float] = {}
        steps, clips, started = 0, 0, time.monotonic()
        for batch in batches:
            batch = {k: v.to(self.ctx.device, non_blocking=True) for k, v in batch.items()}
            out = self.runner(batch)
            loss = out["loss"]
            if not torch.isfinite(loss):
                raise RuntimeError(
                    f"stage {stage.name!r}: loss is {loss.item()} at step {pos.global_step}; "
                    "lower the learning rate (--set stages.N.lr=...)"
                )
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if stage.grad_clip > 0:
                params = [p for g in self.optimizer.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
            self.optimizer.step()
            scalars = {k: float(v.detach()) for k, v in out.items()}
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
            steps, clips = steps + 1, clips + len(batch["index"])
            pos.global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{scalars['loss']:.4f}")
            if pos.global_step % log_every == 0:
                self.ctx.log.write({"event": "step", "stage": stage.name,
                                    "step": pos.global_step, **scalars})  # fmt: skip
            if stage.max_steps and steps >= stage.max_steps:
                break
        means = {k: v / max(steps, 1) for k, v in sums.items()}
        means["clips_per_second"] = clips / max(time.monotonic() - started, 1e-9)
        return means

    def finish_epoch(self, record: dict[str, Any], epoch: int, pos: _Position) -> None:
        """Log the epoch (and the stage's end products after its last epoch) and checkpoint."""
        ctx, stage = self.ctx, self.stage
        last = epoch + 1 == stage.epochs
        if last:
            record["end"] = self.task.end_stage(self.data)
        if ctx.world.is_main:
            found = {s: ctx.validation_split(s) for s in ctx.cfg.eval.every_epoch}
            scores = {s: validate(ctx.model, d, batch_size=ctx.cfg.data.eval_batch_size)
                      for s, d in found.items() if d is not None}  # fmt: skip
            if scores:
                record["val"] = scores
        ctx.history.append(record)
        ctx.log.write(record)
        logger.info("%s", _summary(record))
        pos.next_epoch, pos.stage_done = epoch + 1, last
        if ctx.world.is_main:
            if last:
                save_model(
                    stage_snapshot(ctx.run_dir, ctx.cfg, self.index), ctx.model,
                    model_config=ctx.cfg.model, extra_meta={"experiment": ctx.cfg.to_dict()},
                )  # fmt: skip
            tensors, meta = self._checkpoint_state(pos)
            save_checkpoint(ctx.run_dir / CHECKPOINT_NAME, tensors, meta)
        barrier()

    def _checkpoint_state(self, pos: _Position) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        model, cfg = self.ctx.model, self.ctx.cfg
        optim_tensors, optim_meta = optimizer_to_flat(self.optimizer)
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"optim.{k}": v for k, v in optim_tensors.items()})
        tensors.update({f"task.{k}": v for k, v in self.task.extra_state().items()})
        tensors["rng.torch"] = torch.get_rng_state()
        meta = {
            "model_config": cfg.model.to_dict(),
            "experiment": cfg.to_dict(),
            "training": dataclasses.asdict(pos),
            "optimizer": optim_meta,
            **model_meta(model),
        }
        return tensors, meta


def run_stage(ctx: RunContext, index: int, pos: _Position, resume_state: Any) -> None:
    """Train stage ``index`` from ``pos`` to its last epoch (the stage's ``freeze`` list holds
    only while it runs)."""
    stage = ctx.cfg.stages[index]
    data = ctx.stage_data(index)
    frozen = freeze_parameters(ctx.model, stage.freeze)
    try:
        run = StageRun.start(ctx, index, data, resume_state)
        for epoch in range(pos.next_epoch, stage.epochs):
            run.finish_epoch(run.epoch(epoch, pos), epoch, pos)
    finally:
        for param in frozen:
            param.requires_grad_(True)


def _summary(record: dict[str, Any]) -> str:
    parts = [f"{record['stage']} epoch {record['epoch']}"]
    for key, value in record.items():
        if isinstance(value, float) and math.isfinite(value):
            parts.append(f"{key}={value:.4g}")
    if "end" in record:
        parts.append(f"end={record['end']}")
    for split, scores in record.get("val", {}).items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in scores.items() if isinstance(v, float))
        parts.append(f"{split}: {shown}")
    return " ".join(parts)


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
    pos = _Position(stage=cfg.start_stage)
    if ckpt is not None:
        model.load_state_dict(ckpt.section("model"))
        pos = _Position(**ckpt.meta["training"])
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
            pos = _Position(stage=index, global_step=pos.global_step)
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


def stage_snapshot(run_dir: Path, cfg: ExperimentConfig, index: int) -> Path:
    """Where ``fit`` saves the model as stage ``index`` of ``cfg`` left it."""
    return run_dir / "stages" / f"{index}-{cfg.stages[index].name}.safetensors"


def _strip_settings(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        split: {k: v for k, v in values.items() if k != "settings"}
        if isinstance(values, dict)
        else values
        for split, values in metrics.items()
    }
