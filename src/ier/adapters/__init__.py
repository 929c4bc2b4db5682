"""Adapters from the standard datasets' own files to ``ier`` manifests (``ier prepare``).

``prepare(name, root, out)`` reads a dataset as its authors distribute it, writes one
``<out>/<split>/manifest.jsonl`` per split and ``<out>/prepare_report.json`` listing every missing
or unreadable item with the reason. See ``docs/datasets.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ier import __version__
from ier.adapters import extended, flickr, music, music_synthetic, vggsound
from ier.adapters.common import AdapterOutput, Problem, SampleSpec
from ier.adapters.engine import PrepareOptions, run_specs
from ier.data.manifest import write_manifest
from ier.errors import DatasetError
from ier.files import atomic_write_json
from ier.protocol import PUBLISHED_PROTOCOLS, SplitProtocol, published_protocol

logger = logging.getLogger(__name__)

REPORT_NAME = "prepare_report.json"
REPORT_VERSION = 1

Adapter = Callable[..., AdapterOutput]


def _registry() -> dict[str, Adapter]:

    return {
        "music": music.build_music,
        "music-synthetic": music_synthetic.build_music_synthetic,
        "vggsound": vggsound.build_vggsound,
        "vggss": vggsound.build_vggss,
        "flickr": flickr.build_flickr,
        "extended-flickr": extended.build_extended_flickr,
        "extended-vggss": extended.build_extended_vggss,
    }


def list_datasets() -> list[str]:
    """Names accepted by :func:`prepare` (and ``ier prepare``)."""
    return sorted(_registry())


@dataclass(frozen=True)
class PrepareReport:
    """What ``prepare`` wrote.

    Attributes:
        dataset: adapter name.
        out_dir: output folder.
        manifests: split name -> manifest path.
        counts: split name -> counters (``listed``, ``written``, ``missing``, ``unreadable``, ...).
        problems: every item that did not become a sample, and every warning.
        path: the ``prepare_report.json`` file.
    """

    dataset: str
    out_dir: Path
    manifests: dict[str, Path]
    counts: dict[str, dict[str, int]]
    problems: list[Problem] = field(default_factory=list)
    path: Path | None = None

    @property
    def n_missing(self) -> int:
        """Number of items reported as not usable (warnings excluded)."""
        return sum(1 for p in self.problems if p.kind != "warning")


def _check_dirs(root: Path, out: Path) -> tuple[Path, Path]:
    root, out = Path(root).expanduser(), Path(out).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root not found or not a folder: {root}")
    if out.resolve() == root.resolve() or root.resolve().is_relative_to(out.resolve()):
        raise DatasetError(f"--out {out} must not be the dataset root or contain it")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} exists and is not a folder")
    return root, out


def _dedupe(found: AdapterOutput) -> None:
    for split, specs in found.splits.items():
        seen: set[str] = set()
        kept: list[SampleSpec] = []
        for spec in specs:
            if spec.id in seen:
                found.problem(split, spec.id, "listed twice; the first is kept", kind="warning")
                continue
            seen.add(spec.id)
            kept.append(spec)
        found.splits[split] = kept


def prepare(
    name: str,
    root: str | Path,
    out: str | Path,
    *,
    workers: int = 1,
    cache: bool = False,
    check: str = "decode",
    progress: bool = True,
) -> PrepareReport:
    """Convert a dataset on disk to manifests, resuming work a previous run finished.

    Args:
        name: dataset adapter (see :func:`list_datasets`).
        root: the dataset's root folder, laid out as its authors distribute it.
        out: output folder; gets ``<split>/manifest.jsonl``, caches and ``prepare_report.json``.
        workers: parallel processes for checking/decoding media.
        cache: write the annotated frame and its audio window next to each manifest.
        check: ``decode`` (decode every frame and audio window) or ``probe`` (headers only).
        progress: show a progress bar.

    Returns:
        The report (also written to ``<out>/prepare_report.json``).

    Raises:
        DatasetError: unknown dataset, a missing root, or a root without the dataset's files.
    """
    adapters = _registry()
    if name not in adapters:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(sorted(adapters))}")
    root, out = _check_dirs(Path(root), Path(out))
    opts = PrepareOptions(cache=cache, check=check)
    started = time.monotonic()
    found = adapters[name](root, skip=(out,))
    _dedupe(found)
    jobs = [(spec, out / split) for split, specs in found.splits.items() for spec in specs]
    records, problems, reused = run_specs(jobs, opts, workers=workers, progress=progress)
    manifests, counts = _write_manifests(found, records, problems, out)
    report = PrepareReport(name, out, manifests, counts, found.problems + problems)
    path = _write_report(report, found, root, opts, reused, time.monotonic() - started)
    logger.info(
        "%s: wrote %d split(s) to %s; %d item(s) missing or unreadable (see %s)",
        name,
        len(manifests),
        out,
        report.n_missing,
        path,
    )
    return PrepareReport(name, out, manifests, counts, report.problems, path)


def _write_manifests(
    found: AdapterOutput, records: dict[str, dict[str, Any]], problems: list[Problem], out: Path
) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:

    manifests: dict[str, Path] = {}
    counts: dict[str, dict[str, int]] = {}
    split_names = list(dict.fromkeys([*found.splits, *found.counts]))
    for split in split_names:
        folder = out / split
        rows = [
            records[key]
            for spec in found.splits.get(split, [])
            if (key := f"{folder}\0{spec.id}") in records
        ]
        per = {"written": len(rows), **found.counts.get(split, {})}
        for problem in (*found.problems, *problems):
            if problem.split == split:
                per[problem.kind] = per.get(problem.kind, 0) + 1
        counts[split] = per
        if rows:
            manifests[split] = write_manifest(folder / "manifest.jsonl", rows)
    return manifests, counts


def _write_report(
    report: PrepareReport,
    found: AdapterOutput,
    root: Path,
    opts: PrepareOptions,
    reused: int,
    seconds: float,
) -> Path:

    used = {r for spec_list in found.splits.values() for r in (s.split for s in spec_list)}
    by_kind: dict[str, int] = {}
    for problem in report.problems:
        by_kind[problem.kind] = by_kind.get(problem.kind, 0) + 1
    payload = {
        "report_version": REPORT_VERSION,
        "ier_version": __version__,
        "dataset": report.dataset,
        "root": str(root.resolve()),
        "options": {"cache": opts.cache, "check": opts.check},
        "annotation_format": found.format,
        "splits": {
            split: {
                "manifest": f"{split}/manifest.jsonl" if split in report.manifests else None,
                **counts,
            }
            for split, counts in report.counts.items()
        },
        "presets": {s: PUBLISHED_PROTOCOLS[s].to_dict() for s in sorted(used)
                    if s in PUBLISHED_PROTOCOLS},  # fmt: skip
        "problem_counts": by_kind,
        "problems": [p.to_dict() for p in report.problems],
        "reused_from_previous_run": reused,
        "seconds": round(seconds, 2),
    }
    return atomic_write_json(report.out_dir / REPORT_NAME, payload, ensure_ascii=False)


__all__ = [
    "PrepareOptions",
    "PrepareReport",
    "Problem",
    "PUBLISHED_PROTOCOLS",
    "SplitProtocol",
    "list_datasets",
    "prepare",
    "published_protocol",
]
