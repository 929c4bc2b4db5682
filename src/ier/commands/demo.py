"""``ier demo``: compose a few benchmark test clips, localize them with the bundled model, and
write overlay videos, one report per clip and an index page."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from ier.localization import DEFAULT_MODEL, LocalizationResult
from ier.video import load_frames

logger = logging.getLogger(__name__)

# (split, index) of the benchmark test clips the demo composes: wild scenes (silent objects,
# off-screen sounds, noise) and clean duets. The same (seed, split, index) as ``ier scenes``.
DEMO_CLIPS: tuple[tuple[str, int], ...] = (
    ("test/wild", 0), ("test/wild", 1), ("test/wild", 2), ("test/duet", 0), ("test/duet", 1),
)  # fmt: skip


def compose_clips(
    out_dir: Path,
    clips: tuple[tuple[str, int], ...] = DEMO_CLIPS,
    *,
    seed: int = 0,
    size: int = 224,
) -> list[tuple[Path, dict[str, Any]]]:
    """Render benchmark clips with the scenes package (same seeds as a full build).

    Returns:
        (mp4 path, manifest record) per clip, written under ``out_dir/clips``.

    Raises:
        AssetError: The benchmark's asset packages are not installed (the message names them).
    """
    from ier.audio import SAMPLE_RATE
    from ier.scenes import assets
    from ier.scenes.build import REQUIRED_SOURCES, SPLITS, clip_id, clip_rng
    from ier.scenes.mp4 import write_clip
    from ier.scenes.recipes import RECIPES
    from ier.scenes.render import ClipFormat, render_clip

    assets.require_sources(REQUIRED_SOURCES)
    fmt = ClipFormat(size=size)
    written = []
    for split, index in clips:
        cid = clip_id(split, index)
        kind, side = SPLITS[split]
        rng = clip_rng(seed, split, index)
        plan = RECIPES[kind](rng, index, side)
        path = out_dir / "clips" / f"{cid}.mp4"
        frames, audio, record = render_clip(plan, rng, fmt, clip_id=cid, video=f"clips/{cid}.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(path, frames, fps=fmt.fps, audio=audio, sample_rate=SAMPLE_RATE)
        written.append((path, record))
    return written


def _truth(record: dict[str, Any]) -> str:
    sounding = [o["label"] for o in record.get("objects", []) if o.get("sounding")]
    silent = [o["label"] for o in record.get("objects", []) if not o.get("sounding")]
    parts = [f"sounding: {', '.join(sounding) or '-'}", f"silent: {', '.join(silent) or '-'}"]
    if record.get("offscreen"):
        parts.append(f"off-screen: {', '.join(record['offscreen'])}")
    return "truth: " + "; ".join(parts)


def _found(result: LocalizationResult) -> str:
    states: dict[str, Counter] = {}
    for window in result.windows:
        for item in window.classes:
            if item.state != "absent":
                states.setdefault(item.state, Counter())[item.name] += 1
    parts = [f"{state}: {', '.join(names)}" for state, names in sorted(states.items())]
    return "found: " + ("; ".join(parts) or "nothing")


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    model: nn.Module | str = DEFAULT_MODEL,
    clips: tuple[tuple[str, int], ...] = DEMO_CLIPS,
    overwrite: bool = False,
) -> Path:
    """Compose ``clips``, localize each with ``model``, write reports and ``index.html``.

    Layout: ``OUT/clips/<id>.mp4`` (inputs), ``OUT/<id>/{overlay.mp4, localization.json,
    report.html}`` and ``OUT/index.html``.

    Returns:
        The path of ``index.html``.

    Raises:
        CheckpointError: The bundled model's weights are not installed.
        AssetError: The benchmark's asset packages are not installed.
        IerError: The output folder exists and is not empty (without ``overwrite``).
    """
    from ier.localization import load_model, localize, prepare_out_dir

    net = load_model(model) if isinstance(model, str) else model  # fails first if not installed
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    entries, thumbnails, started = [], [], time.perf_counter()
    for path, record in compose_clips(out, clips):
        name = path.stem
        result = localize(path, model=net, out_dir=out / name, overwrite=True)
        entries.append({
            "name": name, "report": f"{name}/report.html", "truth": _truth(record),
            "found": _found(result), "windows": len(result.windows),
        })  # fmt: skip
        logger.info("%s: %s | %s", name, entries[-1]["truth"], entries[-1]["found"])
        middle = result.windows[len(result.windows) // 2].time_seconds
        thumbnails.append(load_frames(result.outputs["overlay"], [middle])[0])
    from ier.report import render_index

    index = out / "index.html"
    items = [
        {**e, "summary": f"{e['truth']} — {e['found']}", "thumbnail": thumb}
        for e, thumb in zip(entries, thumbnails)
    ]
    index.write_text(render_index(items, title="ier demo: localization on benchmark clips"))
    summary = {"clips": entries, "seconds": round(time.perf_counter() - started, 1)}
    (out / "demo.json").write_text(json.dumps(summary, indent=1))
    return index


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` sub-parser."""
    parser = subparsers.add_parser(
        "demo",
        help="localize sounding objects in a few benchmark clips with the bundled model",
        description=(
            "Compose a few test clips of the built-in benchmark from the installed assets, "
            f"localize them with the bundled model ({DEFAULT_MODEL}) and write overlay videos, "
            "one HTML report per clip and OUT/index.html."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-o", "--out", type=Path, default=Path("ier_demo"), help="output folder")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="bundled model or checkpoint")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace outputs in an existing non-empty folder"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler: run the demo and print where to look."""
    index = run_demo(args.out, model=args.model, overwrite=args.overwrite)
    print(f"ier demo: open {index.resolve()} in a browser")
    print(f"  (one folder per clip under {index.parent}: overlay.mp4, report.html, JSON)")
    return 0
