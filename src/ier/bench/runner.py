"""The bench runner: plan the runs, build the benchmark if missing, train/resume and evaluate each
run, record it, then hand the records to ``ier.bench.tables``.

Layout of ``OUT``: ``bench.json`` (what the bench was started with), ``runs/<run>/`` (one
``ier.train.fit`` run directory each, plus ``bench-record.json`` once evaluated), ``results.md``,
``results.json``, ``bars.png`` and ``qualitative.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ier.allocator import keep_freed_memory
from ier.bench.plan import (
    BENCH_FILE,
    BENCH_PLANS,
    LAYOUT,
    RECORD_FILE,
    BenchConfig,
    BenchRun,
    plan_runs,
    provenance,
    run_dir_name,
    start_order,
)
from ier.bench.tables import write_reports
from ier.checkpoint import load_model
from ier.codec import apply_overrides
from ier.config import ExperimentConfig
from ier.data.datasets import list_splits, load_eval_split, read_classes, split_manifest
from ier.data.manifest import read_manifest
from ier.devices import usable_cores
from ier.distributed import barrier, init_distributed, is_main_process
from ier.errors import BenchRunError, ConfigError
from ier.evaluate import evaluate
from ier.files import atomic_write_json
from ier.inference import evaluate_checkpoint, predict, store_calibration
from ier.methods import preset
from ier.predictions import Predictions, load_predictions
from ier.scenes import PRESETS, build_benchmark
from ier.stage_loop import stage_snapshot
from ier.train import MODEL_NAME, fit, single_source_checkpoint

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchResult:
    """What a bench produced.

    Attributes:
        out_dir: The bench folder.
        data_dir: The benchmark it ran on.
        records: One record per run (``runs/<run>/bench-record.json``), in table order.
        files: Written outputs by kind (``markdown``, ``json``, ``bars``, ``qualitative``);
            empty on ranks other than 0 under torchrun.
    """

    out_dir: Path
    data_dir: Path
    records: list[dict[str, Any]]
    files: dict[str, Path]


def experiment_for(
    run: BenchRun, config: BenchConfig, runs_dir: Path | None = None, seed: int = 0
) -> ExperimentConfig:
    """The run's experiment at training seed ``seed``: recipe at the bench preset's training
    preset, its overrides, the bench's, no end-of-run eval (the bench evaluates and times it
    separately), the smoke limits of ``tiny``, and, for a run with ``shared_from``, the start from
    that run's stage snapshot (same seed) in ``runs_dir``.

    Raises:
        ConfigError: the shared run has no snapshot of the stage this run starts after.
    """

    recipe = preset(run.method, BENCH_PLANS[config.preset].training)
    cfg = apply_overrides(recipe, [*run.overrides, *config.overrides])
    smoke = BENCH_PLANS[config.preset].smoke_steps
    extra = ["eval.at_end=false", f"seed={seed}"]
    if smoke:
        for i in range(len(cfg.stages)):
            extra += [f"stages.{i}.epochs=1", f"stages.{i}.max_steps={smoke}"]
    cfg = apply_overrides(cfg, extra)
    if run.shared_from and runs_dir is not None:
        before = run.start_stage - 1
        snapshot = stage_snapshot(runs_dir / run_dir_name(run.shared_from, seed), cfg, before)
        if not snapshot.is_file():
            raise ConfigError(
                f"{run.name} starts from {run.shared_from}'s stage {before} "
                f"({cfg.stages[before].name}), but {snapshot} is missing; run {run.shared_from} "
                "first (the bench runs it before its ablations)"
            )
        cfg = dataclasses.replace(cfg, init_from=str(snapshot), start_stage=run.start_stage)
    return cfg


def ensure_benchmark(
    data_dir: Path, *, preset_name: str, seed: int = 0, workers: int = 1, progress: bool = True
) -> Path:
    """Use ``data_dir`` if it holds a finished benchmark or any prepared dataset; otherwise build
    (or finish building) the built-in benchmark there, ``small`` for ``tiny`` else ``default``."""

    info_path = data_dir / "benchmark.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        wanted = set(PRESETS.get(info.get("preset"), {}))
        if info.get("complete", True) and wanted <= set(info.get("splits", wanted)):
            return data_dir
        logger.info("finishing the benchmark build in %s (interrupted, or splits added since)",
                    data_dir)  # fmt: skip
        return build_benchmark(
            data_dir, preset=info["preset"], seed=info["seed"], size=info["size"],
            workers=workers, progress=progress,
        )  # fmt: skip
    if any(data_dir.glob("test/*/manifest.jsonl")):
        return data_dir
    build = BENCH_PLANS[preset_name].benchmark
    logger.info("building the %r benchmark in %s", build, data_dir)
    return build_benchmark(data_dir, preset=build, seed=seed, workers=workers, progress=progress)


def _strip(metrics: dict[str, Any]) -> dict[str, Any]:
    return {s: {k: v for k, v in m.items() if k != "settings"} for s, m in metrics.items()}


def extended_metrics(run_dir: Path, cfg: ExperimentConfig, data_dir: Path) -> dict[str, Any] | None:
    """SLAVC's extended protocol: test/solo positives + test/negative negatives, both mapped by
    the single-source model (class-agnostic map), scored together for ``ap`` and ``max_f1``.

    Returns None when the data has no test/solo or test/negative split.
    """

    solo_path = run_dir / "eval" / "predictions_solo.npz"
    if not {"test/solo", "test/negative"} <= set(list_splits(data_dir, "test/")):
        return None
    if not solo_path.is_file():
        return None
    model = load_model(single_source_checkpoint(cfg, run_dir) or run_dir / "model.safetensors")
    negative = load_eval_split(data_dir, "test/negative", model, classes=read_classes(data_dir),
                               cache_dir=cfg.data.cache_dir or None)  # fmt: skip
    neg = predict(model, negative, batch_size=cfg.data.eval_batch_size, single_source=True)
    solo = load_predictions(solo_path)
    if solo.classes != ("*",) or solo.maps.shape[1:] != neg.maps.shape[1:]:
        return None
    joined = Predictions(
        ids=solo.ids + neg.ids,
        classes=("*",),
        maps=np.concatenate([solo.maps, neg.maps]),
        scores=None,
    )
    samples = read_manifest(split_manifest(data_dir, "test/solo")) + list(negative.samples)
    result = evaluate(joined, samples)
    return {k: v for k, v in result.items() if k != "settings"}


def run_one(
    run: BenchRun, config: BenchConfig, data_dir: Path, run_dir: Path, *, seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Train (or resume) one run at training seed ``seed``, evaluate every test split, and record
    it; a run with a record is skipped. Returns the record (also written to
    ``run_dir/bench-record.json``)."""

    record_path = run_dir / RECORD_FILE
    if record_path.is_file():
        logger.info("%s: finished earlier, skipped", run.name)
        return json.loads(record_path.read_text(encoding="utf-8"))
    cfg = experiment_for(run, config, run_dir.parent, seed)
    model_path = run_dir / MODEL_NAME
    resumed = run_dir.is_dir() and any(run_dir.iterdir())
    started_at = time.time()
    started = time.perf_counter()
    if not model_path.is_file():
        logger.info("%s: %s", run.name, "resuming training" if resumed else "training")
        fit(cfg, data_dir, run_dir, resume=resumed, progress=progress)
    trained = time.perf_counter()
    if not is_main_process():  # under torchrun, rank 0 evaluates and records
        barrier()
        return json.loads(record_path.read_text(encoding="utf-8"))
    metrics = evaluate_checkpoint(
        model_path, data_dir, out_dir=run_dir / "eval",
        single_source_checkpoint=single_source_checkpoint(cfg, run_dir),
        batch_size=cfg.data.eval_batch_size, cache_dir=cfg.data.cache_dir or None,
    )  # fmt: skip
    store_calibration(model_path, metrics)
    extended = extended_metrics(run_dir, cfg, data_dir)
    record = {
        **dataclasses.asdict(run),
        "seed": seed,
        "run_dir": run_dir.name,
        "preset": config.preset,
        "train_preset": BENCH_PLANS[config.preset].training,
        "train_seconds": round(trained - started, 2),
        "eval_seconds": round(time.perf_counter() - trained, 2),
        "threads": torch.get_num_threads(),
        "started_at": round(started_at, 3),  # Unix times of this invocation's start and end
        "finished_at": round(time.time(), 3),
        "resumed": resumed,
        "metrics": _strip(metrics),
        "extended": extended,
    }
    atomic_write_json(record_path, record, default=str)
    barrier()
    return json.loads(record_path.read_text(encoding="utf-8"))  # as a later, skipping call sees it


def _check_out_dir(out_dir: Path, config: BenchConfig, data_dir: Path) -> None:
    marker = out_dir / BENCH_FILE
    if marker.is_file():
        started = json.loads(marker.read_text(encoding="utf-8"))
        # A bench from before the training preset was recorded trained at the one of its name.
        budget = started.get("train_preset", started.get("preset"))
        if (started.get("preset"), budget) != (config.preset, BENCH_PLANS[config.preset].training):
            raise ConfigError(
                f"{out_dir} holds a bench run with preset {started.get('preset')!r} (training "
                f"preset {budget!r}), not {config.preset!r} (training preset "
                f"{BENCH_PLANS[config.preset].training!r}); use another --out"
            )
        if started.get("layout", 1) != LAYOUT:
            raise ConfigError(
                f"{out_dir} holds a bench of an older layout (runs/<run>/ without seeds); use "
                "another --out"
            )
        if Path(started.get("data_dir", data_dir)).resolve() != data_dir.resolve():
            raise ConfigError(
                f"{out_dir} holds a bench run on {started.get('data_dir')}, not {data_dir}; "
                "use another --out (results on different data are never mixed)"
            )
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ConfigError(f"{out_dir} is not empty and holds no {BENCH_FILE}; use another --out")
    marker_info = {"preset": config.preset, "train_preset": BENCH_PLANS[config.preset].training,
                   "layout": LAYOUT, "data_dir": str(data_dir),
                   "config": dataclasses.asdict(config), "started": provenance()}  # fmt: skip
    atomic_write_json(marker, marker_info, default=str)


def run_bench(
    out_dir: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    config: BenchConfig | None = None,
    progress: bool = True,
) -> BenchResult:
    """Run (or resume) the whole bench and write its tables and figures.

    Args:
        out_dir: Bench folder (new, empty, or an earlier bench with the same preset).
        data_dir: Benchmark folder; default ``OUT/benchmark``. Built when missing.
        config: What to run; default ``BenchConfig()`` (preset ``quick``).
        progress: Show progress bars.

    Returns:
        The ``BenchResult``.
    """
    config = config or BenchConfig()
    out = Path(out_dir)
    data = Path(data_dir) if data_dir is not None else out / "benchmark"
    world = init_distributed()
    if world.distributed and config.jobs > 1:
        raise ConfigError("--jobs runs several runs side by side on one machine; under torchrun "
                          "every process trains the same run: use one or the other")  # fmt: skip
    if world.distributed and not (data / "benchmark.json").is_file():
        raise ConfigError(f"under torchrun, build the benchmark first (ier scenes): {data}")
    if world.is_main:
        _check_out_dir(out, config, data)
        data = ensure_benchmark(
            data, preset_name=config.preset, seed=config.seed, workers=config.workers,
            progress=progress,
        )  # fmt: skip
    barrier()
    # A whole seed before the next: partial results stay comparable.
    tasks = [(seed, run) for seed in config.seeds for run in plan_runs(config)]
    if config.jobs > 1:
        records = run_side_by_side(tasks, config, data, out / "runs")
    else:
        records = []
        for seed, run in tasks:
            run_dir = out / "runs" / run_dir_name(run, seed)
            records.append(run_one(run, config, data, run_dir, seed=seed, progress=progress))
            logger.info("%s (seed %d): train %.1f s, eval %.1f s", run.name, seed,
                        records[-1]["train_seconds"], records[-1]["eval_seconds"])  # fmt: skip
    files: dict[str, Path] = {}
    if world.is_main:
        files = write_reports(records, out, data, config=config)
    barrier()
    return BenchResult(out_dir=out, data_dir=data, records=records, files=files)


def _run_in_worker(
    run: BenchRun, config: BenchConfig, data_dir: Path, run_dir: Path, seed: int, threads: int
) -> dict[str, Any]:
    """``run_one`` in a fresh worker process with ``threads`` torch threads and the CLI's
    allocator settings; logs to stderr with the run's folder name on every line."""
    torch.set_num_threads(threads)
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, force=True,
                        format=f"%(levelname)s [{run_dir.name}] %(name)s: %(message)s")  # fmt: skip
    return run_one(run, config, data_dir, run_dir, seed=seed, progress=False)


def run_side_by_side(
    tasks: list[tuple[int, BenchRun]], config: BenchConfig, data_dir: Path, runs_dir: Path
) -> list[dict[str, Any]]:
    """Train and evaluate ``tasks`` (``(seed, run)``) with up to ``config.jobs`` runs at a time,
    each in its own fresh process (``spawn``) with ``config.threads`` torch threads. By default
    (``threads`` 0) the usable cores that running runs do not hold are shared out among the runs
    that start together: with fewer runs ready than ``jobs`` (ablations waiting for ``ier``, the
    end of a bench), each gets more threads. Runs start in ``start_order`` (seeds in order; the
    runs others start from first, then the longest, timed or typical), and a run that
    starts from another's snapshot waits until that run has finished. Finished runs (with a
    record) are read, not started.

    Each run has a process of its own, so a run whose process dies (out of memory, say) fails
    alone. Workers find methods as ``ier train`` does (this package, ``IER_METHOD_PATH``, entry
    points), not ones registered only in the calling process.

    Returns:
        The records in ``tasks`` order.

    Raises:
        ConfigError: a run starts from a run that is not among ``tasks``.
        BenchRunError: a run failed. Every run that does not wait for it still trains and is
            recorded (the next call skips it); the message names the failed runs and those left
            waiting for them.
    """
    planned = {(seed, run.name) for seed, run in tasks}
    for seed, run in tasks:
        if run.shared_from and (seed, run.shared_from) not in planned:
            raise ConfigError(f"{run_dir_name(run, seed)} starts from {run.shared_from}, which "
                              "is not among the bench's runs")  # fmt: skip
    cores = usable_cores()
    done: dict[tuple[int, str], dict[str, Any]] = {}
    pending: list[tuple[int, BenchRun]] = []
    for seed, run in tasks:
        record_path = runs_dir / run_dir_name(run, seed) / RECORD_FILE
        if record_path.is_file():
            logger.info("%s (seed %d): finished earlier, skipped", run.name, seed)
            done[(seed, run.name)] = json.loads(record_path.read_text(encoding="utf-8"))
        else:
            pending.append((seed, run))
    pending = start_order(pending, tasks, done)
    logger.info("%d runs to train, at most %d at a time, on %d cores", len(pending), config.jobs,
                cores)  # fmt: skip
    failures: list[str] = []
    running: dict[Future[dict[str, Any]], tuple[int, BenchRun, ProcessPoolExecutor, int]] = {}
    context = multiprocessing.get_context("spawn")
    try:
        while pending or running:
            pending = start_order(pending, tasks, done)  # finished runs time the later seeds
            ready = [(seed, run) for seed, run in pending
                     if not run.shared_from or (seed, run.shared_from) in done]  # fmt: skip
            ready = ready[: config.jobs - len(running)]
            # The cores not taken by running runs are shared out among the runs that start now.
            free = cores - sum(t for *_, t in running.values())
            threads = config.threads or max(1, free // max(1, len(ready)))
            for seed, run in ready:
                pending.remove((seed, run))
                run_dir = runs_dir / run_dir_name(run, seed)
                worker = ProcessPoolExecutor(1, mp_context=context)
                future = worker.submit(_run_in_worker, run, config, data_dir, run_dir, seed,
                                       threads)  # fmt: skip
                running[future] = (seed, run, worker, threads)
                logger.info("%s (seed %d): started with %d thread(s)", run.name, seed, threads)
            if not running:
                break  # what is left waits for a run that failed
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                seed, run, worker, _ = running.pop(future)
                worker.shutdown()
                try:
                    record = future.result()
                except Exception as error:  # noqa: BLE001 - reported with the run's name below
                    logger.error("%s (seed %d) failed: %s", run.name, seed, error)
                    failures.append(f"{run_dir_name(run, seed)}: {type(error).__name__}: {error}")
                    continue
                done[(seed, run.name)] = record
                logger.info("%s (seed %d): train %.1f s, eval %.1f s (%d of %d runs done)",
                            run.name, seed, record["train_seconds"], record["eval_seconds"],
                            len(done), len(tasks))  # fmt: skip
    except KeyboardInterrupt:
        if running:
            names = ", ".join(run_dir_name(r, s) for s, r, *_ in running.values())
            logger.warning("interrupted: waiting for %s to stop (finished runs are recorded)",
                           names)  # fmt: skip
        raise
    finally:
        for _, _, worker, _ in running.values():
            worker.shutdown()
    if failures or pending:
        waiting = ", ".join(run_dir_name(run, seed) for seed, run in tasks
                            if (seed, run) in pending)  # fmt: skip  # in table order
        raise BenchRunError(
            "bench runs failed: " + "; ".join(failures)
            + (f"; not started (they start from a failed run): {waiting}" if waiting else "")
            + ". Finished runs are recorded; run the same command again to resume."
        )  # fmt: skip
    return [done[(seed, run.name)] for seed, run in tasks]
