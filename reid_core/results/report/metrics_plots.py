"""The plots of a metrics report: published vs reproduced per row (one panel per published
column) and the gains over the baseline row, published vs reproduced (with the confidence
interval of the reproduced gain).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from reid_core.results.plotting import agg_figure, save_png
from reid_core.results.report.comparison import Comparison, gain_rows
from reid_core.results.report.markdown import column_label

__all__ = ["plot_gains", "plot_values"]

#: Dots per inch of the report PNGs.
DPI = 110


def _new_figure(n_panels: int, n_rows: int) -> tuple[Any, list[Any]]:
    """A Figure (:func:`~reid_core.results.plotting.agg_figure`) with one horizontal-bar panel
    per column, two panels per line."""
    ncols = min(n_panels, 2)
    nrows = math.ceil(n_panels / ncols)
    fig = agg_figure((6.0 * ncols, (0.32 * n_rows + 1.4) * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _bars(ax: Any, labels: list[str], pairs: list[tuple[float, float, float]],
          names: tuple[str, str],
          intervals: list[tuple[float, float]] | None = None) -> None:
    """Grouped horizontal bars (published, reproduced ± err); NaN values draw no bar.

    ``intervals``: (low, high) per label, drawn as a whisker on the reproduced bar instead of
    the ± err (NaN: none).
    """
    import numpy as np

    y = np.arange(len(labels))
    pub = np.array([p[0] for p in pairs], dtype=float)
    rep = np.array([p[1] for p in pairs], dtype=float)
    err = np.array([0.0 if math.isnan(p[2]) else p[2] for p in pairs], dtype=float)
    keep_p, keep_r = ~np.isnan(pub), ~np.isnan(rep)
    ax.barh(y[keep_p] - 0.2, pub[keep_p], height=0.4, label=names[0], color="#8c8c8c")
    ax.barh(y[keep_r] + 0.2, rep[keep_r], height=0.4,
            xerr=None if intervals is not None else err[keep_r], label=names[1],
            color="#1f77b4", error_kw={"capsize": 2})
    if intervals is not None:
        for yi, (low, high) in zip(y, intervals):
            if not (math.isnan(low) or math.isnan(high)):
                ax.errorbar([(low + high) / 2], [yi + 0.2], xerr=[[(high - low) / 2]],
                            fmt="none", ecolor="black", elinewidth=1, capsize=2)
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # paper order, top to bottom
    ax.grid(axis="x", alpha=0.3)


def _legend(fig: Any, ax: Any) -> None:
    """One legend for the figure, below the panels (never over a bar)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)


def plot_values(comp: Comparison, path: Path) -> None:
    """Published vs reproduced per row, one panel per published column."""
    rows = list(comp.table.rows)
    fig, axes = _new_figure(len(comp.table.columns), len(rows))
    smoke = not comp.comparable
    for j, (ax, column) in enumerate(zip(axes, comp.table.columns)):
        sub = comp.frame.iloc[j::len(comp.table.columns)]
        pairs = [(line["published"], line["reproduced"], line["std"]) for _, line in sub.iterrows()]
        _bars(ax, [r.name for r in rows], pairs,
              ("published", "reproduced (smoke)" if smoke else "reproduced (mean ± std)"))
        title = column_label(column)
        if smoke and column.dataset == comp.selection.compare_to:
            title += f"\nreproduced on {comp.selection.smoke_dataset}: not comparable"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(column.unit or ("%" if comp.table.rules.retrieval_metrics else ""))
    _legend(fig, axes[0])
    fig.suptitle(f"{comp.table.paper} Table {comp.table.table}: published vs reproduced "
                 f"(rows not run have no reproduced bar)", fontsize=11)
    save_png(fig, path, DPI)




def plot_gains(comp: Comparison, path: Path) -> None:
    """Gain over the baseline row, published vs reproduced, one panel per column."""
    rows = gain_rows(comp)
    fig, axes = _new_figure(len(comp.table.columns), len(rows))
    for j, (ax, column) in enumerate(zip(axes, comp.table.columns)):
        sub = comp.frame.iloc[j::len(comp.table.columns)]
        sub = sub[sub["row"].isin([r.name for r in rows])]
        pairs = [(line["published_gain"], line["reproduced_gain"], math.nan)
                 for _, line in sub.iterrows()]
        intervals = [(line["gain_low"], line["gain_high"]) for _, line in sub.iterrows()]
        _bars(ax, [r.name for r in rows], pairs,
              ("published gain", f"reproduced gain ({comp.bootstrap.percent} interval)"),
              intervals)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(column_label(column), fontsize=10)
        ax.set_xlabel(f"gain over {comp.table.baseline_row} (points)")
    _legend(fig, axes[0])
    fig.suptitle(f"{comp.table.paper} Table {comp.table.table}: gain over "
                 f"{comp.table.baseline_row} (rows not run have no reproduced bar)", fontsize=11)
    save_png(fig, path, DPI)
