"""The bench runner: plan the runs, build the benchmark if missing, train/resume and evaluate each
run, record it, then hand the records to ``ier.bench.report``.

Layout of ``OUT``: ``bench.json`` (what the bench was started with), ``runs/<run>/`` (one
``ier.train.fit`` run directory each, plus ``bench-record.json`` once evaluated), ``results.md``,
``results.json``, ``bars.png`` and ``qualitative.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ier.codec import apply_overrides
from ier.config import ExperimentConfig
from ier.distributed import barrier, init_distributed, is_main_process
from ier.errors import ConfigError
from ier.files import atomic_write_json
from ier.methods import methods, preset

logger = logging.getLogger(__name__)



def method_order() -> tuple[str, ...]:
    """Rows of the tables, from the method registry (``ier.methods``, by ``Method.order``): the
    paper's baselines, the later single-map peers, DSOL, IEr, the ceiling, then any others."""
    return tuple(m.name for m in methods())


def method_labels() -> dict[str, str]:
    """Table label of every registered method."""
    return {m.name: m.label for m in methods()}


BENCHMARK_PRESET = {"tiny": "small", "quick": "default", "cpu": "default", "paper": "default"}
TRAIN_PRESET = {"tiny": "tiny", "quick": "short", "cpu": "cpu", "paper": "paper"}
"""The training preset (``ier.config.preset``) each bench preset trains every method at. ``quick``
trains at ``short`` (about a fifth of the ``quick`` epochs) so that all runs fit in 2 h on 2 CPU
cores (docs/baselines.md, "Budget"); ``cpu`` trains at ``cpu`` (the paper's 224 px and epochs,
frozen visual trunk read from the feature cache)."""
SMOKE_STEPS = {"tiny": 3}
"""At these presets every stage runs one epoch of at most this many steps (a smoke run)."""
BENCH_FILE = "bench.json"
RECORD_FILE = "bench-record.json"
LAYOUT = 2
"""Layout of a bench folder: 2 = one ``runs/<run>-seed<k>/`` folder per run and training seed."""


@dataclass(frozen=True)
class BenchRun:
    """One row of the bench: a method's recipe plus ``--set`` overrides.

    Attributes:
        name: Run directory name and row key.
        method: Recipe name (``ier.config.preset``).
        overrides: ``key=value`` overrides of the recipe.
        label: Row label in the tables.
        ablation: An IEr ablation (its own table section and the AII table).
        start_stage: First stage this run trains; the earlier stages are shared with
            ``shared_from`` (0: trains every stage).
        shared_from: The run whose snapshot of stage ``start_stage - 1`` this run starts from. An
            ablation that changes only later stages thus differs from the full method in those
            stages alone, and the bench does not train the shared stages twice.
    """

    name: str
    method: str
    overrides: tuple[str, ...] = ()
    label: str = ""
    ablation: bool = False
    start_stage: int = 0
    shared_from: str = ""


# The AII ablations re-train from IEr's S1-a/b model (stage 0), the CMR ablations from its stage-1
# model (stage 1): each differs from the full IEr row only where the ablation does.
IER_ABLATIONS = (
    BenchRun(
        "ier-no-aii",
        "ier",
        ("model.ier.use_aii=false",),
        "IEr w/o AII",
        True,
        start_stage=1,
        shared_from="ier",
    ),
    BenchRun(
        "ier-aii-no-curriculum",
        "ier",
        ("stages.aii.curriculum=false",),
        "IEr, AII w/o curriculum",
        True,
        start_stage=1,
        shared_from="ier",
    ),
    BenchRun(
        "ier-no-silent-filter",
        "ier",
        ("model.ier.silent_filter=false",),
        "IEr w/o silent-object filter",
        True,
        start_stage=2,
        shared_from="ier",
    ),
    BenchRun(
        "ier-no-offscreen-filter",
        "ier",
        ("model.ier.offscreen_filter=false",),
        "IEr w/o off-screen filter",
        True,
        start_stage=2,
        shared_from="ier",
    ),
)


@dataclass(frozen=True)
class BenchConfig:
    """What ``run_bench`` runs.

    Attributes:
        preset: ``tiny`` (smoke, small benchmark), ``quick`` (CPU) or ``paper``.
        methods: Methods to run, in any order; empty = every registered method.
        ablations: Also run the IEr ablations (when ``ier`` is among the methods).
        overrides: ``key=value`` overrides applied to every run (after its own).
        seeds: Training seeds: every run is trained once per seed (``runs/<run>-seed<k>/``) and
            the tables show mean +- standard deviation over them.
        seed: Seed of the benchmark build (when the bench builds it).
        workers: Processes that render the benchmark (when the bench builds it).
        qualitative_samples: Columns of the qualitative grid.
    """

    preset: str = "quick"
    methods: tuple[str, ...] = ()
    ablations: bool = True
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    workers: int = 1
    qualitative_samples: int = 4

    def __post_init__(self) -> None:
        if self.preset not in BENCHMARK_PRESET:
            raise ConfigError(
                f"unknown preset {self.preset!r}; choose from {list(BENCHMARK_PRESET)}"
            )
        unknown = sorted(set(self.methods) - set(method_order()))
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {list(method_order())}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be >= 0, got {list(self.seeds)}")
        if any(o.split("=", 1)[0].strip() == "seed" for o in self.overrides):
            raise ConfigError("the bench sets each run's seed: use --seeds, not --set seed=...")


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


def plan_runs(config: BenchConfig) -> list[BenchRun]:
    """The bench's runs in table order: methods, then IEr ablations."""
    chosen = set(config.methods or method_order())
    runs = [BenchRun(m.name, m.name, label=m.label) for m in methods() if m.name in chosen]
    if config.ablations and "ier" in chosen:
        runs.extend(IER_ABLATIONS)
    return runs


def run_dir_name(run: BenchRun | str, seed: int) -> str:
    """The folder of one run at one training seed, under ``OUT/runs/``."""
    return f"{run if isinstance(run, str) else run.name}-seed{seed}"


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
    from ier.train import stage_snapshot

    recipe = preset(run.method, TRAIN_PRESET[config.preset])
    cfg = apply_overrides(recipe, [*run.overrides, *config.overrides])
    smoke = SMOKE_STEPS.get(config.preset, 0)
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
    from ier.scenes import PRESETS, build_benchmark

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
    build = BENCHMARK_PRESET[preset_name]
    logger.info("building the %r benchmark in %s", build, data_dir)
    return build_benchmark(data_dir, preset=build, seed=seed, workers=workers, progress=progress)


def _strip(metrics: dict[str, Any]) -> dict[str, Any]:
    return {s: {k: v for k, v in m.items() if k != "settings"} for s, m in metrics.items()}


def extended_metrics(run_dir: Path, cfg: ExperimentConfig, data_dir: Path) -> dict[str, Any] | None:
    """SLAVC's extended protocol: test/solo positives + test/negative negatives, both mapped by
    the single-source model (class-agnostic map), scored together for ``ap`` and ``max_f1``.

    Returns None when the data has no test/solo or test/negative split.
    """
    from ier.checkpoint import load_model
    from ier.data.datasets import list_splits, load_eval_split, read_classes, split_manifest
    from ier.data.manifest import read_manifest
    from ier.evaluate import evaluate
    from ier.predict import predict
    from ier.predictions import Predictions, load_predictions
    from ier.train import single_source_checkpoint

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
    from ier.predict import evaluate_checkpoint
    from ier.train import MODEL_NAME, fit, single_source_checkpoint

    record_path = run_dir / RECORD_FILE
    if record_path.is_file():
        logger.info("%s: finished earlier, skipped", run.name)
        return json.loads(record_path.read_text(encoding="utf-8"))
    cfg = experiment_for(run, config, run_dir.parent, seed)
    model_path = run_dir / MODEL_NAME
    resumed = run_dir.is_dir() and any(run_dir.iterdir())
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
    extended = extended_metrics(run_dir, cfg, data_dir)
    record = {
        **dataclasses.asdict(run),
        "seed": seed,
        "run_dir": run_dir.name,
        "preset": config.preset,
        "train_preset": TRAIN_PRESET[config.preset],
        "train_seconds": round(trained - started, 2),
        "eval_seconds": round(time.perf_counter() - trained, 2),
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
        # A bench from before ``TRAIN_PRESET`` trained at the preset of the same name.
        budget = started.get("train_preset", started.get("preset"))
        if (started.get("preset"), budget) != (config.preset, TRAIN_PRESET[config.preset]):
            raise ConfigError(
                f"{out_dir} holds a bench run with preset {started.get('preset')!r} (training "
                f"preset {budget!r}), not {config.preset!r} (training preset "
                f"{TRAIN_PRESET[config.preset]!r}); use another --out"
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
    marker_info = {"preset": config.preset, "train_preset": TRAIN_PRESET[config.preset],
                   "layout": LAYOUT, "data_dir": str(data_dir),
                   "config": dataclasses.asdict(config), "started": provenance()}  # fmt: skip
    atomic_write_json(marker, marker_info, default=str)


def provenance() -> dict[str, Any]:
    """Where and with what a bench ran: command line, ier version and git commit (when the package
    is a git checkout), Python and torch versions, CPU model and count, memory, GPUs, date."""
    import platform
    import subprocess
    import sys

    import torch

    from ier import __version__

    root = Path(__file__).resolve().parents[3]
    commit = None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True, timeout=10)  # fmt: skip
        commit = out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        memory = None
    return {
        "command": " ".join(["ier", *sys.argv[1:]]) if sys.argv else None,
        "ier": __version__, "commit": commit, "python": platform.python_version(),
        "torch": torch.__version__, "platform": platform.platform(), "cpu": cpu,
        "cpus": os.cpu_count(), "memory_gib": None if memory is None else round(memory, 1),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }  # fmt: skip


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
    from ier.bench.report import write_reports

    config = config or BenchConfig()
    out = Path(out_dir)
    data = Path(data_dir) if data_dir is not None else out / "benchmark"
    world = init_distributed()
    if world.distributed and not (data / "benchmark.json").is_file():
        raise ConfigError(f"under torchrun, build the benchmark first (ier scenes): {data}")
    if world.is_main:
        _check_out_dir(out, config, data)
        data = ensure_benchmark(
            data, preset_name=config.preset, seed=config.seed, workers=config.workers,
            progress=progress,
        )  # fmt: skip
    barrier()
    records = []
    for seed in config.seeds:  # a whole seed before the next: partial results stay comparable
        for run in plan_runs(config):
            run_dir = out / "runs" / run_dir_name(run, seed)
            records.append(run_one(run, config, data, run_dir, seed=seed, progress=progress))
            logger.info("%s (seed %d): train %.1f s, eval %.1f s", run.name, seed,
                        records[-1]["train_seconds"], records[-1]["eval_seconds"])  # fmt: skip
    files: dict[str, Path] = {}
    if world.is_main:
        files = write_reports(records, out, data, config=config)
    barrier()
    return BenchResult(out_dir=out, data_dir=data, records=records, files=files)


def order_records(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records in table order: methods by ``method_order()``, then the ablations as
    ``IER_ABLATIONS`` lists them (others by name); a run's seeds in increasing order."""
    rank = {m: i for i, m in enumerate(method_order())}
    ablation_rank = {r.name: i for i, r in enumerate(IER_ABLATIONS)}
    return sorted(
        records,
        key=lambda r: (
            r["ablation"], rank.get(r["method"], 99), ablation_rank.get(r["name"], 99), r["name"],
            r.get("seed", 0),
        ),
    )  # fmt: skip
