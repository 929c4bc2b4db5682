"""Bench outputs: ``results.json`` (every record), ``results.md`` (the paper-layout tables, the AII
table and wall times) and the figures of ``ier.bench.figures``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ier.bench.runner import TRAIN_PRESET, BenchConfig, order_records
from ier.files import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

Column = tuple[str, str, str]
"""(header, source, metric key); source is a split name or ``extended`` (solo + negative)."""

LOCALIZATION_COLUMNS: tuple[Column, ...] = (
    ("Solo IoU@0.5", "test/solo", "iou@0.5"),
    ("Solo AUC", "test/solo", "auc"),
    ("Syn. CIoU@0.3", "test/synthetic", "ciou@0.3"),
    ("Syn. AUC", "test/synthetic", "ciou_auc"),
    ("Duet CIoU@0.3", "test/duet", "ciou@0.3"),
    ("Duet AUC", "test/duet", "ciou_auc"),
    ("Wild CIoU@0.3", "test/wild", "ciou@0.3"),
    ("Wild AUC", "test/wild", "ciou_auc"),
)
INTERFERENCE_COLUMNS: tuple[Column, ...] = (
    ("Silent FP syn. ↓", "test/synthetic", "silent_fp"),
    ("Silent FP wild ↓", "test/wild", "silent_fp"),
    ("NSA syn.", "test/synthetic", "nsa"),
    ("NSA duet", "test/duet", "nsa"),
    ("NSA wild", "test/wild", "nsa"),
    ("Negative FP ↓", "test/negative", "negative_fp"),
    ("AP", "extended", "ap"),
    ("max-F1", "extended", "max_f1"),
)
AII_COLUMNS: tuple[Column, ...] = (
    ("NMI", "test/solo", "aii_nmi"),
    ("P", "test/synthetic", "aii_precision"),
    ("R", "test/synthetic", "aii_recall"),
    ("mAP", "test/synthetic", "aii_map"),
    ("P wild", "test/wild", "aii_precision"),
    ("R wild", "test/wild", "aii_recall"),
    ("mAP wild", "test/wild", "aii_map"),
)
AII_RUNS = ("ier-no-aii", "ier-aii-no-curriculum", "ier")
"""The paper's AII ablation rows: single vector, AII w/o curriculum, AII with curriculum."""


def metric(record: dict[str, Any], source: str, key: str) -> float | None:
    """A record's value of ``key`` on ``source`` (a split or ``extended``), or None."""
    values = record.get("extended") if source == "extended" else record["metrics"].get(source)
    value = (values or {}).get(key)
    return None if value is None else float(value)


def _label(record: dict[str, Any]) -> str:
    label = record.get("label") or record["name"]
    return f"↳ {label}" if record.get("ablation") else label


def _table(
    records: Sequence[dict[str, Any]], columns: Sequence[Column], *, percent: bool = True
) -> list[str]:
    lines = [
        "| Method | " + " | ".join(c[0] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for record in records:
        cells = []
        for _, source, key in columns:
            value = metric(record, source, key)
            if value is None:
                cells.append("–")
            else:
                cells.append(f"{100 * value:.1f}" if percent else f"{value:.3f}")
        lines.append(f"| {_label(record)} | " + " | ".join(cells) + " |")
    return lines


def _time_table(records: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| Method | Train (s) | Eval (s) | Total (s) |", "|---|---:|---:|---:|"]
    for r in records:
        note = " (resumed: this session's time)" if r.get("resumed") else ""
        if r.get("shared_from"):
            note += f" (stage {r['start_stage']} on; earlier stages are {r['shared_from']}'s)"
        total = r["train_seconds"] + r["eval_seconds"]
        lines.append(
            f"| {_label(r)}{note} | {r['train_seconds']:.1f} | {r['eval_seconds']:.1f} | "
            f"{total:.1f} |"
        )
    train = sum(r["train_seconds"] for r in records)
    evaluation = sum(r["eval_seconds"] for r in records)
    lines.append(
        f"| **All runs** | {train:.1f} | {evaluation:.1f} | {train + evaluation:.1f} "
        f"({(train + evaluation) / 3600:.2f} h) |"
    )
    return lines


def diagnostics_table(
    records: Sequence[dict[str, Any]], diagnostics: Mapping[str, dict[str, Any]]
) -> list[str]:
    """Pointing game per split and the peak AUROC (``ier.bench.diagnostics``), chance first."""
    from ier.bench.diagnostics import POINTING_SPLITS

    def cell(value: float | None) -> str:
        return "–" if value is None else f"{100 * value:.1f}"

    names = [s.split("/")[-1] for s in POINTING_SPLITS]
    lines = [
        "| Method | " + " | ".join(f"Pointing {n}" for n in names) + " | Peak AUROC wild/neg. |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    chance: dict[str, float] = {}
    for d in diagnostics.values():
        chance.update({k: v for k, v in d["chance"].items() if v is not None})
    chance_cells = " | ".join(cell(chance.get(s)) for s in POINTING_SPLITS)
    lines.append(f"| Chance (mean box area; AUROC 50) | {chance_cells} | 50.0 |")
    for r in records:
        d = diagnostics.get(r["name"])
        if d is None:
            continue
        cells = [cell(d["pointing"].get(s)) for s in POINTING_SPLITS] + [cell(d["peak_auroc"])]
        lines.append(f"| {_label(r)} | " + " | ".join(cells) + " |")
    return lines


def _benchmark_line(data_dir: Path) -> str:
    info_path = data_dir / "benchmark.json"
    if not info_path.is_file():
        return f"Data: `{data_dir}` (prepared dataset)."
    info = json.loads(info_path.read_text(encoding="utf-8"))
    return (
        f"Data: built-in benchmark `{data_dir}` (preset {info.get('preset')}, seed "
        f"{info.get('seed')}, {info.get('size')} px, {len(info.get('classes', []))} classes)."
    )


def markdown(
    records: Sequence[dict[str, Any]],
    data_dir: Path,
    config: BenchConfig,
    references: Sequence[dict[str, Any]] = (),
    diagnostics: Mapping[str, dict[str, Any]] | None = None,
) -> str:
    """The whole ``results.md`` text; ``references`` (e.g. the uniform map) head the metric
    tables; ``diagnostics`` (run name -> ``ier.bench.diagnostics.run_diagnostics``) add their
    table."""
    records = order_records(records)
    aii = [r for name in AII_RUNS for r in records if r["name"] == name]
    scored = [*references, *records]
    parts = [
        f"# Bench results (preset `{config.preset}`)",
        "",
        _benchmark_line(data_dir),
        "",
        f"Every run trains at the `{TRAIN_PRESET[config.preset]}` training preset (`ier train "
        f"--preset {TRAIN_PRESET[config.preset]}`): the same model size and the same passes over "
        "each training split for every method. The IEr ablations re-train only the stages they "
        "change, from the full IEr run's snapshot of the stage before.",
        "",
        "Values are percentages. Maps are binarised at alpha x max (solo 0.1, synthetic and wild "
        "0.5, duet 0.2; DSOL's protocol), CIoU is a success rate at 0.3, AUC spans thresholds "
        "0-1. Class-agnostic methods give every category the same map (method.md Q15). Solo "
        "splits use each method's single-source map; AP and max-F1 score those maps on test/solo "
        "positives plus test/negative negatives (SLAVC's extended protocol). ↓: lower is better. "
        "docs/metrics.md defines every metric; docs/baselines.md every method.",
        "",
        *(
            [
                "The first row is a reference, not a method: maps of 0.5 everywhere, with no "
                "model and no audio. Its AUC is each split's chance level; its false-positive "
                "columns are 0 by construction (0.5 never exceeds tau = 0.5).",
                "",
            ]
            if references
            else []
        ),
        "## Localization (the paper's table layout)",
        "",
        *_table(scored, LOCALIZATION_COLUMNS),
        "",
        "## Interference: silent objects, off-screen sound, negatives",
        "",
        *_table(scored, INTERFERENCE_COLUMNS),
        "",
    ]
    if aii:
        parts += [
            "## Audio-Instance-Identifier (NMI / precision / recall / mAP, fractions)",
            "",
            "NMI: identity scores vs categories on test/solo; P, R, mAP: categories heard in "
            "test/synthetic (and test/wild) mixtures.",
            "",
            *_table(aii, AII_COLUMNS, percent=False),
            "",
        ]
    if diagnostics:
        parts += [
            "## Diagnostics from the saved maps (pointing game, peak AUROC)",
            "",
            "Pointing: the peak cell of the sounding object's class map (a class-agnostic "
            "method's one map) inside its box; blind to a map's floor, which alpha = 0.1 "
            "punishes on solo. Peak AUROC: each clip's map peak, test/wild clips with on-screen "
            "sound against test/negative clips; 50 = the maps ignore the sound, and unlike the "
            "tau-based rates it does not depend on the maps' scale (`ier.bench.diagnostics`).",
            "",
            *diagnostics_table(records, diagnostics),
            "",
        ]
    parts += [
        "## Wall time per run",
        "",
        *_time_table(records),
        "",
        "Figures: `bars.png` (main metrics), `qualitative.png` (the same test samples, one row "
        "per method).",
        "",
    ]
    return "\n".join(parts)


def write_reports(
    records: Sequence[dict[str, Any]],
    out_dir: Path,
    data_dir: Path,
    *,
    config: BenchConfig,
) -> dict[str, Path]:
    """Write ``results.json``, ``results.md``, ``bars.png`` and ``qualitative.png`` in ``out_dir``.
    The uniform-map reference row (JSON and metric tables only, not the figures or the wall-time
    table) and each run's diagnostics come from ``ier.bench.diagnostics``, with the test
    manifests read once.

    Returns:
        Paths by kind: ``json``, ``markdown``, ``bars``, ``qualitative``.
    """
    from ier.bench.diagnostics import read_test_samples, run_diagnostics, uniform_reference
    from ier.bench.figures import bar_chart, qualitative_grid
    from ier.data.datasets import read_classes

    ordered = order_records(records)
    samples, classes = read_test_samples(data_dir), read_classes(data_dir)
    references = [uniform_reference(samples, classes)]
    diagnostics = {
        r["name"]: run_diagnostics(out_dir / "runs" / r["name"] / "eval", samples, classes)
        for r in ordered
        if (out_dir / "runs" / r["name"] / "eval").is_dir()
    }
    files = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "bars": out_dir / "bars.png",
        "qualitative": out_dir / "qualitative.png",
    }
    atomic_write_json(
        files["json"],
        {
            "preset": config.preset,
            "data_dir": str(data_dir),
            "columns": {
                "localization": [list(c) for c in LOCALIZATION_COLUMNS],
                "interference": [list(c) for c in INTERFERENCE_COLUMNS],
                "aii": [list(c) for c in AII_COLUMNS],
            },
            "references": references,
            "diagnostics": diagnostics,
            "runs": ordered,
        },
        default=str,
    )
    atomic_write_text(
        files["markdown"], markdown(ordered, data_dir, config, references, diagnostics)
    )
    bar_chart(ordered, files["bars"])
    qualitative_grid(
        ordered, out_dir / "runs", data_dir, files["qualitative"],
        samples=config.qualitative_samples,
    )  # fmt: skip
    return files
