"""``ier bench``: every method and the IEr ablations trained and evaluated on one benchmark, with
the comparison tables (``results.md``/``results.json``), a bar chart and a qualitative grid.

``plan`` says what runs (presets, runs, folders, order); ``runner`` trains (resumably) and
evaluates them; ``diagnostics`` scores saved maps without a forward pass; ``tables`` writes the
tables; ``figures`` draws the PNGs with Pillow.
"""

from __future__ import annotations

from ier.bench.plan import (
    BENCH_PLANS,
    IER_ABLATIONS,
    BenchConfig,
    BenchRun,
    method_order,
    plan_runs,
)
from ier.bench.runner import BenchResult, ensure_benchmark, experiment_for, run_bench, run_one

__all__ = [
    "IER_ABLATIONS",
    "BENCH_PLANS",
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
