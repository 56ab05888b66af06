"""The matplotlib helpers every figure of the suite is drawn with (reports, CMC curves).

Figures are bare :class:`matplotlib.figure.Figure` objects on an Agg canvas: no pyplot state
(nothing global to leak between figures or tests), no display needed, and importing a module
that draws does not switch matplotlib's backend. PNGs are written atomically (a temporary file,
then a rename), so a failing ``savefig`` leaves the previous file in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reid_core.utils.io import atomic_save

if TYPE_CHECKING:  # matplotlib is imported when a figure is made, not with this module
    from matplotlib.figure import Figure

__all__ = ["agg_figure", "save_png"]


def agg_figure(figsize: tuple[float, float], *, dpi: float | None = None,
               layout: str | None = None) -> Figure:
    """A Figure of ``figsize`` inches on its own Agg canvas.

    Args:
        figsize: (width, height) in inches.
        dpi: figure dpi (None: matplotlib's default); the PNG's dpi is :func:`save_png`'s.
        layout: ``"constrained"``, ``"tight"`` or None (as :class:`~matplotlib.figure.Figure`).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path, dpi: float) -> Path:
    """Write ``fig`` as a PNG at ``dpi`` to ``path``, atomically (parents are created)."""
    path = Path(path)
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    return path
