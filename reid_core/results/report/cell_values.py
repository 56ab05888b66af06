"""What a run record supplies to a table cell: its dataset, a retrieval metric, a measurement.

Records are plain mappings here (a report reads what :func:`reid_core.results.store.load_records`
returns, or hand-made dicts in tests); a value a record lacks is None (shown as *not run*),
never 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["MEASUREMENTS", "Measurement", "finite", "metric_value", "record_dataset", "run_id_of"]


def record_dataset(record: Mapping[str, Any]) -> str:
    """The dataset a record ran on (``record["dataset"]["name"]``)."""
    return str(record["dataset"]["name"])


def run_id_of(record: Mapping[str, Any]) -> str:
    """The record's run id (``?`` for a record without one: it is named, not trusted)."""
    return str(record.get("run_id", "?"))


def finite(value: object) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def metric_value(record: Mapping[str, Any], metric: str) -> float | None:
    """``record["final"][record["primary_feature"]][metric]``, or None when absent.

    A record without ``primary_feature`` but with a single feature in ``final`` uses that one.
    """
    final = record.get("final")
    if not isinstance(final, Mapping) or not final:
        return None
    feature = record.get("primary_feature")
    if feature is None and len(final) == 1:
        feature = next(iter(final))
    values = final.get(feature)
    return finite(values.get(metric)) if isinstance(values, Mapping) else None


@dataclass(frozen=True)
class Measurement:
    """Where a measured quantity sits in a run record, and how to express it in a table unit.

    The table value is ``raw / divisors[column.unit]``; a unit not in ``divisors`` is not filled.
    """

    path: tuple[str, ...]
    divisors: Mapping[str, float]

    def read(self, record: Mapping[str, Any], unit: str | None) -> float | None:
        """The record's value in ``unit``, or None when absent or not convertible."""
        value: Any = record
        for key in self.path:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        divisor = self.divisors.get(unit or "")
        number = finite(value)
        return None if number is None or divisor is None else number / divisor


#: Measured quantity name (the column's ``metric``) -> how a record supplies it. Today
#: ``params`` = ``record["measurements"]["params"]``, a raw parameter count (``parameters``
#: tables, e.g. RGA Table 3). Add an entry to support another quantity.
MEASUREMENTS: Final[dict[str, Measurement]] = {
    "params": Measurement(("measurements", "params"), {"M": 1e6, "K": 1e3, "count": 1.0}),
}
