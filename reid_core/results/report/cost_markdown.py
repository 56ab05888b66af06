"""The Markdown of a cost report: how it was measured, the environment, the ratios table and
the raw peaks behind the per-image numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from reid_core.results.paper_tables import PaperTable
from reid_core.results.report.cost import cost_environment, measured

__all__ = ["cost_markdown"]


def _pct(x: float | None) -> str:
    """A ratio as a percentage (``not run`` for none)."""
    return "not run" if x is None else f"{100 * x:.0f}%"


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    """A measured or published value (``not run`` for none)."""
    return "not run" if x is None else fmt.format(x)


def cost_markdown(table: PaperTable, rows: list[dict[str, Any]],
                  records: Sequence[Mapping[str, Any]], png_name: str) -> str:
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
        ms = measured(records, row.config)
        if not ms or "peak_mb" not in ms[0]:
            continue
        for mode, peaks in ms[0]["peak_mb"].items():
            (b, small), (b2, large) = sorted(peaks.items(), key=lambda kv: int(kv[0]))
            out.append(f"| {row.name} | {mode} | {small:.1f} (B = {b}) | {large:.1f} (2B = {b2}) "
                       f"| {large / int(b2):.1f} |")
    return out + [""] if len(out) > 4 else []
