"""``ier bench``: train and evaluate every method and the IEr ablations; write the tables."""

from __future__ import annotations

import argparse
from pathlib import Path

# The keys of ``ier.bench.plan.BENCH_PLANS`` (tests/test_cli.py checks they agree), named here so
# building the parser does not import torch. Methods are checked when the bench starts (the
# registry, ``ier.methods``, discovers them).
BENCH_PRESETS = ("tiny", "quick", "cpu", "paper")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``bench`` sub-parser."""
    parser = subparsers.add_parser(
        "bench",
        help="compare every method (and the IEr ablations) on one benchmark",
        description=(
            "Train every method and the IEr ablations on one benchmark (built in OUT/benchmark "
            "when --data is not given: 'small' for --preset tiny, else 'default'), evaluate all "
            "test splits, and write OUT/results.md, OUT/results.json, OUT/bars.png and "
            "OUT/qualitative.png. Re-running the same command resumes: finished runs are "
            "skipped, interrupted ones continue from their last checkpoint."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--preset",
        choices=BENCH_PRESETS,
        default="quick",
        help="scale of every run (tiny = smoke run on the small benchmark; cpu = the paper's "
        "224 px and epochs on CPU, frozen visual trunk read from the feature cache)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="METHOD",
        help="methods to run (default: every registered method: ier.methods)",
    )
    parser.add_argument("--data", type=Path, help="benchmark directory (default: OUT/benchmark)")
    parser.add_argument("--out", type=Path, required=True, help="bench directory")
    parser.add_argument("--no-ablations", action="store_true", help="skip the IEr ablations")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        metavar="SEED",
        help="training seeds: every run is trained once per seed, and the tables show mean ± "
        "standard deviation; adding seeds to a finished bench trains only the new ones",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override applied to every run's config",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that render the benchmark when it is built",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs trained side by side, each in its own process (an ablation waits for the run "
        "it starts from); on a machine with many cores, small training steps use them better "
        "this way than through more threads per run",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads of each run with --jobs above 1 (0: the cores that running runs do "
        "not hold, shared out among the runs that start together)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from ier.bench import BenchConfig, run_bench  # lazy: keeps ier --help fast

    config = BenchConfig(
        preset=args.preset,
        methods=tuple(args.methods or ()),
        ablations=not args.no_ablations,
        overrides=tuple(args.overrides),
        seeds=tuple(args.seeds),
        workers=args.workers,
        jobs=args.jobs,
        threads=args.threads,
    )
    result = run_bench(args.out, data_dir=args.data, config=config, progress=not args.no_progress)
    print(result.files["markdown"].read_text(encoding="utf-8"))
    for kind, path in result.files.items():
        print(f"{kind}: {path}")
    return 0
