"""What a run record supplies to a table cell: its dataset, a retrieval metric, a measurement.

Records are plain mappings here (a report reads what :func:`reid_core.results.store.load_records`
returns, or hand-made dicts in tests); a value a record lacks is None (shown as *not run*),
never 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

__all__ = [
    "MEASUREMENTS", "Measurement", "finite", "metric_value", "per_query_block",
    "per_query_values", "record_dataset", "run_id_of",
]


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


def eval_setting(record: Mapping[str, Any], key: str) -> Any:
    """The record's ``eval.<key>``: from its config (a run record) or its ``eval`` section (an
    evaluation record); None when absent."""
    config = record.get("config")
    section = config.get("eval") if isinstance(config, Mapping) else record.get("eval")
    return section.get(key) if isinstance(section, Mapping) else None


def metric_value(record: Mapping[str, Any], metric: str) -> float | None:
    """``record["final"][record["primary_feature"]][metric]``, or None when absent.

    A record without ``primary_feature`` but with a single feature in ``final`` uses that one.
    """
    values = _primary_values(record)
    return finite(values.get(metric)) if values is not None else None


def _primary_values(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``record["final"][primary feature]`` (as :func:`metric_value` picks it), or None."""
    final = record.get("final")
    if not isinstance(final, Mapping) or not final:
        return None
    feature = record.get("primary_feature")
    if feature is None and len(final) == 1:
        feature = next(iter(final))
    values = final.get(feature)
    return values if isinstance(values, Mapping) else None


def per_query_block(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The primary feature's ``per_query`` entry (:func:`reid_core.metrics.evaluator.
    per_query_results`), or None when the record has none (records written before it, the
    CUHK03 classic protocol) or it is malformed (lists of another length than ``queries``)."""
    values = _primary_values(record)
    block = values.get("per_query") if values is not None else None
    if not isinstance(block, Mapping):
        return None
    n = block.get("queries")
    ap, first = block.get("ap"), block.get("first_hit")
    if not isinstance(n, int) or not isinstance(ap, list) or not isinstance(first, list):
        return None
    return block if len(ap) == n and len(first) == n else None


_RANK = re.compile(r"R(\d+)")


def per_query_values(record: Mapping[str, Any], metric: str) -> np.ndarray | None:
    """The per-query contributions to ``metric`` in percent, shape (queries,), NaN for a query
    the protocol skipped; their mean over the other queries is the metric.

    ``R<k>``: 100 where ``first_hit < k`` else 0; ``mAP``: 100 * AP. None when the record has no
    per-query data or ``metric`` is not one of these (mINP, measurements, ...).
    """
    block = per_query_block(record)
    if block is None:
        return None
    rank = _RANK.fullmatch(metric)
    if rank is not None:
        k = int(rank.group(1))
        return np.array([math.nan if h is None else 100.0 * (h < k) for h in block["first_hit"]],
                        dtype=np.float64)
    if metric == "mAP":
        return np.array([math.nan if a is None else 100.0 * a for a in block["ap"]],
                        dtype=np.float64)
    return None


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
