"""``ier bench``: every method and the IEr ablations trained and evaluated on one benchmark, with
the comparison tables (``results.md``/``results.json``), a bar chart and a qualitative grid.

``runner`` plans, trains (resumably) and evaluates the runs; ``report`` writes the tables;
``figures`` draws the PNGs with Pillow.
"""

from __future__ import annotations

from ier.bench.runner import (
    IER_ABLATIONS,
    TRAIN_PRESET,
    BenchConfig,
    BenchResult,
    BenchRun,
    ensure_benchmark,
    experiment_for,
    method_order,
    plan_runs,
    run_bench,
    run_one,
)

__all__ = [
    "IER_ABLATIONS",
    "TRAIN_PRESET",
    "BenchConfig",
    "BenchResult",
    "BenchRun",
    "ensure_benchmark",
    "experiment_for",
    "method_order",
    "plan_runs",
    "run_bench",
    "run_one",
]
