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
from typing import TYPE_CHECKING, Any

from ier.bundled import DEFAULT_MODEL

if TYPE_CHECKING:
    from torch import nn

    from ier.localization import LocalizationResult

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
    # lazy: keeps ier --help fast
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


TRUTH_WORDS = {"sounding": "sounding-on-screen", "silent": "visible-silent",
               "off-screen": "heard-off-screen"}  # fmt: skip


def _truth_states(record: dict[str, Any]) -> dict[str, str]:
    """Class -> the state the scene record says it is in (sounding beats silent)."""
    truth: dict[str, str] = {}
    for obj in record.get("objects", []):
        if obj.get("sounding"):
            truth[obj["label"]] = "sounding-on-screen"
        else:
            truth.setdefault(obj["label"], "visible-silent")
    for label in record.get("offscreen", []):
        truth.setdefault(label, "heard-off-screen")
    return truth


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
    if "sounding-on-screen" not in states and result.windows:
        # lazy: keeps ier --help fast
        from ier.localization import strongest_candidates

        best = strongest_candidates(result.to_dict(), 1)[0]
        parts.append(f"closest to sounding: {best['name']} ({best['evidence']:.2f}, "
                     f"threshold {best['threshold']:.2f})")  # fmt: skip
    return "found: " + ("; ".join(parts) or "nothing")


def truth_table(result: LocalizationResult, record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per class that is in the scene or that the model found in some window: its true
    state, the state it was found in most often (with the number of windows), the windows in
    the true state, the mean model score, and whether the two agree."""
    truth = _truth_states(record)
    n = len(result.windows)
    rows = []
    for index, name in enumerate(result.classes):
        states = Counter(w.classes[index].state for w in result.windows)
        found = [(state, k) for state, k in states.most_common() if state != "absent"]
        if name not in truth and not found:
            continue
        expected = truth.get(name, "absent")
        top_state, top_count = found[0] if found else ("absent", states.get("absent", 0))
        scores = [w.classes[index].score for w in result.windows]
        rows.append({
            "class": name, "truth": expected, "found": top_state, "found_windows": top_count,
            "truth_windows": states.get(expected, 0), "windows": n,
            "mean_score": sum(scores) / max(n, 1), "agrees": top_state == expected,
        })  # fmt: skip
    rows.sort(key=lambda row: (row["truth"] == "absent", row["class"]))
    return rows


def clip_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A clip's summary: true classes found in their true state (most often), classes reported
    that are not in the scene, and the share of (class, window) pairs in the true state."""
    real = [r for r in rows if r["truth"] != "absent"]
    windows = sum(r["windows"] for r in real)
    return {
        "truth_classes": len(real),
        "agreeing_classes": sum(r["agrees"] for r in real),
        "extra_classes": sum(1 for r in rows if r["truth"] == "absent"),
        "window_agreement": sum(r["truth_windows"] for r in real) / windows if windows else None,
    }


def run_demo(
    out_dir: str | os.PathLike[str],
    *,
    model: nn.Module | str = DEFAULT_MODEL,
    clips: tuple[tuple[str, int], ...] = DEMO_CLIPS,
    overwrite: bool = False,
) -> Path:
    """Compose ``clips``, localize each with ``model``, write reports and ``index.html``.

    Layout: ``OUT/clips/<id>.mp4`` (inputs), ``OUT/<id>/{overlay.mp4, localization.json,
    report.html}`` and ``OUT/index.html`` (the model's measured quality with a link to its
    card, scores per clip, and a truth-versus-found table per clip).

    Returns:
        The path of ``index.html``.

    Raises:
        CheckpointError: The bundled model's weights are not installed.
        AssetError: The benchmark's asset packages are not installed.
        IerError: The output folder exists and is not empty (without ``overwrite``).
    """
    # lazy: keeps ier --help fast
    from ier.bundled import card_location
    from ier.localization import load_model, localize, model_card, prepare_out_dir
    from ier.localization.html import render_index
    from ier.video import load_frames

    net = load_model(model) if isinstance(model, str) else model  # fails first if not installed
    quality, card = model_card(net)
    out = prepare_out_dir(out_dir, overwrite=overwrite)
    entries, thumbnails, started = [], [], time.perf_counter()
    for path, record in compose_clips(out, clips):
        name = path.stem
        result = localize(path, model=net, out_dir=out / name, overwrite=True)
        rows = truth_table(result, record)
        entries.append({
            "name": name, "report": f"{name}/report.html", "truth": _truth(record),
            "found": _found(result), "windows": len(result.windows), "table": rows,
            "scores": clip_scores(rows),
        })  # fmt: skip
        logger.info("%s: %s | %s", name, entries[-1]["truth"], entries[-1]["found"])
        middle = result.windows[len(result.windows) // 2].time_seconds
        thumbnails.append(load_frames(result.outputs["overlay"], [middle])[0])
    index = out / "index.html"
    items = [
        {**e, "summary": f"{e['truth']} — {e['found']}", "thumbnail": thumb}
        for e, thumb in zip(entries, thumbnails)
    ]
    model_name = getattr(net, "name", None) or type(net).__name__
    index.write_text(render_index(
        items, title="ier demo: localization on benchmark clips",
        model={"name": str(model_name), "quality": quality, "card": card_location(card)},
    ))  # fmt: skip
    summary = {
        "model": {"name": str(model_name), "quality": quality, "card": card_location(card)},
        "clips": entries, "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
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
    """Handler: run the demo and print where to look, and how good the model is."""
    index = run_demo(args.out, model=args.model, overwrite=args.overwrite)
    summary = json.loads((index.parent / "demo.json").read_text())
    model = summary["model"]
    print(f"ier demo: open {index.resolve()} in a browser")
    print(f"  (one folder per clip under {index.parent}: overlay.mp4, report.html, JSON)")
    print(f"  model {model['name']}: {model['quality']} (card: {model['card']})")
    return 0
