"""Writing the report of a ``cost`` table: ``<out>/<table_id>.md`` and ``<table_id>_ratios.png``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reid_core.results.paper_tables import load_table
from reid_core.results.report.cost import cost_frame, used_records
from reid_core.results.report.cost_markdown import cost_markdown
from reid_core.results.report.cost_plots import plot_ratios
from reid_core.results.report.errors import EmptyReportError, untouched_text
from reid_core.utils.io import atomic_write_text

__all__ = ["render_cost_report"]


def render_cost_report(table_id: str, records: Sequence[Mapping[str, Any]],
                       out_dir: str | Path = Path("results/reports")) -> Path:
    """Write ``<out_dir>/<table_id>.md`` and ``<table_id>_ratios.png``; return the Markdown path.

    Raises :class:`~reid_core.results.report.EmptyReportError` (nothing written) when no
    record measures a row of the table: an all-"not run" report would replace the committed
    one. Every file is written atomically, the Markdown rendered before any is written.
    """
    table = load_table(table_id)
    out_dir = Path(out_dir)
    path, png = out_dir / f"{table_id}.md", out_dir / f"{table_id}_ratios.png"
    used = used_records(table, records)
    if not used:
        raise EmptyReportError(
            f"no cost measurement (a record with measurements.fps) of {table_id}'s configs "
            f"among the {len(records)} record(s) given; run `python -m reid_core reproduce {table_id}`; "
            f"{untouched_text(path)}")
    rows = cost_frame(table, records)
    text = cost_markdown(table, rows, records, png.name)
    plot_ratios(rows, table, png)
    atomic_write_text(path, text)
    return path
