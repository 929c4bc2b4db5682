"""``ier localize``: sliding-window localization of one video -> overlay, JSON and HTML report."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from ier.bundled import DEFAULT_MODEL

if TYPE_CHECKING:
    from ier.localization import LocalizationResult


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``localize`` sub-parser."""
    parser = subparsers.add_parser(
        "localize",
        help="localize sounding objects over a whole video (overlay.mp4, JSON, HTML report)",
        description=(
            "Slide a window over VIDEO, run the model on each window's centre frame and audio, "
            "smooth over time, and decide per class: sounding-on-screen, visible-silent, "
            "heard-off-screen or absent. Writes OUT/overlay.mp4 (with the original audio), "
            "OUT/localization.json, OUT/report.html and optionally OUT/maps.npz "
            "(docs/localize.md)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("video", type=Path, help="video file with a video and an audio stream")
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="bundled model name or checkpoint path"
    )
    parser.add_argument("-o", "--out", type=Path, help="output folder (None: ./<video stem>_ier)")
    add_window_options(parser)
    parser.add_argument("--save-maps", action="store_true", help="also write maps.npz")
    parser.add_argument("--no-overlay", action="store_true", help="skip overlay.mp4")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the outputs of an earlier run in a non-empty folder (and remove those "
        "this run does not write)",
    )
    parser.add_argument("--device", default="cpu", help="torch device for the model")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads for the model (default: all cores but one, which decoding and the "
        "overlay use)",
    )
    parser.set_defaults(handler=run)


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """Window, hop, smoothing and threshold flags (shared with ``ier demo``)."""
    parser.add_argument("--window", type=float, default=1.0, help="window length, seconds")
    parser.add_argument("--hop", type=float, default=0.5, help="step between windows, seconds")
    parser.add_argument(
        "--smoothing", type=float, default=0.3, help="EMA weight on the previous window (0 = off)"
    )
    parser.add_argument(
        "--threshold", type=float, default=None,
        help="decision threshold: on the calibrated presence when the model stores one (IEr "
        "checkpoints from ier train/bench, the bundled model), else on the score and map peak "
        "(default: the model's threshold calibrated on validation splits, stored in its "
        "checkpoint; 0.5 for a model without one; docs/localize.md)",
    )  # fmt: skip


def summarize(result: LocalizationResult) -> str:
    """A few lines: per class, in how many windows it was in each state; notes on the input;
    the output files; and how long the run took."""
    n = len(result.windows)
    lines = [
        f"{result.video_path}: {n} windows of {result.settings.window_seconds:g} s every "
        f"{result.settings.hop_seconds:g} s, model {result.model_name}"
    ]
    active = []
    for index, name in enumerate(result.classes):
        counts = Counter(w.classes[index].state for w in result.windows)
        states = [(state, k) for state, k in counts.most_common() if state != "absent"]
        if states:
            shown = ", ".join(f"{state} in {k} of {n} windows" for state, k in states)
            active.append(f"  {name}: {shown}")
    lines += active or [f"  every class is absent in all {n} windows"]
    sounding = any(c.state == "sounding-on-screen" for w in result.windows for c in w.classes)
    if result.windows and not sounding:
        # lazy: keeps ier --help fast
        from ier.localization import drawing_threshold, strongest_candidates

        best = strongest_candidates(result.to_dict(), 1)[0]
        lines.append(
            f"  nothing was drawn as sounding (threshold {best['threshold']:.3f}); the strongest "
            f"candidate was {best['name']}, {best['evidence']:.2f} at {best['time_seconds']:.2f} "
            f"s: --threshold {drawing_threshold(best['evidence']):.2f} would draw it"
        )
    lines += [f"  note: {note}" for note in result.notes]
    lines += [f"  wrote {path}" for path in result.outputs.values()]
    timings = result.timings
    lines.append(
        f"  processed {result.video.duration_seconds:.1f} s of video in {timings['total']:.1f} s "
        f"(model {timings['model']:.1f} s)"
    )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Handler: check everything, load the model, localize, print a summary."""
    # lazy: keeps ier --help fast
    from ier.devices import resolve_device
    from ier.localization import (
        DecisionRule,
        LocalizeSettings,
        check_out_dir,
        check_outputs_spare_input,
        check_video,
        default_threads,
        fast_inference,
        load_model,
        localize,
    )

    out = args.out if args.out is not None else Path(f"{args.video.stem}_ier")
    settings = LocalizeSettings(
        window_seconds=args.window,
        hop_seconds=args.hop,
        smoothing=args.smoothing,
        rule=DecisionRule(score_threshold=args.threshold, peak_threshold=args.threshold),
        threads=args.threads if args.threads is not None else default_threads(),
    )  # bad values, a bad video, device or output folder are reported before the model loads
    check_video(args.video, args.window)
    check_outputs_spare_input(args.video, out)
    check_out_dir(out, overwrite=args.overwrite)
    device = resolve_device(args.device)
    model = fast_inference(load_model(args.model)).to(device)
    result = localize(
        args.video,
        model=model,
        settings=settings,
        out_dir=out,
        overwrite=args.overwrite,
        save_maps=args.save_maps,
        write_overlay=not args.no_overlay,
        write_report=not args.no_report,
        progress=True,
    )
    print(summarize(result))
    return 0
