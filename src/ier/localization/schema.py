"""The ``localization.json`` format of ``ier.localize`` (docs/localize.md): its name and version,
the class states, how the document is written, and its validator."""

from __future__ import annotations

import json
import math
from typing import Any

SCHEMA_NAME = "ier.localization"
SCHEMA_VERSION = 1
STATES = ("sounding-on-screen", "visible-silent", "heard-off-screen", "absent")
OUTPUT_NAMES = ("overlay.mp4", "localization.json", "maps.npz", "report.html")


def dumps_document(document: dict[str, Any]) -> str:
    """JSON text with one line per top-level field and per window: readable, and fast (the C
    encoder only runs without ``indent``)."""
    windows = ",\n  ".join(json.dumps(w, separators=(",", ":")) for w in document["windows"])
    fields = [
        f"{json.dumps(k)}: " + (f"[\n  {windows}\n ]" if k == "windows" else json.dumps(v))
        for k, v in document.items()
    ]
    return "{\n " + ",\n ".join(fields) + "\n}\n"


def _check_fraction_list(value: Any, n: int, where: str, problems: list[str]) -> None:
    if not (isinstance(value, list) and len(value) == n):
        problems.append(f"{where}: expected a list of {n} numbers, got {value!r}")
    elif not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in value):
        problems.append(f"{where}: values must be fractions in [0, 1], got {value!r}")


def _check_class(entry: Any, where: str, states: set[str], problems: list[str]) -> None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected an object")
        return
    for key in ("name", "state", "confidence", "score", "peak_value", "peak", "box"):
        if key not in entry:
            problems.append(f"{where}: missing {key!r}")
    if entry.get("state") not in states:
        problems.append(f"{where}: state {entry.get('state')!r} is not one of {sorted(states)}")
    for key in ("confidence", "score", "peak_value"):
        value = entry.get(key)
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            problems.append(f"{where}: {key} must be in [0, 1], got {value!r}")
    _check_fraction_list(entry.get("peak"), 2, f"{where}.peak", problems)
    box = entry.get("box")
    if box is not None:
        _check_fraction_list(box, 4, f"{where}.box", problems)
        if isinstance(box, list) and len(box) == 4 and not (box[0] < box[2] and box[1] < box[3]):
            problems.append(f"{where}.box: needs x0 < x1 and y0 < y1, got {box}")


def validate_localization(document: Any) -> list[str]:
    """Every way ``document`` breaks the ``localization.json`` schema (empty list = valid)."""
    if not isinstance(document, dict):
        return ["document: expected a JSON object"]
    problems: list[str] = []
    if document.get("schema") != SCHEMA_NAME:
        problems.append(f"schema: expected {SCHEMA_NAME!r}, got {document.get('schema')!r}")
    if document.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            f"schema_version: expected {SCHEMA_VERSION}, got {document.get('schema_version')!r}"
        )
    for key, fields in (("video", ("path", "duration_seconds", "fps", "width", "height")),
                        ("model", ("name", "classes")),
                        ("settings", ("window_seconds", "hop_seconds", "smoothing"))):  # fmt: skip
        block = document.get(key)
        if not isinstance(block, dict):
            problems.append(f"{key}: expected an object")
            continue
        problems += [f"{key}: missing {f!r}" for f in fields if f not in block]
    classes = (document.get("model") or {}).get("classes") or []
    states = set(document.get("states") or [])
    windows = document.get("windows")
    if not isinstance(windows, list):
        return problems + ["windows: expected a list"]
    previous = -math.inf
    for i, window in enumerate(windows):
        where = f"windows[{i}]"
        if not isinstance(window, dict):
            problems.append(f"{where}: expected an object")
            continue
        start, end, t = (window.get(k) for k in ("start_seconds", "end_seconds", "time_seconds"))
        if not all(isinstance(v, (int, float)) for v in (start, end, t)) or not start <= t <= end:
            problems.append(f"{where}: needs start_seconds <= time_seconds <= end_seconds")
        elif t <= previous:
            problems.append(f"{where}: time_seconds {t} is not after the previous window")
        else:
            previous = t
        entries = window.get("classes")
        if (
            not isinstance(entries, list)
            or [e.get("name") for e in entries if isinstance(e, dict)] != classes
        ):
            problems.append(f"{where}: classes must list every model class in order")
            continue
        for j, entry in enumerate(entries):
            _check_class(entry, f"{where}.classes[{j}]", states, problems)
    return problems
