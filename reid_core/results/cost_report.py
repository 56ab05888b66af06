"""The cost report of a data table of memory and speed (CSA Table 6): measured vs published.

Absolute memory and FPS depend on the machine, so the report lines up **ratios to the
baseline row** (the paper's claim: "PCB+SA uses 242% of PCB's memory and 59% of its FPS"),
next to the absolute values of both. The records are the ``kind: measurement`` records written
by ``reid_core.app.reproduce.measure_cost_row``; their ``measurements`` mapping holds::

    fps:                  {best, median, times_s: [...]}   # images/s from the min / median time
    memory_per_image_mb:  {inference: MB, train: MB}        # see ``memory_method``
    memory_method, batch_size, input_size, device, threads, repeats

Both memory modes are reported because the paper does not say which it measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

from reid_core.results.paper_tables import PaperTable, load_table
from reid_core.results.report import EmptyReportError, Environment, untouched_text
from reid_core.utils.io import atomic_save, atomic_write_text

MEMORY_MODES = ("train", "inference")
#: The column metrics of a cost table: such a table is reported here, not by the metrics
#: report (which has no way to fill them).
COST_METRICS = frozenset({"memory_per_image", "fps"})


def is_cost_table(table: PaperTable) -> bool:
    """True for a data table of memory per image and FPS (CSA Table 6), whose report is
    :func:`render_cost_report`."""
    return table.kind == "data" and {c.metric for c in table.columns} == COST_METRICS


def _published(table: PaperTable, metric: str) -> dict[str, float | None]:
    j = next(i for i, c in enumerate(table.columns) if c.metric == metric)
    return {row.name: row.cells[j].value for row in table.rows}


def _is_cost_record(record: Mapping[str, Any], config: str | None) -> bool:
    """True for a cost measurement (memory / FPS) of ``config``."""
    measurements = record.get("measurements")
    return (config is not None and record.get("config_name") == config
            and isinstance(measurements, Mapping) and "fps" in measurements)


def _measured(records: Sequence[Mapping[str, Any]], config: str | None) -> list[Mapping[str, Any]]:
    return [r["measurements"] for r in records if _is_cost_record(r, config)]


def used_records(table: PaperTable, records: Sequence[Mapping[str, Any]]
                 ) -> list[Mapping[str, Any]]:
    """The records the cost report draws on (cost measurements of the table's rows), in row
    order: the ones whose environment the header must state."""
    configs = list(dict.fromkeys(row.config for row in table.rows if row.config is not None))
    return [r for config in configs for r in records if _is_cost_record(r, config)]


def cost_environment(table: PaperTable, records: Sequence[Mapping[str, Any]]) -> Environment:
    """The software the records this report uses were made with (the header states it, the
    CLI prints its warnings). The shared check of the metrics report, with records named by
    their row: seeds mean nothing for a measurement; repeated invocations show as ``×n``."""
    names: dict[str, str] = {}
    for row in table.rows:
        if row.config is not None:
            names.setdefault(row.config, row.name)

    def label(record: Mapping[str, Any]) -> tuple[str, str | None]:
        config = str(record.get("config_name"))
        return names.get(config, config), None
    return Environment.of(used_records(table, records), label)


def cost_frame(table: PaperTable, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One dict per table row: published memory/FPS and their ratios to the baseline row,
    measured memory (train, inference) and FPS (median, best) and their ratios.
    Several records of a row (e.g. repeated invocations) are combined by their median."""
    pub_mem, pub_fps = _published(table, "memory_per_image"), _published(table, "fps")
    rows = []
    for row in table.rows:
        ms = _measured(records, row.config)
        entry: dict[str, Any] = {"row": row.name, "config": row.config, "n": len(ms),
                                 "pub_memory": pub_mem[row.name], "pub_fps": pub_fps[row.name]}
        if ms:
            for mode in MEMORY_MODES:
                vals = [m["memory_per_image_mb"][mode] for m in ms
                        if m["memory_per_image_mb"].get(mode) is not None]
                entry[f"memory_{mode}"] = median(vals) if vals else None
            entry["fps_median"] = median(m["fps"]["median"] for m in ms)
            entry["fps_best"] = median(m["fps"]["best"] for m in ms)
        rows.append(entry)
    base = next((e for e in rows if e["row"] == table.baseline_row), None)
    for e in rows:
        for key in ("pub_memory", "pub_fps", "memory_train", "memory_inference", "fps_median",
                    "fps_best"):
            num, den = e.get(key), (base or {}).get(key)
            e[f"{key}_ratio"] = num / den if num is not None and den else None
    return rows


def _pct(x: float | None) -> str:
    return "not run" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "not run" if x is None else fmt.format(x)


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
            f"among the {len(records)} record(s) given; run `python reproduce/table6_csa.py`; "
            f"{untouched_text(path)}")
    rows = cost_frame(table, records)
    text = _markdown(table, rows, records, png.name)
    _plot_ratios(rows, table, png)
    atomic_write_text(path, text)
    return path


def _markdown(table: PaperTable, rows: list[dict[str, Any]], records: Sequence[Mapping[str, Any]],
              png_name: str) -> str:
    """The report text: how it was measured, the environment, the table, the raw peaks."""
    environment = cost_environment(table, records)
    meta = environment.records[0]["measurements"]  # the setup of the first row measured
    lines = [f"# {table.paper} Table {table.table}: {table.caption}", ""]
    lines += environment.warning_markdown()
    h, w = meta["input_size"]
    lines += [
        f"- **Measured on:** {meta['device']} ({meta.get('threads', '?')} threads), "
        f"input {h} x {w}, batch {meta['batch_size']}, {meta['repeats']} timed repeats "
        f"after {meta.get('warmup', 1)} warm-up; random init (weights do not change cost).",
        f"- **Memory:** {meta['memory_method']}",
        "- **FPS:** images per second of an inference forward (`torch.no_grad`, eval mode) "
        "at that batch: *median* from the median time over repeats, *best* from the "
        "minimum time.",
        "- **Published:** the paper does not state hardware, batch size, or whether memory "
        "is measured in training or inference; compare the **ratios to PCB**, not the "
        "absolute values.",
        environment.bullet(),
        "",
    ]
    header = ["Row", "Published MB/img", "Published ratio", "Train MB/img", "Train ratio",
              "Inference MB/img", "Inference ratio", "Published FPS", "Published ratio",
              "FPS median (best)", "FPS ratio"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for e in rows:
        lines.append("| " + " | ".join([
            e["row"], _num(e["pub_memory"], "{:.2f}"), _pct(e["pub_memory_ratio"]),
            _num(e.get("memory_train")), _pct(e.get("memory_train_ratio")),
            _num(e.get("memory_inference")), _pct(e.get("memory_inference_ratio")),
            _num(e["pub_fps"], "{:.2f}"), _pct(e["pub_fps_ratio"]),
            ("not run" if e.get("fps_median") is None
             else f"{e['fps_median']:.1f} ({e['fps_best']:.1f})"),
            _pct(e.get("fps_median_ratio")),
        ]) + " |")
    lines += ["", f"![ratios to {table.baseline_row}]({png_name})", ""]
    lines += _raw_peaks(table, records)
    return "\n".join(lines)


def _raw_peaks(table: PaperTable, records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The raw peaks behind the marginal numbers (first record of each row), for readers who
    prefer "peak at batch n / n" or want to check the subtraction."""
    out = ["## Raw peaks (MB) behind the per-image numbers", "",
           "| Row | mode | peak at batch B | peak at batch 2B | peak(2B) / 2B |", "|---|---|---:|---:|---:|"]
    for row in table.rows:
        ms = _measured(records, row.config)
        if not ms or "peak_mb" not in ms[0]:
            continue
        for mode, peaks in ms[0]["peak_mb"].items():
            (b, small), (b2, large) = sorted(peaks.items(), key=lambda kv: int(kv[0]))
            out.append(f"| {row.name} | {mode} | {small:.1f} (B = {b}) | {large:.1f} (2B = {b2}) "
                       f"| {large / int(b2):.1f} |")
    return out + [""] if len(out) > 4 else []


def _plot_ratios(rows: list[dict[str, Any]], table: PaperTable, path: Path) -> None:
    """Bars of the ratios to the baseline row, written atomically. Drawn on a bare Agg
    Figure: no pyplot state, and importing this module does not switch matplotlib's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = [e["row"].replace(" (Group Num = ", "\ng=").rstrip(")") for e in rows]
    fig = Figure(figsize=(12, 4.2))
    FigureCanvasAgg(fig)
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
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=110))
