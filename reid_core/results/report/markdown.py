"""Markdown and number formatting shared by the report renderers (no report logic)."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from reid_core.results.paper_tables import Column
from reid_core.results.report.verdicts import NOT_RUN

__all__ = [
    "column_label", "counted", "fmt_published", "fmt_reproduced", "fmt_signed", "md_table",
]


def fmt_published(value: float, flag: str, unit: str | None) -> str:
    """A published number as printed (†: reconstructed; — (missing))."""
    if flag == "missing" or math.isnan(value):
        return "— (missing)"
    text = _fmt_plain(value, unit)
    return text + "†" if flag == "reconstructed" else text


def _fmt_plain(value: float, unit: str | None) -> str:
    """A published value with as many decimals as it has (at least one, counts none)."""
    if unit == "count" and value.is_integer():
        return f"{value:.0f}"
    for decimals in (1, 2, 3):
        if abs(round(value, decimals) - value) < 1e-9:
            return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def fmt_reproduced(mean: float, std: float, n: int) -> str:
    """``78.00 ± 1.00 (n=3)``; a single record shows no std."""
    if n == 0:
        return NOT_RUN
    spread = "" if math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} (n={n})"


def fmt_signed(value: float, decimals: int = 2) -> str:
    """``+1.50`` / ``-0.80``; empty for NaN."""
    return "" if math.isnan(value) else f"{value:+.{decimals}f}"


def _md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(
    header: list[str], lines: list[list[str]], right_from: int = 1, right_to: int | None = None
) -> list[str]:
    """A GitHub Markdown table; columns ``right_from`` to ``right_to`` (excl.) right-aligned."""
    stop = len(header) if right_to is None else right_to
    align = ["---:" if right_from <= i < stop else "---" for i in range(len(header))]
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
           "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_md_cell(c) for c in line) + " |" for line in lines]
    return out


def column_label(column: Column) -> str:
    """``cuhk03-labeled R1`` (plus the unit of a data column, or the query type of a column
    that states one: ``market1501 R1 (multi query)``)."""
    label = column.metric if column.dataset == "n/a" else f"{column.dataset} {column.metric}"
    if column.query is not None:
        return f"{label} ({column.query} query)"
    return f"{label} ({column.unit})" if column.unit and column.unit != "%" else label



def counted(items: Any) -> str:
    """``a (3), b (1)`` from an iterable of strings; ``—`` when empty."""
    counts = Counter(items)
    if not counts:
        return "—"
    return ", ".join(f"{k} ({v} run{'s' if v != 1 else ''})" for k, v in counts.most_common())

