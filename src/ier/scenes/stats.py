"""Checks and statistics of a built benchmark, from its manifests' provenance."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ier.audio import SAMPLE_RATE
from ier.errors import DatasetError
from ier.scenes import assets, catalog
from ier.scenes.build import BENCHMARK_FILE, DIAGNOSTIC_SPLITS, SPLITS

_RANGE_EPS = 1e-3  # seconds; ranges touching within this are not an overlap


def _load_records(root: Path, split: str) -> list[dict[str, Any]]:
    path = root / split / "manifest.jsonl"
    if not path.is_file():
        raise DatasetError(f"{path} is missing; is {root} a finished `ier scenes build` folder?")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_benchmark(root: str | Path) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """``(benchmark.json, {split: manifest records})`` of a built benchmark folder."""
    root = Path(root)
    info_path = root / BENCHMARK_FILE
    if not info_path.is_file():
        raise DatasetError(f"{info_path} is missing; build the benchmark with `ier scenes build`")
    info = json.loads(info_path.read_text(encoding="utf-8"))
    return info, {split: _load_records(root, split) for split in info.get("splits", SPLITS)}


def _usage(records: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Asset id -> list of used ranges (seconds; images use (0, inf))."""
    used: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for record in records:
        for src in record.get("sources") or []:
            asset = src.get("asset", "")
            if asset.startswith(("generated:", "soundfont:")):
                continue
            if "start_seconds" in src:
                used[asset].append((float(src["start_seconds"]), float(src["end_seconds"])))
            else:
                used[asset].append((0.0, float("inf")))
    return used


def _merge(ranges: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(ranges):
        if merged and a < merged[-1][1] - _RANGE_EPS:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def train_test_overlaps(records_by_split: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Assets (or time ranges of a recording) used by both a train and a test split."""
    train = _usage([r for s, rs in records_by_split.items()
                    if s.startswith(("train/", "val/")) for r in rs])  # fmt: skip
    test = _usage([r for s, rs in records_by_split.items() if s.startswith("test/") for r in rs])
    problems = []
    for asset in sorted(set(train) & set(test)):
        for a, b in _merge(train[asset]):
            for c, d in _merge(test[asset]):
                if min(b, d) - max(a, c) > _RANGE_EPS:
                    problems.append(
                        f"{asset}: train uses {a:.2f}-{b:.2f} s, test uses {c:.2f}-{d:.2f} s"
                    )
    return problems


def _record_problems(record: dict[str, Any]) -> list[str]:
    """Boxes inside the image; labels and sounding flags agree with the audio provenance."""
    rid, problems = record.get("id", "?"), []
    sources = record.get("sources") or []
    for obj in record.get("objects", []):
        x0, y0, x1, y1 = obj["box"]
        if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
            problems.append(f"{rid}: box {obj['box']} of {obj['label']} is not inside the image")
    heard_on = Counter(s["label"] for s in sources if s.get("role") == "object")
    marked = Counter(o["label"] for o in record.get("objects", []) if o["sounding"])
    if heard_on != marked:
        problems.append(
            f"{rid}: sounding objects {dict(marked)} but on-screen audio {dict(heard_on)}"
        )
    heard_off = sorted(s["label"] for s in sources if s.get("role") == "offscreen")
    if heard_off != sorted(record.get("offscreen", [])):
        problems.append(f"{rid}: offscreen {record.get('offscreen')} but audio has {heard_off}")
    visible = {o["label"] for o in record.get("objects", [])}
    if visible & set(heard_off):
        problems.append(f"{rid}: off-screen sound of a visible class {visible & set(heard_off)}")
    noise = [s["label"] for s in sources if s.get("role") == "noise"]
    if record.get("noise") and [record["noise"]["kind"]] != noise:
        problems.append(f"{rid}: noise {record['noise']} but audio has {noise}")
    if noise and not record.get("noise"):
        problems.append(
            f"{rid}: the audio has a noise bed ({noise}) but the record's noise is null "
            "(built before noise-only clips recorded theirs); rebuild the benchmark"
        )
    return problems


def check_benchmark(root: str | Path) -> list[str]:
    """Every problem found in a built benchmark (empty when it is sound).

    Checks that each split has its clips, boxes lie inside the image, labels/sounding flags agree
    with the audio provenance, split kinds are right, and that no recording range or image is
    shared by a train and a test split.
    """
    root = Path(root)
    info, records = load_benchmark(root)
    problems = []
    if not info.get("complete"):
        problems.append(f"{root}: the build is not complete (run `ier scenes build` again)")
    for split, split_records in records.items():
        kind = {**SPLITS, **DIAGNOSTIC_SPLITS}.get(split, (None,))[0]
        if len(split_records) != info["splits"][split]["count"]:
            problems.append(
                f"{split}: {len(split_records)} records, expected {info['splits'][split]['count']}"
            )
        for record in split_records:
            if record.get("split") != kind:
                problems.append(
                    f"{record.get('id')}: split kind {record.get('split')!r} in {split}"
                )
            if not (root / split / record["video"]).is_file():
                problems.append(f"{record.get('id')}: clip {record['video']} is missing")
            problems += _record_problems(record)
    return problems + train_test_overlaps(records)


def _summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(arr.mean()), 2), "min": round(float(arr.min()), 2),
            "max": round(float(arr.max()), 2)}  # fmt: skip


def split_stats(split_records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and distributions of one split (objects per scene, gain spreads, SNRs, classes)."""
    visible, sounding, silent, offscreen, spreads, snrs = [], [], [], [], [], []
    labels: Counter[str] = Counter()
    noises: Counter[str] = Counter()
    gm = real = 0
    for record in split_records:
        objects = record["objects"]
        visible.append(len(objects))
        sounding.append(sum(o["sounding"] for o in objects))
        silent.append(sum(not o["sounding"] for o in objects))
        offscreen.append(len(record.get("offscreen", [])))
        labels.update(o["label"] for o in objects if o["sounding"])
        gains = [s["gain_db"] for s in record.get("sources", []) if s.get("role") == "object"]
        if len(gains) > 1:
            spreads.append(max(gains) - min(gains))
        if record.get("noise"):
            if record["noise"]["snr_db"] is not None:  # null: a noise bed alone
                snrs.append(record["noise"]["snr_db"])
            noises[record["noise"]["kind"]] += 1
        for s in record.get("sources", []):
            if s.get("role") == "object":
                gm += s["asset"].startswith("soundfont:")
                real += not s["asset"].startswith("soundfont:")
    return {
        "clips": len(split_records),
        "visible_objects": _summary(visible),
        "sounding_objects": _summary(sounding),
        "silent_objects": _summary(silent),
        "offscreen_sounds": _summary(offscreen),
        "gain_spread_db": _summary(spreads),
        "snr_db": _summary(snrs),
        "noise_kinds": dict(sorted(noises.items())),
        "sounding_per_class": dict(sorted(labels.items())),
        "sources_real_vs_soundfont": [real, gm],
    }


def benchmark_stats(root: str | Path) -> dict[str, dict[str, Any]]:
    """``{split: split_stats}`` of a built benchmark."""
    _, records = load_benchmark(root)
    return {split: split_stats(rs) for split, rs in records.items()}


def _fmt(summary: dict[str, float]) -> str:
    if not summary:
        return "–"
    return f"{summary['mean']:.2f} ({summary['min']:g}–{summary['max']:g})"


def stats_table(stats: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of ``benchmark_stats`` (mean (min–max) per scene)."""
    lines = [
        "| split | clips | visible | sounding | silent | off-screen | gain spread dB | SNR dB |"
        " real / soundfont sources |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for split, s in stats.items():
        real, gm = s["sources_real_vs_soundfont"]
        lines.append(
            f"| {split} | {s['clips']} | {_fmt(s['visible_objects'])} | "
            f"{_fmt(s['sounding_objects'])} | {_fmt(s['silent_objects'])} | "
            f"{_fmt(s['offscreen_sounds'])} | {_fmt(s['gain_spread_db'])} | {_fmt(s['snr_db'])} | "
            f"{real} / {gm} |"
        )
    return "\n".join(lines)


def _max_normalised_xcorr(a: np.ndarray, b: np.ndarray, max_seconds: float = 2.0) -> float:
    """Peak normalised cross-correlation of the (at most 2 s) shorter wave against the longer."""
    from scipy.signal import fftconvolve


    if len(a) < len(b):
        a, b = b, a
    b = b[: round(max_seconds * SAMPLE_RATE)]
    num = fftconvolve(a, b[::-1], mode="valid")
    energy = fftconvolve(a**2, np.ones(len(b)), mode="valid").clip(1e-12) * float((b**2).sum())
    return float(np.max(np.abs(num) / np.sqrt(energy)))


def near_duplicate_recordings(threshold: float = 0.8) -> list[str]:
    """Train/test recording pairs of one class (or pool) that are copies of each other.

    Different files can hold the same take (an edit of one original); a peak normalised
    cross-correlation above ``threshold`` flags such a pair as a hidden train/test leak.
    """

    groups = [(c.name, c.train_audio, c.test_audio) for c in catalog.CLASSES]
    groups += [(p.name, p.train, p.test) for p in (*catalog.OFFSCREEN, *catalog.NOISES)]
    found = []
    for name, train, test in groups:
        for x in {a.asset for a in train}:
            for y in {a.asset for a in test} - {x}:
                r = _max_normalised_xcorr(assets.load_wave(x), assets.load_wave(y))
                if r > threshold:
                    found.append(f"{name}: {x} (train) and {y} (test) correlate at {r:.2f}")
    return sorted(found)
