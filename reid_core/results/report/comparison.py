"""Published vs reproduced, one line per (row, published column): values, gains, verdicts.

Pure logic on pandas (no Markdown, no plots): :func:`compare` selects the records
(:mod:`~reid_core.results.report.selection`), aggregates each cell's records (mean, sample std,
n over seeds), computes each claim cell's confidence interval of the gain
(:mod:`~reid_core.results.report.uncertainty`) and applies the verdict rule
(:mod:`~reid_core.results.report.verdicts`).

A cell's value: for a ``metrics`` table ``record["final"][record["primary_feature"]][metric]``
(percent), for a measured-quantity table (``parameters``, ``data``) the record's measurement
(:data:`~reid_core.results.report.cell_values.MEASUREMENTS`); a value a record lacks counts as
not run for that column. Absolute values are compared (Δ = reproduced − published) on the paper
profile and for measured quantities; on the smoke profile Δ is NA.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pandas as pd

from reid_core.data.names import NO_DATASET
from reid_core.results.paper_tables import Column, PaperTable, Row, load_table
from reid_core.results.report.cell_values import (
    MEASUREMENTS, eval_setting, metric_value, record_dataset)
from reid_core.results.report.environment import Environment, RecordLabel
from reid_core.results.report.selection import Selection, select
from reid_core.results.report.uncertainty import (
    BootstrapSettings, GainInterval, paired_gain_interval)
from reid_core.results.report.verdicts import (
    cell_verdict, claim_verdict, data_verdict, row_verdict)

__all__ = [
    "CLAIM_COLUMNS", "COMPARISON_COLUMNS", "CellStats", "Comparison", "build_comparison",
    "compare", "gain_rows", "records_in_row_order", "row_names", "row_summary", "rows_in_order",
]

#: Columns of :func:`build_comparison`'s frame, in order.
COMPARISON_COLUMNS: Final[list[str]] = [
    "row", "group", "config", "reference_only", "is_baseline", "dataset", "metric", "unit",
    "published", "flag", "published_note", "source_dataset", "comparable",
    "reproduced", "std", "n", "delta", "published_gain", "reproduced_gain", "gain_se",
    "gain_low", "gain_high", "interval", "paired_seeds", "interval_queries", "interval_note",
    "claim_holds", "verdict",
]


#: Columns of :attr:`Comparison.claims`, in order: one line per (claim, pair, column).
#: ``difference`` = row − against (published, reproduced); ``paper_agrees``: the published
#: difference has the sign the text claims (NA: a published value is missing).
CLAIM_COLUMNS: Final[list[str]] = [
    "claim", "direction", "row", "against", "dataset", "metric", "published_difference",
    "paper_agrees", "reproduced_difference", "n", "n_against", "gain_low", "gain_high",
    "interval", "paired_seeds", "interval_queries", "interval_note", "verdict",
]


@dataclass(frozen=True)
class CellStats:
    """Reproduced values of one (row, column): mean, sample std (NaN if n < 2), n, sources,
    and the records the values come from (for the interval of a gain)."""

    mean: float
    std: float
    n: int
    sources: tuple[str, ...]
    records: tuple[Mapping[str, Any], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, values: list[float], sources: list[str],
           records: Sequence[Mapping[str, Any]] = ()) -> CellStats:
        n = len(values)
        mean = sum(values) / n if n else math.nan
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2
               else math.nan)
        return cls(mean, std, n, tuple(sorted(set(sources))), tuple(records))


@dataclass
class Comparison:
    """A table, the records used, and the comparison frame (one line per row and column)."""

    table: PaperTable
    selection: Selection
    frame: pd.DataFrame
    #: The test behind the verdicts (confidence level, replicates, generator seed).
    bootstrap: BootstrapSettings = BootstrapSettings()
    #: The text's claims between rows, one line per (claim, pair, column): :data:`CLAIM_COLUMNS`.
    claims: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=CLAIM_COLUMNS))

    @property
    def comparable(self) -> bool:
        """True when absolute values can be compared (Δ is filled)."""
        return _comparable(self.table, self.selection)

    @property
    def environment(self) -> Environment:
        """The software the used records were made with (a mix of builds is flagged)."""
        return Environment.of(records_in_row_order(self), _row_seed_label(self))


def _comparable(table: PaperTable, selection: Selection) -> bool:
    """Paper-scale runs, or measured quantities (a parameter count is one on any data)."""
    return selection.profile == "paper" or not table.rules.retrieval_metrics


def _cell_stats(
    table: PaperTable, row: Row, column: Column, selection: Selection
) -> CellStats:
    """Mean / std / n of the records of ``row`` that fill ``column``."""
    values: list[float] = []
    sources: list[str] = []
    used: list[Mapping[str, Any]] = []
    query = table.column_query(column) if table.rules.retrieval_metrics else None
    # A multi-query column takes the multi-query evaluations of the row's runs; every other
    # column the runs themselves (whose own query mode must fit the column).
    candidates = selection.evaluations if query == "multi" else selection.records
    for record in candidates:
        if row.config is None or record.get("config_name") != row.config:
            continue
        if column.dataset != NO_DATASET and selection.column_dataset(record) != column.dataset:
            continue
        if query is not None and _query(record) != query:
            continue  # a single-query run does not fill a multi-query column, nor the reverse
        if table.rules.retrieval_metrics:
            value = metric_value(record, column.metric)
        else:
            spec = MEASUREMENTS.get(column.metric)
            value = spec.read(record, column.unit) if spec is not None else None
        if value is not None:
            values.append(value)
            sources.append(record_dataset(record))
            used.append(record)
    return CellStats.of(values, sources, used)


def _query(record: Mapping[str, Any]) -> str:
    """``multi`` for a run (or an evaluation record) evaluated with a multi-query mode
    (``eval.query_mode``), else ``single``."""
    mode = eval_setting(record, "query_mode")
    return "multi" if isinstance(mode, str) and mode.startswith("multi") else "single"


def compare(
    table_id: str | PaperTable,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None = None,
    profile: str | None = None,
    compare_to: str | None = None,
    tables_dir: str | Path | None = None,
    bootstrap: BootstrapSettings | None = None,
    excluded: Sequence[tuple[str, str]] = (),
) -> Comparison:
    """The full comparison (table, selection, frame); see :func:`build_comparison`.

    ``bootstrap``: the intervals' confidence level, replicates and generator seed (default
    :class:`~reid_core.results.report.uncertainty.BootstrapSettings`: 95%, 2000, seed 0).
    ``excluded``: ``(run id, reason)`` of records the caller left out (e.g. another reproduce
    profile's), listed with the records the selection did not use.

    Raises ValueError for a table whose kind is not compared cell by cell (a ``cost`` table:
    its report is :func:`~reid_core.results.report.render_cost_report`).
    """
    table = table_id if isinstance(table_id, PaperTable) else load_table(table_id, tables_dir)
    if not table.rules.cellwise:
        raise ValueError(f"{table.table_id} is a {table.kind} table: it is not compared cell by "
                         f"cell (render it with reid_core.app.tables.render_table_report)")
    selection = select(table, records, dataset, profile, compare_to)
    selection.ignored[:0] = list(excluded)
    bootstrap = bootstrap or BootstrapSettings()
    stats = {(row.name, j): _cell_stats(table, row, column, selection)
             for row in table.rows for j, column in enumerate(table.columns)}
    comparable = _comparable(table, selection)
    lines = [
        _line(table, row, j, stats, comparable, bootstrap)
        for row in table.rows for j in range(len(table.columns))
    ]
    frame = pd.DataFrame.from_records(lines, columns=COMPARISON_COLUMNS)
    for name in ("published", "reproduced", "std", "delta", "published_gain",
                 "reproduced_gain", "gain_se", "gain_low", "gain_high"):
        frame[name] = frame[name].astype(float)
    for name in ("n", "paired_seeds"):
        frame[name] = frame[name].astype(int)
    frame["interval_queries"] = frame["interval_queries"].astype("Int64")
    frame["claim_holds"] = frame["claim_holds"].astype("boolean")
    frame.attrs.update(table_id=table.table_id, profile=selection.profile,
                       compare_to=selection.compare_to, comparable=comparable,
                       confidence=bootstrap.confidence, resamples=bootstrap.resamples,
                       bootstrap_seed=bootstrap.seed)
    return Comparison(table, selection, frame, bootstrap,
                      _claim_frame(table, stats, bootstrap))


def _claim_frame(table: PaperTable, stats: Mapping[tuple[str, int], CellStats],
                 bootstrap: BootstrapSettings) -> pd.DataFrame:
    """The lines of :data:`CLAIM_COLUMNS`: per claim, pair and column, the published and the
    reproduced difference row − against, its interval and verdict (paired as a gain is)."""
    lines = []
    for claim in table.claims:
        for name, against in claim.pairs:
            row, other = table.row(name), table.row(against)
            for j, column in enumerate(table.columns):
                here, there = stats[(name, j)], stats[(against, j)]
                a, b = row.cells[j].value, other.cells[j].value
                published = math.nan if a is None or b is None else round(a - b, 10)
                interval = (paired_gain_interval(here.records, there.records, column.metric,
                                                 bootstrap)
                            if here.n and there.n else GainInterval())
                lines.append({
                    "claim": claim.claim, "direction": claim.direction, "row": name,
                    "against": against, "dataset": column.dataset, "metric": column.metric,
                    "published_difference": published,
                    "paper_agrees": (pd.NA if math.isnan(published)
                                     else published != 0
                                     and math.copysign(1, published) == claim.sign),
                    "reproduced_difference": here.mean - there.mean,
                    "n": here.n, "n_against": there.n, **_interval_fields(interval),
                    "verdict": claim_verdict(claim.sign, here.n, there.n, interval.seeds,
                                             interval.low, interval.high),
                })
    frame = pd.DataFrame.from_records(lines, columns=CLAIM_COLUMNS)
    for name in ("published_difference", "reproduced_difference", "gain_low", "gain_high"):
        frame[name] = frame[name].astype(float)
    frame["paper_agrees"] = frame["paper_agrees"].astype("boolean")
    frame["interval_queries"] = frame["interval_queries"].astype("Int64")
    return frame


def build_comparison(
    table_id: str,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None = None,
    profile: str | None = None,
    *,
    compare_to: str | None = None,
    tables_dir: str | Path | None = None,
    bootstrap: BootstrapSettings | None = None,
) -> pd.DataFrame:
    """One line per (table row, published column): published vs reproduced, gains, verdict.

    Args:
        table_id: a paper table id (``rga_table1``); unknown ids raise PaperTableError
            (a ValueError) listing the valid ones.
        records: run-record dicts (e.g. from :func:`reid_core.results.store.load_records`);
            records of other configs are ignored.
        dataset: only use records on this dataset (a record name like ``cuhk03np-labeled`` or
            ``synthetic``, or a table name like ``cuhk03-labeled``).
        profile: ``"paper"`` or ``"smoke"``; inferred from the records when None.
        compare_to: smoke profile only: the published dataset whose columns the synthetic
            runs are lined up with (default: the table's first dataset).
        tables_dir: paper tables directory (default: the repo's ``paper_tables/``).
        bootstrap: the test behind the verdicts (default: 95%, 2000 resamples, seed 0).

    Returns:
        A frame with :data:`COMPARISON_COLUMNS`. ``reproduced``/``std``/``delta``/gains are NaN
        where there is nothing to show (never 0); ``claim_holds`` is a nullable boolean (the
        sign of the gain agrees). Per claim cell, ``gain_low`` / ``gain_high`` bound the
        confidence interval of the gain (NaN: none), ``interval`` names its method
        (``queries+seeds``, ``queries``, ``seeds``; missing: no interval), ``paired_seeds`` and
        ``interval_queries`` (NA without per-query data) say what it rests on and
        ``interval_note`` what the reader should know (refused pairing, unpaired seeds);
        ``verdict`` is drawn from it (:mod:`~reid_core.results.report.verdicts`).
        ``frame.attrs`` holds ``profile``, ``compare_to``, ``comparable`` and the test's
        ``confidence``, ``resamples``, ``bootstrap_seed``.
    """
    return compare(table_id, records, dataset, profile, compare_to, tables_dir, bootstrap).frame


def _baseline(table: PaperTable) -> Row | None:
    """The table's baseline row, if it names one."""
    return table.row(table.baseline_row) if table.baseline_row is not None else None


def _line(
    table: PaperTable, row: Row, j: int, stats: Mapping[tuple[str, int], CellStats],
    comparable: bool, bootstrap: BootstrapSettings,
) -> dict[str, Any]:
    """The frame line of ``row`` in column ``j``."""
    column, cell, here = table.columns[j], row.cells[j], stats[(row.name, j)]
    published = math.nan if cell.value is None else cell.value
    base_row = _baseline(table)
    is_baseline = base_row is not None and row.name == base_row.name
    metrics = table.rules.retrieval_metrics
    line: dict[str, Any] = {
        "row": row.name, "group": row.group, "config": row.config,
        "reference_only": row.reference_only, "is_baseline": is_baseline,
        "dataset": column.dataset, "metric": column.metric,
        "unit": column.unit or ("%" if metrics else None),
        "published": published, "flag": cell.flag, "published_note": cell.note,
        "source_dataset": ", ".join(here.sources) or None, "comparable": comparable,
        "reproduced": here.mean, "std": here.std, "n": here.n,
        "delta": here.mean - published if comparable else math.nan,
        "published_gain": math.nan, "reproduced_gain": math.nan, "gain_se": math.nan,
        **_interval_fields(GainInterval()), "claim_holds": pd.NA,
    }
    if not metrics:  # measured quantities: no gains, no claims
        line["verdict"] = data_verdict(row, here.n)
        return line
    base = stats[(base_row.name, j)] if base_row is not None else None
    if base_row is not None and base is not None and not is_baseline:
        base_published = base_row.cells[j].value
        if base_published is not None:
            line["published_gain"] = round(published - base_published, 10)
        line["reproduced_gain"] = here.mean - base.mean
        if here.n >= 2 and base.n >= 2:
            line["gain_se"] = math.sqrt(here.std**2 / here.n + base.std**2 / base.n)
        checked = (here.n and base.n and not row.reference_only
                   and not math.isnan(line["published_gain"]) and line["published_gain"] != 0)
        if checked:
            line.update(_interval_fields(paired_gain_interval(
                here.records, base.records, column.metric, bootstrap)))
    line["claim_holds"], line["verdict"] = cell_verdict(
        line, row, is_baseline, here.n, None if base is None else base.n)
    return line


def _interval_fields(interval: GainInterval) -> dict[str, Any]:
    """The frame columns of a cell's interval."""
    return {"gain_low": interval.low, "gain_high": interval.high, "interval": interval.method,
            "paired_seeds": interval.seeds,
            "interval_queries": pd.NA if interval.queries is None else interval.queries,
            "interval_note": interval.note}


# --------------------------------------------------------------------------- rows


def rows_in_order(comp: Comparison) -> list[tuple[Row, pd.DataFrame]]:
    """(row, its frame lines in column order), in the paper's row order."""
    frame = comp.frame
    return [(row, frame[frame["row"] == row.name]) for row in comp.table.rows]


def gain_rows(comp: Comparison) -> list[Row]:
    """Rows whose gain over the baseline can be checked (none without a baseline row)."""
    if not comp.table.rules.retrieval_metrics or comp.table.baseline_row is None:
        return []
    return [row for row in comp.table.rows
            if not row.reference_only and row.name != comp.table.baseline_row]


def row_summary(comp: Comparison) -> list[tuple[str, int, str]]:
    """(row, number of records, row verdict) per printed row, for the CLI's summary table."""
    return [(row.name, int(sub["n"].max()) if len(sub) else 0, row_verdict(sub))
            for row, sub in rows_in_order(comp)]


def row_names(table: PaperTable) -> dict[str, str]:
    """Config id -> the name of the first (non-reference first) row that runs it."""
    names: dict[str, str] = {}
    for row in sorted(table.rows, key=lambda r: r.reference_only):
        if row.config is not None:
            names.setdefault(row.config, row.name)
    return names


def _row_seed_label(comp: Comparison) -> RecordLabel:
    """Label records by row and seed; the row names its dataset when the report spans several
    (``RGA-SC on market1501``)."""
    names = row_names(comp.table)
    several = len({record_dataset(r) for r in comp.selection.records}) > 1

    def label(record: Mapping[str, Any]) -> tuple[str, str | None]:
        config = str(record.get("config_name"))
        row = names.get(config, config)
        if several:
            row += f" on {record_dataset(record)}"
        return row, str(record.get("seed", "?"))
    return label


def records_in_row_order(comp: Comparison) -> list[dict[str, Any]]:
    """The used records, in the paper's row order (so version lists read like the table)."""
    order = {config: i for i, config in enumerate(row_names(comp.table))}
    return sorted(comp.selection.records,
                  key=lambda r: order.get(str(r.get("config_name")), len(order)))
