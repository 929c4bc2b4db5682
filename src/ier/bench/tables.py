"""Bench outputs: ``results.json`` (every record), ``results.md`` (the paper-layout tables, the AII
table and wall times) and the figures of ``ier.bench.figures``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ier.bench.diagnostics import (
    POINTING_SPLITS,
    read_test_samples,
    run_diagnostics,
    uniform_reference,
)
from ier.bench.figures import bar_chart, qualitative_grid
from ier.bench.plan import BENCH_FILE, BENCH_PLANS, BenchConfig, order_records, provenance
from ier.bench.rows import Row, differs, group_rows, mean_std, row_label
from ier.data.datasets import read_classes
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
OPERATING_COLUMNS: tuple[Column, ...] = (
    ("τ (val.)", "calibration", "tau"),
    ("Silent FP syn. @τ ↓", "test/synthetic", "silent_fp@cal"),
    ("Silent FP wild @τ ↓", "test/wild", "silent_fp@cal"),
    ("Negative FP @τ ↓", "test/negative", "negative_fp@cal"),
    ("Pointing syn. @τ", "test/synthetic", "pointing_tau@cal"),
    ("Pointing duet @τ", "test/duet", "pointing_tau@cal"),
    ("Pointing wild @τ", "test/wild", "pointing_tau@cal"),
    ("Silent AUROC syn.", "test/synthetic", "silent_auroc"),
    ("Silent AUROC wild", "test/wild", "silent_auroc"),
    ("Peak AUROC wild/neg.", "test/wild+negative", "peak_auroc"),
)
"""The calibrated operating point (tau chosen per model on val/wild + val/negative, at a 5 % false-
positive budget) and the threshold-free, scale-free AUROCs (docs/metrics.md)."""
RAW_KEYS = {"tau"}
"""Columns shown as they are (not as percentages)."""
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


def _cell(values: Sequence[float], *, scale: float = 100.0, digits: int = 1, mark: int = 0) -> str:
    stats = mean_std(values)
    if stats is None:
        return "–"
    mean, std = stats
    text = f"{scale * mean:.{digits}f}"
    if len(values) > 1:
        text += f" ± {scale * std:.{digits}f}"
    return text + {1: " ▲", -1: " ▼", 0: ""}[mark]


MARK_LEGEND = (
    "▲ / ▼: the row's mean is above / below IEr's by more than the sum of the two standard "
    "deviations over seeds (their ±1 std intervals do not overlap)."
)


def _table(
    rows: Sequence[Row], columns: Sequence[Column], *, percent: bool = True,
    compare_to: Row | None = None,
) -> list[str]:  # fmt: skip
    lines = [
        "| Method | " + " | ".join(c[0] for c in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in rows:
        cells = []
        for _, source, key in columns:
            values = row.values(source, key)
            mark = 0
            if compare_to is not None and row is not compare_to and not row.ablation:
                mark = differs(values, compare_to.values(source, key))
            raw = not percent or key in RAW_KEYS
            cells.append(_cell(values, scale=1.0 if raw else 100.0, digits=3 if raw else 1,
                               mark=mark))  # fmt: skip
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines


def _time_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| Method | Seeds | Train (s, per seed) | Eval (s, per seed) | Total (s, all seeds) |",
        "|---|---:|---:|---:|---:|",
    ]
    train_all = evaluation_all = 0.0
    for row in rows:
        r0 = row.records[0]
        resumed = any(r.get("resumed") for r in row.records)
        note = " (resumed: this session's time)" if resumed else ""
        if r0.get("shared_from"):
            note += f" (stage {r0['start_stage']} on; earlier stages are {r0['shared_from']}'s)"
        train = [r["train_seconds"] for r in row.records]
        evaluation = [r["eval_seconds"] for r in row.records]
        train_all, evaluation_all = train_all + sum(train), evaluation_all + sum(evaluation)
        lines.append(
            f"| {row.label}{note} | {len(row.records)} | {_cell(train, scale=1.0)} | "
            f"{_cell(evaluation, scale=1.0)} | {sum(train) + sum(evaluation):.1f} |"
        )
    total = train_all + evaluation_all
    lines.append(
        f"| **All runs** | | {train_all:.1f} (sum) | {evaluation_all:.1f} (sum) | {total:.1f} "
        f"({total / 3600:.2f} h) |"
    )
    return lines


def diagnostics_table(rows: Sequence[Row], *, compare_to: Row | None = None) -> list[str]:
    """Pointing game per split and the peak AUROC (``ier.bench.diagnostics``), chance first."""

    names = [s.split("/")[-1] for s in POINTING_SPLITS]
    lines = [
        "| Method | " + " | ".join(f"Pointing {n}" for n in names) + " | Peak AUROC wild/neg. |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    chance: dict[str, float] = {}
    for row in rows:
        for d in row.diagnostics:
            chance.update({k: v for k, v in d["chance"].items() if v is not None})
    chance_cells = " | ".join(_cell([chance[s]] if s in chance else []) for s in POINTING_SPLITS)
    lines.append(f"| Chance (mean box area; AUROC 50) | {chance_cells} | 50.0 |")
    for row in rows:
        if not row.diagnostics:
            continue
        cells = []
        for kind, split in [*(("pointing", s) for s in POINTING_SPLITS), ("peak_auroc", None)]:
            values = row.diagnostic_values(kind, split)
            mark = 0
            if compare_to is not None and row is not compare_to and not row.ablation:
                mark = differs(values, compare_to.diagnostic_values(kind, split))
            cells.append(_cell(values, mark=mark))
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return lines


def aggregate(rows: Sequence[Row]) -> dict[str, Any]:
    """Every table column's mean, standard deviation and seeds, per run name (results.json)."""

    out: dict[str, Any] = {}
    for row in rows:
        entry: dict[str, Any] = {"label": row.label, "seeds": row.seeds}
        for _, source, key in (*LOCALIZATION_COLUMNS, *INTERFERENCE_COLUMNS, *OPERATING_COLUMNS,
                               *AII_COLUMNS):  # fmt: skip
            stats = mean_std(row.values(source, key))
            if stats is not None:
                entry[f"{source}:{key}"] = {"mean": stats[0], "std": stats[1],
                                            "n": len(row.values(source, key))}  # fmt: skip
        for kind, split in [*(("pointing", s) for s in POINTING_SPLITS), ("peak_auroc", None)]:
            values = row.diagnostic_values(kind, split)
            if values:
                mean, std = mean_std(values)
                entry[f"{split}:{kind}" if split else kind] = {"mean": mean, "std": std,
                                                                "n": len(values)}  # fmt: skip
        out[row.name] = entry
    return out


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
    tables; ``diagnostics`` (run folder -> ``ier.bench.diagnostics.run_diagnostics``) add their
    table. With several training seeds every cell is mean ± standard deviation and the methods'
    cells are marked where they differ from IEr by more than that spread."""
    rows = group_rows(records, diagnostics)
    by_name = {row.name: row for row in rows}
    aii = [by_name[name] for name in AII_RUNS if name in by_name]
    reference_rows = [Row(r["name"], row_label(r), False, [r]) for r in references]
    scored = [*reference_rows, *rows]
    ier_row = by_name.get("ier")
    seeds = sorted({s for row in rows for s in row.seeds})
    training = BENCH_PLANS[config.preset].training
    parts = [
        f"# Bench results (preset `{config.preset}`)",
        "",
        _benchmark_line(data_dir),
        "",
        f"Every run trains at the `{training}` training preset (`ier train --preset {training}`): "
        "the same model size and the same passes over each training split for every method. "
        "The IEr ablations re-train only the stages they "
        "change, from the full IEr run's snapshot of the stage before (same seed).",
        "",
        f"Training seeds: {', '.join(map(str, seeds))}."
        + (f" Cells are mean ± standard deviation over the seeds. {MARK_LEGEND}"
           if len(seeds) > 1 else ""),
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
        *_table(scored, LOCALIZATION_COLUMNS, compare_to=ier_row),
        "",
        "## Interference: silent objects, off-screen sound, negatives",
        "",
        *_table(scored, INTERFERENCE_COLUMNS, compare_to=ier_row),
        "",
        "## Interference at each model's calibrated operating point, and threshold-free",
        "",
        "The published columns above use a fixed tau = 0.5, which measures a map's scale as "
        "much as its selectivity (a map that never reaches 0.5 scores 0). Here each model gets "
        "its own tau, chosen on the validation splits val/wild + val/negative (training assets "
        "only, never the test splits): the smallest tau at which at most 5 % of the validation "
        "negatives fire and at most 5 % of the validation silent objects are marked. At that tau: "
        "the silent and negative false-positive rates on test, and the pointing game counting a "
        "hit only when the peak also exceeds tau. The AUROCs need no threshold: silent objects' "
        "in-box map peak against sounding objects', and clip peaks of test/wild against "
        "test/negative (50 = no better than chance).",
        "",
        *_table(scored, OPERATING_COLUMNS, compare_to=ier_row),
        "",
    ]
    if aii:
        parts += [
            "## Audio-Instance-Identifier (NMI / precision / recall / mAP, fractions)",
            "",
            "NMI: identity scores vs categories on test/solo; P, R, mAP: categories heard in "
            "test/synthetic (and test/wild) mixtures.",
            "",
            *_table(aii, AII_COLUMNS, percent=False, compare_to=ier_row),
            "",
        ]
    if any(row.diagnostics for row in rows):
        parts += [
            "## Diagnostics from the saved maps (pointing game, peak AUROC)",
            "",
            "Pointing: the peak cell of the sounding object's class map (a class-agnostic "
            "method's one map) inside its box; blind to a map's floor, which alpha = 0.1 "
            "punishes on solo. Peak AUROC: each clip's map peak, test/wild clips with on-screen "
            "sound against test/negative clips; 50 = the maps ignore the sound, and unlike the "
            "tau-based rates it does not depend on the maps' scale (`ier.bench.diagnostics`).",
            "",
            *diagnostics_table(rows, compare_to=ier_row),
            "",
        ]
    parts += [
        "## Wall time per run",
        "",
        *_time_table(rows),
        "",
        f"Figures (seed {seeds[0] if seeds else 0}): `bars.png` (main metrics), `qualitative.png` "
        "(the same test samples, one row per method).",
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

    ordered = order_records(records)
    samples, classes = read_test_samples(data_dir), read_classes(data_dir)
    references = [uniform_reference(samples, classes)]
    diagnostics = {
        r["run_dir"]: run_diagnostics(out_dir / "runs" / r["run_dir"] / "eval", samples, classes)
        for r in ordered
        if (out_dir / "runs" / r["run_dir"] / "eval").is_dir()
    }
    rows = group_rows(ordered, diagnostics)
    first_seed = min((r.get("seed", 0) for r in ordered), default=0)
    figure_records = [r for r in ordered if r.get("seed", 0) == first_seed]
    marker = out_dir / BENCH_FILE
    started = json.loads(marker.read_text(encoding="utf-8")).get("started") if marker.is_file() \
        else None
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
            "train_preset": BENCH_PLANS[config.preset].training,
            "data_dir": str(data_dir),
            "seeds": sorted({r.get("seed", 0) for r in ordered}),
            "provenance": {"started": started, "reported": provenance()},
            "columns": {
                "localization": [list(c) for c in LOCALIZATION_COLUMNS],
                "interference": [list(c) for c in INTERFERENCE_COLUMNS],
                "operating_point": [list(c) for c in OPERATING_COLUMNS],
                "aii": [list(c) for c in AII_COLUMNS],
            },
            "references": references,
            "aggregate": aggregate(rows),
            "diagnostics": diagnostics,
            "runs": ordered,
        },
        default=str,
    )
    atomic_write_text(
        files["markdown"], markdown(ordered, data_dir, config, references, diagnostics)
    )
    bar_chart(figure_records, files["bars"])
    qualitative_grid(
        figure_records, out_dir / "runs", data_dir, files["qualitative"],
        samples=config.qualitative_samples,
    )  # fmt: skip
    return files
