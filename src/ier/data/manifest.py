"""The sample manifest: JSON Lines, one annotated frame per line (see ``docs/formats.md``).

``read_manifest`` parses and validates every record and reports *all* problems at once. The record
types and the per-record checks live in ``ier.data.sample`` and are re-exported here.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ier.data.sample import SPLIT_KINDS, Box, ObjectAnnotation, Sample, parse_record
from ier.errors import ManifestError
from ier.files import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "SPLIT_KINDS",
    "Box",
    "ObjectAnnotation",
    "Sample",
    "parse_record",
    "read_manifest",
    "validate_manifest",
    "write_manifest",
]


def _check_files(sample: Sample) -> list[str]:
    problems = []
    for key in ("video", "frame", "audio"):
        path = getattr(sample, f"{key}_path")
        if path is not None and not path.is_file():
            problems.append(f"field `{key}`: file not found: {path}")
    return problems


def _scan(path: Path, *, check_files: bool) -> tuple[list[Sample], list[str]]:
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}")
    root = path.resolve().parent
    samples: list[Sample] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:  # parsed without its line break, so an error at the end of the line reports
                record = json.loads(line.rstrip("\r\n"))  # this line's column, not "column 1"
            except json.JSONDecodeError as err:
                problems.append(f"{path}:{line_no}: invalid JSON: {err.msg} (column {err.colno})")
                continue
            sample, found = parse_record(record, root=root)
            if sample is not None:
                if sample.id in first_line:
                    first = first_line[sample.id]
                    found.append(f"field `id`: duplicate id {sample.id!r} (first on line {first})")
                else:
                    first_line[sample.id] = line_no
                if check_files:
                    found.extend(_check_files(sample))
            problems.extend(f"{path}:{line_no}: {p}" for p in found)
            if sample is not None and not found:
                samples.append(sample)
    return samples, problems


# --- public API ----------------------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str], *, check_files: bool = False) -> list[Sample]:
    """Read and validate a manifest.

    Args:
        path: the ``.jsonl`` file. Media paths inside are resolved relative to its folder.
        check_files: also check that every referenced media file exists.

    Returns:
        The samples in file order, each with ``root`` set to the manifest's folder.

    Raises:
        ManifestError: the file is missing, or has bad records; ``problems`` lists every one as
            ``"PATH:LINE: field `x`: what is wrong"``.
    """
    path = Path(path)
    samples, problems = _scan(path, check_files=check_files)
    if problems:
        raise ManifestError(f"{path}: {len(problems)} problem(s) in the manifest", problems)
    logger.debug("read %d samples from %s", len(samples), path)
    return samples


def validate_manifest(path: str | os.PathLike[str], *, check_files: bool = False) -> list[str]:
    """Every problem in a manifest as ``"PATH:LINE: field `x`: what is wrong"``; empty if valid."""
    path = Path(path)
    if not path.is_file():
        return [f"{path}: manifest not found"]
    return _scan(path, check_files=check_files)[1]


def _rebased(sample: Sample, target_dir: Path) -> Sample:
    """Rewrite a sample's relative media paths so they are relative to ``target_dir``."""
    if sample.root is None or sample.root.resolve() == target_dir:
        return sample
    changes = {}
    for key in ("video", "frame", "audio"):
        rel = getattr(sample, key)
        if rel is not None and not Path(rel).is_absolute():
            changes[key] = Path(os.path.relpath(sample.root.resolve() / rel, target_dir)).as_posix()
    return replace(sample, **changes, root=target_dir)


def write_manifest(
    path: str | os.PathLike[str], samples: Iterable[Sample | Mapping[str, Any]]
) -> Path:
    """Write samples (``Sample`` objects or JSON-like dicts) as a manifest, atomically.

    Dicts are validated exactly as ``read_manifest`` would. A sample whose ``root`` differs from
    the target folder has its relative media paths rewritten to stay correct. The file is written
    to a temporary file in the same folder and renamed over ``path`` only when complete.

    Raises:
        ManifestError: a record is invalid, or two samples share an id (all problems listed).
    """
    path = Path(path)
    target_dir = path.resolve().parent
    lines: list[str] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(samples):
        if isinstance(item, Sample):
            sample: Sample | None = item
        else:
            sample, found = parse_record(item, root=None)
            problems.extend(f"sample {index}: {p}" for p in found)
        if sample is None:
            continue
        if sample.id in seen:
            problems.append(
                f"sample {index}: field `id`: duplicate id {sample.id!r} (sample {seen[sample.id]})"
            )
            continue
        seen[sample.id] = index
        lines.append(json.dumps(_rebased(sample, target_dir).to_dict(), ensure_ascii=False))
    if problems:
        raise ManifestError(f"cannot write {path}: {len(problems)} bad sample(s)", problems)
    atomic_write_text(path, "".join(line + "\n" for line in lines), fsync=True)
    logger.debug("wrote %d samples to %s", len(lines), path)
    return path
