"""``ier evaluate``: score predictions against a manifest, or a checkpoint on benchmark splits."""

from __future__ import annotations

import argparse
from pathlib import Path

from ier.errors import ConfigError

# ``ier.data.sample.SPLIT_KINDS`` (tests/test_cli.py checks they agree): named here so building
# the parser does not import the data package.
SPLIT_KINDS = ("solo", "synthetic", "duet", "wild", "negative")

CHECKPOINT_OUTPUTS = ("metrics.json", "predictions.npz", "predictions_*.npz")
"""What ``ier evaluate --checkpoint`` writes in its --out folder (with --data: metrics.json and
predictions_<split>.npz; with --manifest: metrics.json and predictions.npz)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` sub-parser."""
    parser = subparsers.add_parser(
        "evaluate",
        help="compute every localization metric (IoU, AUC, CIoU, NSA, false positives, AP)",
        description=(
            "Score predictions against a manifest (--predictions P.npz --manifest M.jsonl), "
            "run a checkpoint over benchmark splits (--checkpoint CKPT --data DIR), or run a "
            "checkpoint over any manifest with the checkpoint's classes (--checkpoint CKPT "
            "--manifest M.jsonl). CKPT is a checkpoint file or a bundled model name "
            "(ier-wild-small). Metrics are defined in docs/metrics.md; every threshold used "
            "is written to the JSON. An existing --out is replaced only with --overwrite."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    files = parser.add_argument_group("predictions mode")
    files.add_argument("--predictions", type=Path, help="predictions .npz (docs/formats.md)")
    files.add_argument(
        "--manifest", type=Path, help="manifest .jsonl of the split (also with --checkpoint)"
    )
    ckpt = parser.add_argument_group("checkpoint mode")
    ckpt.add_argument(
        "--checkpoint", help="model checkpoint to run: a file or a bundled model name"
    )
    ckpt.add_argument("--data", type=Path, help="benchmark directory (DIR/<split>/manifest.jsonl)")
    ckpt.add_argument(
        "--splits", nargs="+", metavar="SPLIT", help="splits to evaluate (default: all test splits)"
    )
    ckpt.add_argument(
        "--object-prior",
        type=float,
        metavar="W",
        help="gate the model's maps by visual objectness with weight W in [0, 1] "
        "(default: the checkpoint's model.object_prior, 0 = off; docs/method.md §6)",
    )
    ckpt.add_argument(
        "--store-calibration",
        action="store_true",
        help="write the operating point calibrated on the validation splits (the map threshold "
        "and, for IEr, the calibrated presence; docs/localize.md) into CHECKPOINT's metadata, "
        "where ier localize reads its default threshold from (a checkpoint file, not a bundled "
        "name; needs --data with val/wild and val/negative)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="metrics .json (predictions mode) or output folder (checkpoint mode: "
        "metrics.json and the predictions)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --out (a folder's outputs of an earlier run are removed)",
    )
    thresholds = parser.add_argument_group("metric settings")
    thresholds.add_argument(
        "--alpha",
        type=float,
        help="relative binarisation threshold for every split kind (default: by split kind)",
    )
    thresholds.add_argument(
        "--alpha-for",
        action="append",
        default=[],
        metavar="KIND=A",
        help=f"override the alpha of one split kind ({', '.join(SPLIT_KINDS)})",
    )
    thresholds.add_argument("--split-kind", choices=SPLIT_KINDS, help="force the split kind")
    thresholds.add_argument(
        "--threshold-policy",
        metavar="POLICY",
        help=(
            "binarisation for iou/ciou/auc/ap: relative (map > alpha*max, DSOL), median (top "
            "half of the pixels, LVS/EZ-VSL/SLAVC), absolute (map >= T), minmax (min-max "
            "normalised map >= T) (default: the split's dataset preset, else relative)"
        ),
    )
    thresholds.add_argument(
        "--fixed-threshold",
        type=float,
        default=0.5,
        metavar="T",
        help="the value T of the absolute and minmax policies",
    )
    thresholds.add_argument(
        "--tau",
        type=float,
        default=0.5,
        help="absolute threshold for nsa/silent_fp/negative_fp/pia",
    )
    thresholds.add_argument("--grid", type=int, default=224, help="scoring grid side in pixels")
    thresholds.add_argument(
        "--iou-threshold", type=float, default=0.5, help="IoU success threshold (iou@T, AP hits)"
    )
    thresholds.add_argument(
        "--ciou-thresholds",
        type=float,
        nargs="+",
        default=[0.3, 0.5],
        help="CIoU success thresholds",
    )
    thresholds.add_argument(
        "--auc-step", type=float, default=0.05, help="spacing of the AUC success thresholds"
    )
    thresholds.add_argument(
        "--top-fraction",
        type=float,
        default=0.25,
        help="top pixel fraction averaged into a confidence",
    )
    thresholds.add_argument(
        "--ap-full-curve",
        action="store_true",
        help="AP from recall 0 (SLAVC skips its first point)",
    )
    thresholds.add_argument(
        "--consensus",
        action=argparse.BooleanOptionalAction,
        help=(
            "score objects with annotator boxes on Senocak's consensus map "
            "(default: on for the Flickr presets, else off)"
        ),
    )
    thresholds.add_argument(
        "--consensus-agreement",
        type=int,
        default=2,
        help="annotators needed for full weight in the consensus map",
    )
    thresholds.add_argument(
        "--missing",
        choices=("skip", "zero"),
        default="skip",
        help="samples without a prediction: skip (counted in n_missing) or score as all-zero maps",
    )
    parser.set_defaults(handler=_run, _evaluate_parser=parser)


def _settings(args: argparse.Namespace):
    from ier.protocol import EvalSettings  # lazy: keeps ier --help fast

    alpha_by_kind: dict[str, float] = {}
    for item in args.alpha_for:
        kind, sep, value = item.partition("=")
        if not sep or kind not in SPLIT_KINDS:
            raise ConfigError(
                f"--alpha-for expects KIND=A with KIND in {SPLIT_KINDS}, got {item!r}"
            )
        try:
            alpha_by_kind[kind] = float(value)
        except ValueError:
            raise ConfigError(f"--alpha-for {item!r}: {value!r} is not a number") from None
    return EvalSettings(
        grid=args.grid,
        alpha=args.alpha,
        alpha_by_kind=alpha_by_kind,
        split_kind=args.split_kind,
        threshold_policy=args.threshold_policy,
        fixed_threshold=args.fixed_threshold,
        tau=args.tau,
        iou_threshold=args.iou_threshold,
        ciou_thresholds=tuple(args.ciou_thresholds),
        auc_step=args.auc_step,
        top_fraction=args.top_fraction,
        ap_full_curve=args.ap_full_curve,
        consensus=args.consensus,
        consensus_agreement=args.consensus_agreement,
        missing=args.missing,
    )


def _check_mode(args: argparse.Namespace) -> str:
    """``"files"``, ``"checkpoint"`` (with --data) or ``"manifest"`` (checkpoint on a manifest);
    exits through ``parser.error`` on a bad combination."""
    parser: argparse.ArgumentParser = args._evaluate_parser
    if args.store_calibration and (args.checkpoint is None or args.data is None):
        parser.error("--store-calibration needs --checkpoint CKPT --data DIR")
    if args.store_calibration and args.object_prior is not None:
        parser.error(
            "--store-calibration with --object-prior would store an operating point fitted on "
            "gated maps into a checkpoint that does not gate them; train with --set "
            "model.object_prior=W instead"
        )
    if args.store_calibration:
        missing = [s for s in ("val/wild", "val/negative")
                   if not (args.data / s / "manifest.jsonl").is_file()]  # fmt: skip
        if missing:
            parser.error(
                f"--store-calibration needs the validation splits {', '.join(missing)} in "
                f"{args.data} (a benchmark from `ier scenes build` has them)"
            )
    if args.predictions is not None:
        extra = [f for f in ("checkpoint", "data", "splits", "object_prior")
                 if getattr(args, f) is not None]  # fmt: skip
        if extra:
            flags = ", ".join(f"--{f.replace('_', '-')}" for f in extra)
            parser.error(
                "use either --predictions/--manifest or --checkpoint with --data or --manifest, "
                f"not both (got --predictions and {flags})"
            )
        if args.manifest is None:
            parser.error("--predictions and --manifest must be given together")
        return "files"
    if args.checkpoint is not None:
        if args.data is not None and args.manifest is not None:
            parser.error("--checkpoint runs over --data DIR or over --manifest M.jsonl, not both")
        if args.data is not None:
            return "checkpoint"
        if args.manifest is not None:
            if args.splits is not None:
                parser.error("--splits needs --data (a benchmark folder), not --manifest")
            return "manifest"
        parser.error("--checkpoint and --data (or --manifest) must be given together")
    if args.data is not None or args.splits is not None:
        parser.error("--checkpoint and --data must be given together")
    if args.manifest is not None:
        parser.error("--manifest needs --predictions P.npz or --checkpoint CKPT")
    parser.error(
        "give --predictions P.npz --manifest M.jsonl, --checkpoint CKPT --data DIR, "
        "or --checkpoint CKPT --manifest M.jsonl"
    )
    raise AssertionError("unreachable")


def _run(args: argparse.Namespace) -> int:
    # lazy: keeps ier --help fast
    from ier.evaluate import format_results, format_table
    from ier.files import (
        atomic_write_json,
        check_output_file,
        check_output_folder,
        remove_stale_outputs,
    )

    mode = _check_mode(args)
    settings = _settings(args)
    if mode == "files":  # every check runs before any work
        if args.out is not None:
            check_output_file(args.out, overwrite=args.overwrite,
                              inputs=(args.predictions, args.manifest))  # fmt: skip
        from ier.manifest_eval import evaluate_predictions_file  # lazy: keeps ier --help fast

        results = evaluate_predictions_file(args.predictions, args.manifest, settings)
        print(format_table(results))
        if args.out is not None:
            atomic_write_json(args.out, results)
            print(f"wrote {args.out}")
        return 0
    from ier.localization import resolve_model_path  # lazy: keeps ier --help fast
    from ier.manifest_eval import MANIFEST_OUTPUTS  # lazy: keeps ier --help fast

    checkpoint = resolve_model_path(args.checkpoint)  # a bundled name or a file
    if args.store_calibration and Path(args.checkpoint) != checkpoint:
        raise ConfigError(
            f"--store-calibration writes into the checkpoint; {args.checkpoint!r} is a bundled "
            "model: export a copy first (ier.checkpoint.export_model) and calibrate that file"
        )
    outputs = CHECKPOINT_OUTPUTS
    if args.out is not None:
        check_output_folder(args.out, overwrite=args.overwrite, outputs=outputs,
                            inputs=(args.manifest,) if args.manifest else ())  # fmt: skip
    if mode == "manifest":
        from ier.manifest_eval import evaluate_checkpoint_on_manifest  # lazy: keeps ier --help fast

        results = evaluate_checkpoint_on_manifest(
            checkpoint, args.manifest, settings=settings, out_dir=args.out,
            object_prior=args.object_prior,
        )  # fmt: skip
        print(format_table(results))
        written = {args.out / name for name in MANIFEST_OUTPUTS} if args.out else set()
    else:
        from ier.inference import evaluate_checkpoint  # lazy: keeps ier --help fast

        all_results = evaluate_checkpoint(
            checkpoint, args.data, splits=args.splits, out_dir=args.out, settings=settings,
            object_prior=args.object_prior,
        )  # fmt: skip
        print(format_results(all_results or {}), end="\n\n")
        if args.store_calibration:
            from ier.inference import store_calibration  # lazy: keeps ier --help fast

            if not store_calibration(checkpoint, all_results):
                raise ConfigError(
                    f"{args.data}: no calibration to store (it needs the validation splits "
                    "val/wild and val/negative, and the default --splits or a test split)"
                )
            print(f"stored the calibrated operating point in {checkpoint}")
        written = set()
        if args.out is not None:
            written = {args.out / "metrics.json"} | {
                args.out / f"predictions_{split.split('/')[-1]}.npz" for split in all_results
            }
    if args.out is not None:
        for path in remove_stale_outputs(args.out, outputs, written):
            print(f"removed {path} (an earlier run's output)")
        print(f"wrote {args.out}")
    return 0
