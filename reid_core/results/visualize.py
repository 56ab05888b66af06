"""Figures of one or more runs: CMC curves and ranked-list grids, written as PNG.

* :func:`plot_cmc` -- several CMC curves (runs or features) on one figure, R1/R5/R10 in the
  legend. Drawn with matplotlib on an Agg canvas (no pyplot state, no display needed:
  :mod:`reid_core.results.plotting`).
* :func:`ranked_list_grid` -- one row per query: the query image (neutral grey border), then
  its top-k gallery images with a **green** border when the identity is the query's and a
  **red** one otherwise, the distance under each. Composed pixel by pixel with PIL so the
  layout is exact (borders are solid, never anti-aliased: a test can read them back).

Ranked lists follow the evaluation protocol of :func:`reid_core.metrics.rank.evaluate_rank`:
gallery images with the query's identity **and** camera, and images with pid ``-1``, are
*junk* -- removed from the list before the top-k is taken, as if absent; ties in distance
are broken by gallery index; queries without any true match are skipped (the evaluation does
not count them). Per-query AP comes from ``evaluate_rank`` itself, so "worst" means exactly
the lowest AP the metric saw.

Every PNG is written atomically (temporary file + ``os.replace``).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from reid_core.metrics.rank import evaluate_rank, evaluate_rank_metrics
from reid_core.results.plotting import agg_figure, save_png
from reid_core.utils.io import atomic_save

#: Ranks written into the CMC legend (when the curve is that long).
LEGEND_RANKS: tuple[int, ...] = (1, 5, 10)
#: CMC figure size in pixels (width, height): figsize x dpi.
CMC_FIGSIZE, CMC_DPI = (6.4, 4.8), 100

#: Border colours (RGB) of the ranked-list grid.
GREEN: tuple[int, int, int] = (0, 170, 0)
RED: tuple[int, int, int] = (215, 0, 0)
NEUTRAL: tuple[int, int, int] = (150, 150, 150)
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
TEXT: tuple[int, int, int] = (20, 20, 20)

#: How queries are chosen for the grid (see :func:`select_queries`).
SELECT_MODES: tuple[str, ...] = ("first", "random", "worst", "best", "failures")

_JUNK_PID = -1  # the protocol's "ignore everywhere" gallery id


# --------------------------------------------------------------------------- CMC


def cmc_label(label: str, curve: Sequence[float]) -> str:
    """Legend text: ``label (R1 x · R5 y · R10 z)`` with the ranks the curve reaches."""
    vals = [f"R{r} {float(curve[r - 1]):.1f}" for r in LEGEND_RANKS if r <= len(curve)]
    return f"{label} ({' · '.join(vals)})" if vals else label


def plot_cmc(curves: Mapping[str, Sequence[float]], path: str | Path, *, max_rank: int = 50,
             title: str | None = None) -> Path:
    """Draw CMC curves on one figure and write it as a PNG (640 x 480 px).

    Args:
        curves: ``{label: CMC in percent}``, element ``i`` being the score at rank ``i + 1``
            (the evaluator's ``final[feature]["CMC"]``, or ``100 * cmc`` of ``evaluate_rank``).
        path: the PNG to write (parent directories are created).
        max_rank: last rank drawn (curves are cut there; shorter curves end early).
        title: figure title (default ``"CMC"``).

    Returns:
        ``path``.

    Raises:
        ValueError: no curves, or a curve that is empty, not finite, outside [0, 100] or
            decreasing (the message names the curve).
    """
    if not curves:
        raise ValueError("plot_cmc: no curves given (expected {label: CMC in percent})")
    if max_rank < 1:
        raise ValueError(f"plot_cmc: max_rank must be >= 1, got {max_rank}")
    checked = {label: _check_cmc(label, c)[:max_rank] for label, c in curves.items()}

    fig = agg_figure(CMC_FIGSIZE, dpi=CMC_DPI, layout="constrained")
    ax = fig.add_subplot()
    longest = max(len(c) for c in checked.values())
    for label, curve in checked.items():
        ranks = np.arange(1, len(curve) + 1)
        (line,) = ax.plot(ranks, curve, label=cmc_label(label, curve), linewidth=1.6)
        marked = [r for r in LEGEND_RANKS if r <= len(curve)]
        ax.plot(marked, [curve[r - 1] for r in marked], "o", color=line.get_color(),
                markersize=4)
    ax.set_xlim(1, max(longest, 2))
    ax.set_ylim(0, 100)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title(title or "CMC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    # Fixed size, no bbox_inches="tight": the PNG is always figsize x dpi pixels.
    return save_png(fig, path, CMC_DPI)


def _check_cmc(label: str, curve: Sequence[float]) -> np.ndarray:
    arr = np.asarray(curve, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"CMC curve {label!r}: expected a non-empty list of percentages "
                         f"(rank 1, 2, ...), got shape {arr.shape}")
    if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 100 + 1e-6:
        raise ValueError(f"CMC curve {label!r}: values must be finite percentages in "
                         f"[0, 100], got min {arr.min()} / max {arr.max()}")
    if (np.diff(arr) < -1e-6).any():
        raise ValueError(f"CMC curve {label!r} decreases (at rank "
                         f"{int(np.argmax(np.diff(arr) < -1e-6)) + 2}); a CMC is cumulative")
    return arr


# --------------------------------------------------------------------------- ranked lists


@dataclass
class RankedRow:
    """One query of a ranked-list grid."""

    query: int  #: index into the query list
    ap: float  #: its average precision in [0, 1] (``evaluate_rank``, the run's ``ap_mode``)
    gallery: list[int]  #: indices of the shown gallery images, best first (junk removed)
    distances: list[float]
    correct: list[bool]  #: same identity as the query (green border)


@dataclass
class RankedGrid:
    """What :func:`ranked_list_grid` drew, and where."""

    path: Path
    size: tuple[int, int]  #: (width, height) of the PNG
    rows: list[RankedRow]
    #: ``boxes[row][col]`` = (left, top, right, bottom) of the bordered cell, right/bottom
    #: exclusive; column 0 is the query, column j the rank-j gallery image.
    boxes: list[list[tuple[int, int, int, int]]] = field(default_factory=list)
    border: int = 0  #: border width in pixels


def ranked_list_grid(
    query_items: Sequence[Any],
    gallery_items: Sequence[Any],
    distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    path: str | Path,
    *,
    top_k: int = 10,
    num_queries: int = 8,
    select: str = "first",
    seed: int = 0,
    ap_mode: str = "standard",
    title: str | None = None,
    thumb_size: tuple[int, int] = (128, 64),
) -> RankedGrid:
    """Draw the top-``top_k`` gallery images of ``num_queries`` queries as one PNG.

    Each row: the query (neutral grey border; its AP and identity/camera under it), then the
    ranked gallery images with green borders for the query's identity and red otherwise, the
    distance (4 significant digits) and identity/camera under each. **Junk is excluded
    exactly as the evaluation does**: gallery images with the query's pid and camid, and
    images with pid ``-1``, are removed before the top-k is taken; ties in distance go to
    the lower gallery index. Only
    queries with at least one true match (same pid, other camera) are candidates, since the
    evaluation skips the others. The caption of the figure says the same.

    Args:
        query_items, gallery_items: ``(path, pid, camid)`` items or plain image paths, in
            the order of ``distmat``'s rows / columns.
        distmat: (num_query, num_gallery) distances (numpy or torch), smaller = closer.
        q_pids, g_pids, q_camids, g_camids: integer ids as given to ``evaluate_rank``.
        path: the PNG to write.
        top_k: gallery images per row.
        num_queries: rows (fewer when fewer queries qualify).
        select: ``"first"`` (in query order), ``"random"`` (``seed``), ``"worst"`` (lowest
            AP first), ``"best"`` (highest AP first), ``"failures"`` (rank-1 wrong, in query
            order).
        ap_mode: AP definition passed to ``evaluate_rank`` (the run's ``eval.ap_mode``).
        title: first caption line (e.g. the run id).
        thumb_size: (height, width) every image is fitted into (aspect ratio kept).

    Returns:
        a :class:`RankedGrid` (the selected rows and the cell geometry).

    Raises:
        ValueError: mismatched shapes, a bad option, or no query with a true match.
        FileNotFoundError: an image file that does not exist (named in the message).
    """
    dist = _as_numpy(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got shape {dist.shape}")
    nq, ng = dist.shape
    qp, qc = _ids("q_pids", q_pids, nq), _ids("q_camids", q_camids, nq)
    gp, gc = _ids("g_pids", g_pids, ng), _ids("g_camids", g_camids, ng)
    if len(query_items) != nq or len(gallery_items) != ng:
        raise ValueError(f"{len(query_items)} query / {len(gallery_items)} gallery items given "
                         f"for a distance matrix of shape {dist.shape}")
    if top_k < 1 or num_queries < 1:
        raise ValueError(f"top_k and num_queries must be >= 1, got {top_k} and {num_queries}")
    if np.isnan(dist).any():
        raise ValueError("distmat contains NaN; the ranking would be undefined")

    chosen = select_queries(dist, qp, gp, qc, gc, num_queries, select=select, seed=seed,
                            ap_mode=ap_mode)
    rows = []
    for qi in chosen:
        shown = ranked_gallery(dist[qi], qp[qi], qc[qi], gp, gc)[:top_k]
        rows.append(RankedRow(
            query=int(qi), ap=query_ap(dist[qi], qp[qi], qc[qi], gp, gc, ap_mode),
            gallery=[int(g) for g in shown], distances=[float(dist[qi, g]) for g in shown],
            correct=[bool(gp[g] == qp[qi]) for g in shown]))
    caption = [title] if title else []
    caption.append(
        f"{len(rows)} queries ({select}); left: query (grey), then its top {top_k} gallery "
        f"images by distance. Green = same identity, red = different identity. Junk excluded "
        f"as in the evaluation: gallery images of the query's identity in the query's camera, "
        f"and pid -1. Queries without a true match are skipped, as the metric skips them.")
    return _draw_grid(rows, [_path_of(x) for x in query_items],
                      [_path_of(x) for x in gallery_items], qp, qc, gp, gc, Path(path),
                      top_k, thumb_size, caption)


def ranked_gallery(dist_row: np.ndarray, q_pid: int, q_cam: int, g_pids: np.ndarray,
                   g_cams: np.ndarray) -> np.ndarray:
    """Gallery indices of one query by ascending distance (ties: lower index first), junk
    (same pid and same camera, or pid -1) removed -- the list the evaluation ranks."""
    order = np.argsort(dist_row, kind="stable")
    junk = ((g_pids == q_pid) & (g_cams == q_cam)) | (g_pids == _JUNK_PID)
    return order[~junk[order]]


def has_true_match(q_pids: np.ndarray, q_cams: np.ndarray, g_pids: np.ndarray,
                   g_cams: np.ndarray) -> np.ndarray:
    """Per query: does the gallery hold its identity in another camera (pid != -1)?"""
    other_cam: dict[int, set[int]] = {}
    for pid, cam in zip(g_pids.tolist(), g_cams.tolist()):
        if pid != _JUNK_PID:
            other_cam.setdefault(pid, set()).add(cam)
    # Valid iff the pid has a gallery camera different from the query's.
    return np.array([bool(other_cam.get(p, set()) - {c})
                     for p, c in zip(q_pids.tolist(), q_cams.tolist())], dtype=bool)


def query_ap(dist_row: np.ndarray, q_pid: int, q_cam: int, g_pids: np.ndarray,
             g_cams: np.ndarray, ap_mode: str = "standard") -> float:
    """AP of one query as ``evaluate_rank`` computes it (NaN when it has no true match)."""
    try:
        _, ap = evaluate_rank(dist_row[None, :], np.array([q_pid]), g_pids, np.array([q_cam]),
                              g_cams, max_rank=1, ap_mode=ap_mode)
    except ValueError:
        if not has_true_match(np.array([q_pid]), np.array([q_cam]), g_pids, g_cams)[0]:
            return math.nan
        raise
    return ap


def select_queries(dist: np.ndarray, q_pids: np.ndarray, g_pids: np.ndarray,
                   q_cams: np.ndarray, g_cams: np.ndarray, n: int, *, select: str = "first",
                   seed: int = 0, ap_mode: str = "standard") -> list[int]:
    """Indices of up to ``n`` queries with a true match, chosen by ``select`` (see
    :func:`ranked_list_grid`)."""
    if select not in SELECT_MODES:
        raise ValueError(f"select: unknown mode {select!r}; valid: {', '.join(SELECT_MODES)}")
    valid = np.flatnonzero(has_true_match(q_pids, q_cams, g_pids, g_cams))
    if valid.size == 0:
        raise ValueError(f"no query has a true match in the gallery (same pid, other camera, "
                         f"pid != -1) among {len(q_pids)} queries: nothing to rank")
    if select == "first":
        return valid[:n].tolist()
    if select == "random":
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(valid, size=min(n, valid.size), replace=False).tolist())
    # failures / worst / best: the metric's own per-query results, in one call.
    metrics = evaluate_rank_metrics(dist, q_pids, g_pids, q_cams, g_cams, max_rank=1,
                                    ap_mode=ap_mode)
    if select == "failures":  # rank-1 wrong: the first true match is not the top item
        return valid[metrics.first_match_rank[valid] > 1][:n].tolist()
    aps = metrics.per_query_ap[valid]
    key = aps if select == "worst" else -aps
    order = np.lexsort((valid, key))  # by AP, ties by query index
    return valid[order[:n]].tolist()


def _draw_grid(rows: list[RankedRow], q_paths: list[str], g_paths: list[str],
               qp: np.ndarray, qc: np.ndarray, gp: np.ndarray, gc: np.ndarray, path: Path,
               top_k: int, thumb_size: tuple[int, int], caption: list[str]) -> RankedGrid:
    th, tw = thumb_size
    border, gap, query_gap, margin = 4, 6, 22, 12
    cell_w, cell_h = tw + 2 * border, th + 2 * border
    font, small = _font(13), _font(11)
    line_h = _text_height(small) + 3
    row_h = cell_h + 2 * line_h + 10
    width = 2 * margin + cell_w * (top_k + 1) + gap * (top_k - 1) + query_gap
    chars = max(20, int((width - 2 * margin) / (_text_width(font, "n" * 40) / 40)))
    cap_lines = [w for line in caption for w in textwrap.wrap(line, chars)]
    cap_h = len(cap_lines) * (_text_height(font) + 4)
    header_h = _text_height(small) + 6
    top = margin + cap_h + 6 + header_h
    height = top + row_h * len(rows) + margin

    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = margin
    for line in cap_lines:
        draw.text((margin, y), line, fill=TEXT, font=font)
        y += _text_height(font) + 4

    def col_left(col: int) -> int:
        return margin if col == 0 else margin + cell_w + query_gap + (col - 1) * (cell_w + gap)

    for col in range(top_k + 1):
        label = "query" if col == 0 else f"#{col}"
        _centered(draw, label, col_left(col), cell_w, top - header_h, small)

    boxes = []
    for r, row in enumerate(rows):
        y0 = top + r * row_h
        cells = [(q_paths[row.query], NEUTRAL,
                  f"AP {100 * row.ap:.1f}%", f"id {qp[row.query]} c{qc[row.query]}")]
        cells += [(g_paths[g], GREEN if ok else RED, f"{d:.4g}", f"id {gp[g]} c{gc[g]}")
                  for g, d, ok in zip(row.gallery, row.distances, row.correct)]
        row_boxes = []
        for col, (img_path, colour, line1, line2) in enumerate(cells):
            x0 = col_left(col)
            box = (x0, y0, x0 + cell_w, y0 + cell_h)
            draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=colour)
            canvas.paste(_thumbnail(img_path, (tw, th)), (x0 + border, y0 + border))
            _centered(draw, line1, x0, cell_w, y0 + cell_h + 2, small)
            _centered(draw, line2, x0, cell_w, y0 + cell_h + 2 + line_h, small)
            row_boxes.append(box)
        boxes.append(row_boxes)

    atomic_save(path, lambda f: canvas.save(f, format="PNG"))
    return RankedGrid(path=path, size=(width, height), rows=rows, boxes=boxes, border=border)


def _thumbnail(path: str, size: tuple[int, int]) -> Image.Image:
    """The image fitted into ``size`` = (width, height), aspect kept, padded with white."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ranked list: image file not found: {p} (was the dataset "
                                f"moved since the run? pass --data-root)")
    try:
        with Image.open(p) as img:
            return ImageOps.pad(img.convert("RGB"), size, color=BACKGROUND)
    except OSError as e:
        raise ValueError(f"ranked list: cannot read image {p}: {e}") from None


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans from matplotlib's data (always installed with it), else PIL's default."""
    try:
        import matplotlib

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(ttf), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _text_height(font: Any) -> int:
    _, top, _, bottom = font.getbbox("Ag0")
    return int(bottom - top) + 2


def _centered(draw: ImageDraw.ImageDraw, text: str, left: int, width: int, y: int,
              font: Any) -> None:
    x = left + max(0, (width - _text_width(font, text)) // 2)
    draw.text((x, y), text, fill=TEXT, font=font)


def _path_of(item: Any) -> str:
    return str(item[0]) if isinstance(item, (tuple, list)) else str(item)


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16; other dtypes stay as-is
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _ids(name: str, values: Any, expected: int) -> np.ndarray:
    arr = _as_numpy(values)
    if arr.shape != (expected,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({expected},) to match "
                         f"the distance matrix")
    return arr.astype(np.int64)
