"""The plot of a cost report: the ratios to the baseline row, published vs measured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reid_core.results.paper_tables import PaperTable
from reid_core.results.plotting import agg_figure, save_png

__all__ = ["plot_ratios"]

#: Dots per inch of the report PNG.
DPI = 110


def plot_ratios(rows: list[dict[str, Any]], table: PaperTable, path: Path) -> None:
    """Bars of the ratios to the baseline row (two panels: memory, FPS), written atomically
    (:mod:`reid_core.results.plotting`)."""
    labels = [e["row"].replace(" (Group Num = ", "\ng=").rstrip(")") for e in rows]
    fig = agg_figure((12, 4.2))
    axes = fig.subplots(1, 2)
    panels = [("Memory per image / PCB", [("published", "pub_memory_ratio"),
                                          ("measured, train", "memory_train_ratio"),
                                          ("measured, inference", "memory_inference_ratio")]),
              ("FPS / PCB", [("published", "pub_fps_ratio"),
                             ("measured (median)", "fps_median_ratio")])]
    for ax, (title, series) in zip(axes, panels):
        width = 0.8 / len(series)
        for k, (name, key) in enumerate(series):
            xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(rows))]
            ys = [e.get(key) or 0.0 for e in rows]
            ax.bar(xs, ys, width, label=name)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(rows)), labels, fontsize=7)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle(f"{table.paper} Table {table.table}: ratios to {table.baseline_row}")
    fig.tight_layout()
    save_png(fig, path, DPI)
