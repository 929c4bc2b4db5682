"""``ier train``: train a method's stages on a benchmark directory (progress bar + JSONL log)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ier.config import PRESETS  # torch-free: ier.config imports no model code


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-parser."""
    parser = subparsers.add_parser(
        "train",
        help="train a method (all of its stages) on a benchmark directory",
        description=(
            "Train every stage of a method's recipe on DIR and write the run to RUN_DIR "
            "(config.json, log.jsonl, checkpoints/, model.safetensors, eval/). An existing run "
            "directory is never overwritten: pass --resume to continue it after an interruption. "
            "Multi-GPU: torchrun --nproc_per_node=N -m ier train ... (see docs/training.md)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--method", default="ier", help="method recipe (ier, or a baseline)")
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--out", type=Path, required=True, help="run directory (must be new)")
    parser.add_argument("--preset", choices=PRESETS, default="quick", help="scale of the run")
    parser.add_argument(
        "--config", type=Path, help="TOML experiment file (configs/*.toml); replaces --preset"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set stages.0.epochs=2 --set model.width=16",
    )
    parser.add_argument(
        "--init",
        type=Path,
        metavar="CKPT",
        help="start from this checkpoint's weights (e.g. RUN/stages/1-aii.safetensors); "
        "same as --set init_from=CKPT",
    )
    parser.add_argument(
        "--start-stage",
        type=int,
        metavar="N",
        help="skip the recipe's stages before index N (with --init: re-run later stages of an "
        "earlier run); same as --set start_stage=N",
    )
    parser.add_argument(
        "--stop-stage",
        type=int,
        metavar="N",
        help="end the run after stage N (e.g. 1 for IEr's stage-1-only model); "
        "same as --set stop_stage=N",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument("--device", help="torch device (default: this rank's GPU, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_run, _train_parser=parser)


def _run(args: argparse.Namespace) -> int:
    from ier.codec import apply_overrides  # lazy: keeps ier --help fast
    from ier.methods import load_config, preset  # lazy: keeps ier --help fast
    from ier.train import fit  # lazy: keeps ier --help fast

    cfg = None
    overrides = list(args.overrides)
    if args.init is not None:
        if not args.init.is_file():
            args._train_parser.error(f"--init: no such checkpoint: {args.init}")
        overrides.append(f"init_from={args.init}")
    if args.start_stage is not None:
        overrides.append(f"start_stage={args.start_stage}")
    if args.stop_stage is not None:
        overrides.append(f"stop_stage={args.stop_stage}")
    explicit = args.config is not None or overrides
    if args.resume and explicit:
        args._train_parser.error(
            "--resume continues with the run's saved config; "
            "drop --config/--set/--init/--start-stage/--stop-stage"
        )
    if not (args.resume and (args.out / "config.json").is_file()):
        cfg = load_config(args.config) if args.config else preset(args.method, args.preset)
        cfg = apply_overrides(cfg, overrides)
    result = fit(
        cfg, args.data, args.out, resume=args.resume, device=args.device,
        progress=not args.no_progress,
    )  # fmt: skip
    print(f"model: {result.model_path}")
    if result.metrics:
        from ier.evaluate import format_results  # lazy: keeps ier --help fast

        print(format_results(result.metrics), end="\n\n")
    return 0
