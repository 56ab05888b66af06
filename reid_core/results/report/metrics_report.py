"""Writing a comparison report: ``<out>/<table_id>.md`` and its plots, atomically.

**Nothing to report.** :func:`write_report` raises :class:`EmptyReportError` (a ValueError)
and writes nothing when the selection holds no record: a filter that matches nothing must not
replace a committed report and its plots with an all-"not run" table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reid_core.results.report.comparison import Comparison, compare, gain_rows
from reid_core.results.report.environment import n_records
from reid_core.results.report.errors import EmptyReportError, untouched_text
from reid_core.results.report.metrics_markdown import render_markdown
from reid_core.results.report.metrics_plots import plot_gains, plot_values
from reid_core.results.report.selection import PROFILES
from reid_core.utils.io import atomic_write_text

__all__ = ["render_report", "write_report"]


def render_report(
    table_id: str,
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path = Path("results/reports"),
    *,
    dataset: str | None = None,
    profile: str | None = None,
    compare_to: str | None = None,
    tables_dir: str | Path | None = None,
) -> Path:
    """Write ``out_dir/<table_id>.md`` and its plots; return the Markdown path.

    Plots: ``<table_id>_values.png`` (published vs reproduced per row and column) and, for a
    metrics table with a baseline row and rows to compare with it, ``<table_id>_gains.png``.
    Every file is written atomically. Arguments as in
    :func:`~reid_core.results.report.comparison.build_comparison`.
    """
    comp = compare(table_id, records, dataset, profile, compare_to, tables_dir)
    return write_report(comp, out_dir)


def write_report(comp: Comparison, out_dir: str | Path = Path("results/reports")) -> Path:
    """Write the Markdown report and plots of an existing :class:`Comparison`; see render_report.

    Raises :class:`EmptyReportError` (nothing written) when the comparison uses no record: an
    all-"not run" table would silently replace a committed report. The Markdown is rendered
    before any file is written, so a rendering error cannot leave new plots beside an old
    report.
    """
    out_dir = Path(out_dir)
    path = out_dir / f"{comp.table.table_id}.md"
    if not comp.selection.records:
        raise EmptyReportError(_empty_message(comp, path))
    values_png = out_dir / f"{comp.table.table_id}_values.png"
    gains_png = out_dir / f"{comp.table.table_id}_gains.png" if gain_rows(comp) else None
    text = render_markdown(comp, values_png.name, gains_png.name if gains_png else None)
    plot_values(comp, values_png)
    if gains_png is not None:
        plot_gains(comp, gains_png)
    atomic_write_text(path, text)
    return path


def _empty_message(comp: Comparison, path: Path) -> str:
    """One line: table, filters that matched nothing, what exists instead, file untouched."""
    sel, table = comp.selection, comp.table
    filters = [f"dataset {sel.wanted_dataset!r}" if sel.wanted_dataset else "",
               f"profile {sel.wanted_profile!r}" if sel.wanted_profile else ""]
    wanted = " and ".join(f for f in filters if f)
    head = (f"no run record of {table.table_id} matches {wanted}" if wanted
            else f"no usable run record of {table.table_id}")
    if sel.available:
        offer = "records of its configs: " + ", ".join(
            f"{name} ({n_records(n)}, "
            f"{status + ' profile' if status in PROFILES else 'unusable: ' + status})"
            for name, (n, status) in sel.available.items())
    elif sel.n_given == 0:
        offer = "no run record was given at all"
    else:
        configs = table.configs()
        shown = ", ".join(configs[:6]) + (", …" if len(configs) > 6 else "")
        offer = (f"none of the {n_records(sel.n_given)} given is of its configs "
                 f"({shown or 'the table has no reproducible row'})")
    return f"{head}; {offer}; {untouched_text(path)}"
