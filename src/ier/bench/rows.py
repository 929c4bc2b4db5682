"""The bench's rows: a run over every training seed it has a record for, the grouping of records
into rows in table order, and the statistics over seeds (mean ± standard deviation, and whether
two rows differ by more than that spread). ``ier.bench.tables`` renders them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ier.bench.plan import metric, order_records


@dataclass
class Row:
    """One table row: a run (or a reference) over every training seed it has a record for.

    Attributes:
        name: Run name (``BenchRun.name``).
        label: Table label.
        ablation: An IEr ablation.
        records: The per-seed records, by increasing seed.
        diagnostics: ``ier.bench.diagnostics.run_diagnostics`` per record (same order), if any.
    """

    name: str
    label: str
    ablation: bool
    records: list[dict[str, Any]]
    diagnostics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        """The training seeds of the records."""
        return [r.get("seed", 0) for r in self.records]

    def values(self, source: str, key: str) -> list[float]:
        """The metric over the seeds that have it."""
        found = (metric(r, source, key) for r in self.records)
        return [v for v in found if v is not None]

    def diagnostic_values(self, kind: str, split: str | None = None) -> list[float]:
        """``pointing`` (per ``split``) or ``peak_auroc`` over the seeds that have it."""
        found = (d[kind].get(split) if split else d[kind] for d in self.diagnostics)
        return [float(v) for v in found if v is not None]


def mean_std(values: Sequence[float]) -> tuple[float, float] | None:
    """Mean and sample standard deviation (0 for one value); None for no value."""
    if not values:
        return None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def differs(a: Sequence[float], b: Sequence[float]) -> int:
    """+1 / -1 when the mean of ``a`` is above / below that of ``b`` by more than the sum of the
    two standard deviations (their +-1 std intervals do not overlap), with at least 2 seeds on
    each side; else 0."""
    if len(a) < 2 or len(b) < 2:
        return 0
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    if abs(ma - mb) <= sa + sb:
        return 0
    return 1 if ma > mb else -1


def group_rows(
    records: Sequence[dict[str, Any]], diagnostics: Mapping[str, dict[str, Any]] | None = None
) -> list[Row]:
    """Records (any seeds) -> rows in table order; ``diagnostics`` is keyed by run folder."""
    rows: dict[str, Row] = {}
    for r in order_records(records):
        row = rows.setdefault(r["name"], Row(r["name"], row_label(r), bool(r.get("ablation")), []))
        row.records.append(r)
        found = (diagnostics or {}).get(r.get("run_dir", r["name"]))
        if found is not None:
            row.diagnostics.append(found)
    return list(rows.values())


def row_label(record: dict[str, Any]) -> str:
    """A record's table label; an ablation's is indented under the run it ablates (``↳``)."""
    label = record.get("label") or record["name"]
    return f"↳ {label}" if record.get("ablation") else label
