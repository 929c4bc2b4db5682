"""``ier scenes``: build, check, summarise and preview the built-in benchmark."""

from __future__ import annotations

import argparse
import json


def _build(args: argparse.Namespace) -> int:
    from ier.scenes import build_benchmark  # lazy: keeps ier --help fast

    out = build_benchmark(
        args.out_dir, preset=args.preset, seed=args.seed, size=args.size,
        workers=args.workers, progress=not args.quiet,
        extra_train_images=args.extra_train_images,
    )  # fmt: skip
    info = json.loads((out / "benchmark.json").read_text(encoding="utf-8"))
    counts = ", ".join(f"{s} {v['count']}" for s, v in info["splits"].items())
    print(f"built {out} in {info['build_seconds']} s: {counts}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ier.scenes.stats import check_benchmark  # lazy: keeps ier --help fast

    problems = check_benchmark(args.dir)
    for problem in problems:
        print(problem)
    print(f"{args.dir}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


def _stats(args: argparse.Namespace) -> int:
    from ier.scenes.stats import benchmark_stats, stats_table  # lazy: keeps ier --help fast

    stats = benchmark_stats(args.dir)
    print(json.dumps(stats, indent=2) if args.json else stats_table(stats))
    return 0


def _sheet(args: argparse.Namespace) -> int:
    from ier.scenes.sheet import contact_sheet  # lazy: keeps ier --help fast

    print(contact_sheet(args.dir, args.output, per_split=args.per_split))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``ier scenes {build,check,stats,sheet}``."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = subparsers.add_parser(
        "scenes", help="build the built-in benchmark from installed real sounds and photos",
        description="Build, check and summarise the built-in benchmark (docs/benchmark.md).",
        formatter_class=fmt,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="scenes_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build", help="build (or resume) a benchmark folder", formatter_class=fmt
    )
    build.add_argument("out_dir", metavar="OUT_DIR")
    build.add_argument("--preset", choices=("small", "default", "large"), default="default")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--size", type=int, default=224, help="frame side in pixels")
    build.add_argument("--workers", type=int, default=1, help="parallel processes")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.add_argument("--extra-train-images", choices=("openclipart",), default=None,
                       help="also draw training objects from these drawings (apt package "
                            "openclipart-png); the test splits are unchanged")  # fmt: skip
    build.set_defaults(handler=_build)
    check = sub.add_parser(
        "check", help="validate a build (boxes, provenance, train/test disjoint)"
    )
    check.add_argument("dir", metavar="DIR")
    check.set_defaults(handler=_check)
    stats = sub.add_parser("stats", help="per-split statistics as a Markdown table")
    stats.add_argument("dir", metavar="DIR")
    stats.add_argument("--json", action="store_true", help="print JSON instead")
    stats.set_defaults(handler=_stats)
    sheet = sub.add_parser("sheet", help="draw a contact sheet of samples", formatter_class=fmt)
    sheet.add_argument("dir", metavar="DIR")
    sheet.add_argument("-o", "--output", default="docs/images/contact_sheet.png")
    sheet.add_argument("--per-split", type=int, default=3)
    sheet.set_defaults(handler=_sheet)
