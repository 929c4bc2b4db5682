"""One stage of a training run: the run's shared context, the stage's task, optimizer and epochs,
and what each epoch writes (its log record, the training checkpoint, the stage's snapshot).

``ier.train.fit`` builds a ``RunContext`` once and calls ``run_stage`` for every stage; this
module holds the loop inside a stage: ``StageRun`` trains an epoch step by step, logs it,
validates and checkpoints it, and ``RunPosition`` records where the run stands so that a resumed
run reaches the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ier.checkpoint import (
    model_meta,
    optimizer_from_flat,
    optimizer_to_flat,
    save_checkpoint,
    save_model,
)
from ier.config import ExperimentConfig, StageConfig
from ier.data.audio_memo import memo_encoders
from ier.data.datasets import (
    AVDataset,
    load_eval_split,
    load_split,
    num_train_batches,
    train_batches,
)
from ier.distributed import WorldInfo, barrier, wrap_ddp
from ier.errors import DatasetError
from ier.inference import validate
from ier.tasks import (
    StageData,
    Task,
    TaskRunner,
    create_task,
    freeze_parameters,
    frozen_modules,
)

logger = logging.getLogger("ier.train")  # the loop's log lines keep the name they had in ier.train

CHECKPOINT_NAME = "checkpoints/last.safetensors"


@dataclass
class RunPosition:
    """Where a run stands: the stage, its next epoch, whether the stage is done, and the global
    step. Stored in the training checkpoint (``meta["training"]``) and restored on resume."""

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

    def epoch(self, epoch: int, pos: RunPosition) -> dict[str, Any]:
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

    def _steps(self, batches: Any, pos: RunPosition, bar: tqdm) -> dict[str, float]:
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

    def finish_epoch(self, record: dict[str, Any], epoch: int, pos: RunPosition) -> None:
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

    def _checkpoint_state(self, pos: RunPosition) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
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


def run_stage(ctx: RunContext, index: int, pos: RunPosition, resume_state: Any) -> None:
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


def stage_snapshot(run_dir: Path, cfg: ExperimentConfig, index: int) -> Path:
    """Where ``fit`` saves the model as stage ``index`` of ``cfg`` left it."""
    return run_dir / "stages" / f"{index}-{cfg.stages[index].name}.safetensors"
