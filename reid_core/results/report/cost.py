"""The cost comparison of a ``cost`` table (CSA Table 6): measured vs published memory and
speed, as ratios to the baseline row (pure logic, no rendering).

Absolute memory and FPS depend on the machine, so the report lines up **ratios to the
baseline row** (the paper's claim: "PCB+SA uses 242% of PCB's memory and 59% of its FPS"),
next to the absolute values of both. The records are the ``measurement`` records written by
:func:`reid_core.app.tables.measure_cost_row`; their ``measurements`` mapping holds::

    fps:                  {best, median, times_s: [...]}   # images/s from the min / median time
    memory_per_image_mb:  {inference: MB, train: MB}        # see ``memory_method``
    memory_method, batch_size, input_size, device, threads, repeats

Both memory modes are reported because the paper does not say which it measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any, Final

from reid_core.results.paper_tables import PaperTable
from reid_core.results.report.environment import Environment
from reid_core.results.table_kinds import kind_rules

__all__ = ["COST_KIND", "COST_METRICS", "MEMORY_MODES", "cost_environment", "cost_frame",
           "measured", "used_records"]

#: The paper-table kind this report renders (``kind: cost``).
COST_KIND: Final[str] = "cost"
MEMORY_MODES: Final[tuple[str, ...]] = ("train", "inference")
#: The column metrics of a cost table (its kind's rules: reid_core.results.table_kinds).
COST_METRICS: Final[frozenset[str]] = kind_rules(COST_KIND).quantities or frozenset()


def _published(table: PaperTable, metric: str) -> dict[str, float | None]:
    j = next(i for i, c in enumerate(table.columns) if c.metric == metric)
    return {row.name: row.cells[j].value for row in table.rows}


def _is_cost_record(record: Mapping[str, Any], config: str | None) -> bool:
    """True for a cost measurement (memory / FPS) of ``config``."""
    measurements = record.get("measurements")
    return (config is not None and record.get("config_name") == config
            and isinstance(measurements, Mapping) and "fps" in measurements)


def measured(records: Sequence[Mapping[str, Any]], config: str | None) -> list[Mapping[str, Any]]:
    """The ``measurements`` of the cost records of ``config``, in record order."""
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
        ms = measured(records, row.config)
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
