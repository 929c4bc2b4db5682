"""What a bench runs and how its results are named: the bench presets, ``BenchConfig``, the runs
(every registered method, then the IEr ablations), their folders and table order, and the
provenance a bench records. The runner (``ier.bench.runner``) and the tables
(``ier.bench.tables``, ``ier.bench.figures``) share it.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ier import __version__
from ier.errors import ConfigError
from ier.methods import methods


def method_order() -> tuple[str, ...]:
    """Rows of the tables, from the method registry (``ier.methods``, by ``Method.order``): the
    paper's baselines, the later single-map peers, DSOL, IEr, the ceiling, then any others."""
    return tuple(m.name for m in methods())


def method_labels() -> dict[str, str]:
    """Table label of every registered method."""
    return {m.name: m.label for m in methods()}


@dataclass(frozen=True)
class BenchPlan:
    """What one ``ier bench --preset`` name means.

    Attributes:
        benchmark: The built-in benchmark size it builds when ``--data`` is not given
            (``ier.scenes`` ``small``/``default``).
        training: The training preset (``ier.config.PRESETS``) every method trains at.
        smoke_steps: > 0: every stage runs one epoch of at most this many steps (a smoke run).
    """

    benchmark: str
    training: str
    smoke_steps: int = 0


BENCH_PLANS: dict[str, BenchPlan] = {
    "tiny": BenchPlan("small", "tiny", smoke_steps=3),
    "quick": BenchPlan("default", "short"),
    "cpu": BenchPlan("default", "cpu"),
    "paper": BenchPlan("default", "paper"),
}
"""``quick`` trains at ``short`` (about a fifth of the ``quick`` epochs) so that all runs fit in
2 h on 2 CPU cores (docs/baselines.md, "Budget"); ``cpu`` trains at ``cpu`` (the paper's 224 px
and epochs, frozen visual trunk read from the feature cache)."""
BENCH_PRESETS = tuple(BENCH_PLANS)


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
    BenchRun(
        "ier-no-referrer",
        "ier",
        ("stages.cmr.lambda_cd=0",),
        "IEr, stage 2 on L_av alone (no CMR teacher)",
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
        jobs: Runs trained side by side, each in its own process (1: one after another in this
            process). A run that starts from another run's snapshot waits for that run.
        threads: Torch threads of each run when ``jobs`` > 1; 0: the usable cores that running
            runs do not hold, shared out among the runs that start together (at least 1).
    """

    preset: str = "quick"
    methods: tuple[str, ...] = ()
    ablations: bool = True
    overrides: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    seed: int = 0
    workers: int = 1
    qualitative_samples: int = 4
    jobs: int = 1
    threads: int = 0

    def __post_init__(self) -> None:
        if self.preset not in BENCH_PLANS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose from {list(BENCH_PLANS)}")
        unknown = sorted(set(self.methods) - set(method_order()))
        if unknown:
            raise ConfigError(f"unknown method(s) {unknown}; choose from {list(method_order())}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be distinct and at least one, got {list(self.seeds)}")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be >= 0, got {list(self.seeds)}")
        if self.jobs < 1 or self.threads < 0:
            raise ConfigError(f"jobs must be >= 1 and threads >= 0, got {self.jobs} and "
                              f"{self.threads}")  # fmt: skip
        if any(o.split("=", 1)[0].strip() == "seed" for o in self.overrides):
            raise ConfigError("the bench sets each run's seed: use --seeds, not --set seed=...")


# Train + eval seconds of each run at seed 0 of the `cpu` bench (one thread each, `--jobs 2`,
# 2026-12-05; docs/results/bench-cpu-aisfx-full.json). Only ``runner.start_order`` reads them, to
# start the longest runs first before any seed has timed them; a run not listed counts as short.
TYPICAL_SECONDS = {
    "sop": 2524.0, "ier-aii-no-curriculum": 516.0, "ier": 409.0, "slavc": 319.0,
    "ier-no-aii": 282.0, "ots": 234.0, "dsol": 215.0, "attention": 103.0, "ezvsl": 97.0,
    "supervised": 95.0, "ier-no-offscreen-filter": 53.0, "ier-no-referrer": 52.0,
    "ier-no-silent-filter": 51.0,
}  # fmt: skip


def plan_runs(config: BenchConfig) -> list[BenchRun]:
    """The bench's runs in table order: methods, then IEr ablations."""
    chosen = set(config.methods or method_order())
    runs = [BenchRun(m.name, m.name, label=m.label) for m in methods() if m.name in chosen]
    if config.ablations and "ier" in chosen:
        runs.extend(IER_ABLATIONS)
    return runs


def start_order(
    pending: list[tuple[int, BenchRun]],
    tasks: list[tuple[int, BenchRun]],
    done: dict[tuple[int, str], dict[str, Any]],
) -> list[tuple[int, BenchRun]]:
    """The order in which ``run_side_by_side`` starts ``pending`` runs: seeds in the order of
    ``tasks``; within a seed, first the runs that others start from (``shared_from``), then the
    longest first. A run's expected length is its mean train + eval seconds at the seeds in
    ``done``; a run that no seed has timed yet gets its ``TYPICAL_SECONDS`` (from the `cpu` bench),
    scaled by the median ratio of timed to typical seconds of the runs timed so far (so a faster
    preset or machine keeps the proportions). Runs with neither keep the order of ``tasks``. A
    long run started last leaves the other cores idle at the end (Sound of Pixels in the `cpu`
    bench, docs/results.md)."""
    seed_order = {seed: i for i, seed in enumerate(dict.fromkeys(seed for seed, _ in tasks))}
    providers = {(seed, run.shared_from) for seed, run in pending if run.shared_from}
    seconds: dict[str, list[float]] = {}
    for (_, name), record in done.items():
        spent = record.get("train_seconds", 0.0) + record.get("eval_seconds", 0.0)
        seconds.setdefault(name, []).append(float(spent))
    expected = {name: sum(v) / len(v) for name, v in seconds.items()}
    ratios = [spent / TYPICAL_SECONDS[name] for name, spent in expected.items()
              if TYPICAL_SECONDS.get(name)]  # fmt: skip
    scale = statistics.median(ratios) if ratios else 1.0
    for name, typical in TYPICAL_SECONDS.items():
        expected.setdefault(name, typical * scale)
    return sorted(pending, key=lambda t: (
        seed_order[t[0]], (t[0], t[1].name) not in providers, -expected.get(t[1].name, 0.0),
    ))  # fmt: skip  # stable: runs without an expected length keep the order of ``tasks``


def run_dir_name(run: BenchRun | str, seed: int) -> str:
    """The folder of one run at one training seed, under ``OUT/runs/``."""
    return f"{run if isinstance(run, str) else run.name}-seed{seed}"


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


def provenance() -> dict[str, Any]:
    """Where and with what a bench ran: command line, ier version and git commit (when the package
    is a git checkout), Python and torch versions, CPU model and count, memory, GPUs, date."""
    import platform
    import subprocess
    import sys

    import torch


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


def metric(record: dict[str, Any], source: str, key: str) -> float | None:
    """A record's value of ``key`` on ``source`` (a split or ``extended``), or None."""
    values = record.get("extended") if source == "extended" else record["metrics"].get(source)
    value = (values or {}).get(key)
    return None if value is None else float(value)
