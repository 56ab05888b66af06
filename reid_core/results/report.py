"""Comparison reports: a published table and the reproduced run records, side by side.

``python -m reid_core report <table-id>`` regenerates ``results/reports/<table-id>.md`` (plus two
PNG plots) from the run records alone. From Python::

    records = load_records(Path("results/runs"))
    frame = build_comparison("rga_table1", records)       # one line per (row, published column)
    path = render_report("rga_table1", records)           # results/reports/rga_table1.md

**Which record fills which cell.** A record belongs to a table row when ``record["config_name"]``
equals the row's ``config``. Its value for a metrics column is
``record["final"][record["primary_feature"]][metric]`` (percent); a metric the record lacks
counts as not run for that column. The record's dataset (``record["dataset"]["name"]``) decides
the column: real datasets through :data:`DATASET_TO_COLUMN` (``cuhk03np-labeled`` fills the
``cuhk03-labeled`` columns, ...); datasets not in that dict are ignored and listed in the report.

**Profiles.** ``paper``: runs on real datasets, compared in absolute terms (Δ = reproduced −
published). ``smoke``: runs on a synthetic dataset (name starting with ``synthetic``); their
numbers are lined up under one published dataset (``compare_to``, default the table's first
dataset) so that the *direction* of each gain over the baseline can be checked, but Δ is NA
because absolute values on synthetic data say nothing about the paper's numbers. The profile is
inferred (any usable real-dataset record → ``paper``, else ``smoke``) unless given; records of the
other profile are ignored and listed, so a report never mixes the two scales.

**Verdict rule** (per row and published column, rows other than the baseline and reference rows):

* published gain ``g_p`` = published(row) − published(baseline row), same column;
  reproduced gain ``g_r`` = mean(row) − mean(baseline row) over the seeds (records) of each.
* ``claim_holds`` is NA unless both gains exist and ``g_p != 0``; then it is
  ``sign(g_r) == sign(g_p)``.
* ``verdict`` refines it with the seed noise: with at least 2 seeds on both rows,
  ``gain_se = sqrt(std_row**2 / n_row + std_base**2 / n_base)`` (standard error of the
  difference of the two means); if ``|g_r| <= gain_se`` the verdict is ``inconclusive``
  whatever the sign. Otherwise ``holds`` / ``does not hold`` follow ``claim_holds``. With a
  single seed on either row there is no noise estimate: the verdict is the sign alone and the
  report's summary counts such single-seed verdicts.
* Other verdicts: ``baseline``, ``reference only``, ``not run`` (no record for the row/column),
  ``no baseline run`` (row run, baseline not), ``no published gain`` (a published value is
  missing or the published gain is 0).

**Data tables** (``kind: data``, e.g. RGA Table 3 parameter counts): a record supplies a quantity
through :data:`MEASUREMENTS` (quantity name → where the raw value sits in the record and how to
convert it to the table's unit). Today: ``params`` = ``record["measurements"]["params"]``, a raw
parameter count, shown in millions for a column in ``M``. Add an entry to support another
quantity. No gains or claims are computed for data tables.

**Environment.** The header states the software the used records (after selection and
superseding) were made with: torch, torchvision, numpy, python, platform from
``record["versions"]``. When they span several torch / torchvision / numpy versions (CPU
results differ between builds, same seed) a warning above the facts lists, per version, which
rows and seeds were made with it (:class:`Environment`, shared with the cost report).

**Nothing to report.** :func:`write_report` raises :class:`EmptyReportError` (a ValueError)
and writes nothing when the selection holds no record: a filter that matches nothing must not
replace a committed report and its plots with an all-"not run" table.
"""

from __future__ import annotations

import hashlib

import json
import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Final, Mapping, Sequence

import pandas as pd

from reid_core.results.paper_tables import Column, PaperTable, Row, load_table
from reid_core.utils.io import atomic_save, atomic_write_text

__all__ = [
    "BUILD_KEYS",
    "COMPARISON_COLUMNS",
    "DATASET_TO_COLUMN",
    "ENVIRONMENT_KEYS",
    "MEASUREMENTS",
    "PROFILES",
    "Comparison",
    "EmptyReportError",
    "Environment",
    "Measurement",
    "RecordLabel",
    "VersionMix",
    "build_comparison",
    "compare",
    "load_records",
    "record_version",
    "render_report",
    "row_summary",
    "untouched_text",
    "write_report",
]

#: Record dataset name (``record["dataset"]["name"]``) -> the published tables' dataset name.
#: Deliberately absent: ``msmt17v2`` (faces blurred: a different image set) and the
#: ``*-trainval`` variants (train on train + val: not comparable to published numbers).
DATASET_TO_COLUMN: Final[dict[str, str]] = {
    "market1501": "market1501",
    "dukemtmcreid": "dukemtmcreid",
    "cuhk03np-labeled": "cuhk03-labeled",
    "cuhk03np-detected": "cuhk03-detected",
    "msmt17": "msmt17",
    # Dataset-independent measurements (e.g. parameter counts, RGA Table 3).
    "n/a": "n/a",
}
#: Record datasets whose name starts with this are synthetic smoke runs.
SMOKE_PREFIX: Final[str] = "synthetic"
PROFILES: Final[tuple[str, ...]] = ("smoke", "paper")

HOLDS: Final[str] = "holds"
NOT_HOLDS: Final[str] = "does not hold"
INCONCLUSIVE: Final[str] = "inconclusive"
NOT_RUN: Final[str] = "not run"
BASELINE: Final[str] = "baseline"
REFERENCE: Final[str] = "reference only"
NO_BASELINE_RUN: Final[str] = "no baseline run"
NO_PUBLISHED_GAIN: Final[str] = "no published gain"
MEASURED: Final[str] = "measured"
NO_CONFIG: Final[str] = "no config"
CHECKED: Final[tuple[str, ...]] = (HOLDS, NOT_HOLDS, INCONCLUSIVE)

#: Columns of :func:`build_comparison`'s frame, in order.
COMPARISON_COLUMNS: Final[list[str]] = [
    "row", "group", "config", "reference_only", "is_baseline", "dataset", "metric", "unit",
    "published", "flag", "published_note", "source_dataset", "comparable",
    "reproduced", "std", "n", "delta", "published_gain", "reproduced_gain", "gain_se",
    "claim_holds", "verdict",
]


@dataclass(frozen=True)
class Measurement:
    """Where a data-table quantity sits in a run record, and how to express it in a table unit.

    The table value is ``raw / divisors[column.unit]``; a unit not in ``divisors`` is not filled.
    """

    path: tuple[str, ...]
    divisors: Mapping[str, float]

    def read(self, record: Mapping[str, Any], unit: str | None) -> float | None:
        """The record's value in ``unit``, or None when absent or not convertible."""
        value: Any = record
        for key in self.path:
            if not isinstance(value, Mapping) or key not in value:
                return None
            value = value[key]
        divisor = self.divisors.get(unit or "")
        number = _finite(value)
        return None if number is None or divisor is None else number / divisor


#: Data-table quantity name (the column's ``metric``) -> how a record supplies it.
MEASUREMENTS: Final[dict[str, Measurement]] = {
    "params": Measurement(("measurements", "params"), {"M": 1e6, "K": 1e3, "count": 1.0}),
}


# --------------------------------------------------------------------------- records


def load_records(runs_dir: str | Path = Path("results/runs")) -> list[dict[str, Any]]:
    """Every run record ``*.json`` in ``runs_dir`` (sorted by file name).

    Files that are not valid JSON or not a record (a mapping with ``run_id``, ``config_name``
    and ``dataset.name``) are skipped with a :class:`UserWarning` naming them.
    FileNotFoundError if ``runs_dir`` is not a directory.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs directory {runs_dir} does not exist")
    records = []
    for path in sorted(runs_dir.glob("*.json")):
        problem = None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            problem = _record_problem(data)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"not readable JSON ({exc})"
        if problem is not None:
            warnings.warn(f"skipping {path}: {problem}", UserWarning, stacklevel=2)
            continue
        records.append(data)
    return records


def _record_problem(data: object) -> str | None:
    """Why ``data`` is not a run record, or None."""
    if not isinstance(data, dict):
        return f"not a run record (top level is a {type(data).__name__})"
    missing = [k for k in ("run_id", "config_name") if not isinstance(data.get(k), str)]
    dataset = data.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        missing.append("dataset.name")
    return f"not a run record (missing {', '.join(missing)})" if missing else None


def record_dataset(record: Mapping[str, Any]) -> str:
    """The dataset a record ran on (``record["dataset"]["name"]``)."""
    return str(record["dataset"]["name"])


def is_smoke(dataset_name: str) -> bool:
    """True for a synthetic (smoke-scale) dataset."""
    return dataset_name.startswith(SMOKE_PREFIX)


def _run_id(record: Mapping[str, Any]) -> str:
    return str(record.get("run_id", "?"))


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None (bools, strings, NaN are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def metric_value(record: Mapping[str, Any], metric: str) -> float | None:
    """``record["final"][record["primary_feature"]][metric]``, or None when absent.

    A record without ``primary_feature`` but with a single feature in ``final`` uses that one.
    """
    final = record.get("final")
    if not isinstance(final, Mapping) or not final:
        return None
    feature = record.get("primary_feature")
    if feature is None and len(final) == 1:
        feature = next(iter(final))
    values = final.get(feature)
    return _finite(values.get(metric)) if isinstance(values, Mapping) else None


# --------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """Which records a report uses, on which scale, and which it ignored (and why)."""

    profile: str
    compare_to: str | None
    smoke_dataset: str | None
    records: list[dict[str, Any]]
    ignored: list[tuple[str, str]] = field(default_factory=list)
    #: The filters the caller asked for (None: not given). Kept so that an empty selection
    #: can say which filter matched nothing (:class:`EmptyReportError`).
    wanted_dataset: str | None = None
    wanted_profile: str | None = None
    #: Dataset -> (records of this table's configs on it, before any filter; ``smoke``,
    #: ``paper`` or why they are unusable): what the caller could have asked for instead.
    available: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: Records given in all (of any config).
    n_given: int = 0

    def column_dataset(self, record: Mapping[str, Any]) -> str | None:
        """The published dataset whose columns ``record`` fills."""
        name = record_dataset(record)
        if self.profile == "smoke":
            return self.compare_to
        return DATASET_TO_COLUMN.get(name)


def _table_datasets(table: PaperTable) -> list[str]:
    """The table's column datasets, first-appearance order, without ``n/a``."""
    return list(dict.fromkeys(c.dataset for c in table.columns if c.dataset != "n/a"))


def _select(
    table: PaperTable,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None,
    profile: str | None,
    compare_to: str | None,
) -> Selection:
    """Keep the records of this table's configs that fit one profile; note the others."""
    if profile is not None and profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    datasets = _table_datasets(table)
    if compare_to is not None and compare_to not in datasets:
        raise ValueError(f"{table.table_id} has no {compare_to!r} columns; "
                         f"--compare-to must be one of: {', '.join(datasets) or '(none)'}")
    configs = {row.config for row in table.rows if row.config is not None}
    wanted_profile = profile
    ignored: list[tuple[str, str]] = []
    smoke: list[dict[str, Any]] = []
    real: list[dict[str, Any]] = []
    any_column = any(c.dataset == "n/a" for c in table.columns)
    for record in records:
        if record.get("config_name") not in configs:
            continue
        name = record_dataset(record)
        reason = _dataset_problem(name, dataset, datasets, any_column)
        if reason is not None:
            ignored.append((_run_id(record), reason))
        else:
            (smoke if is_smoke(name) else real).append(dict(record))
    real, smoke = _drop_superseded(real, ignored), _drop_superseded(smoke, ignored)
    context: dict[str, Any] = {
        "wanted_dataset": dataset, "wanted_profile": wanted_profile, "n_given": len(records),
        "available": _available(records, configs, datasets, any_column)}
    if profile is None:
        profile = "paper" if real or not smoke else "smoke"
    if profile == "paper":
        ignored += [(_run_id(r), f"smoke run on {record_dataset(r)}; see the smoke profile")
                    for r in smoke]
        return Selection("paper", None, None, real, ignored, **context)
    ignored += [(_run_id(r), f"real-dataset run on {record_dataset(r)}; see the paper profile")
                for r in real]
    counts = Counter(record_dataset(r) for r in smoke)
    chosen = max(sorted(counts), key=counts.__getitem__) if counts else None
    kept = [r for r in smoke if record_dataset(r) == chosen]
    ignored += [(_run_id(r), f"smoke run on {record_dataset(r)}; this report uses {chosen}")
                for r in smoke if record_dataset(r) != chosen]
    target = compare_to or (datasets[0] if datasets else None)
    return Selection("smoke", target, chosen, kept, ignored, **context)


def _available(
    records: Sequence[Mapping[str, Any]], configs: set[str], datasets: list[str],
    any_column: bool,
) -> dict[str, tuple[int, str]]:
    """Per dataset, the records of ``configs`` on it and their profile (or why unusable).

    Ignores the caller's filters on purpose: it answers "what else could I report?".
    """
    counts = Counter(record_dataset(r) for r in records if r.get("config_name") in configs)
    out: dict[str, tuple[int, str]] = {}
    for name in sorted(counts):
        problem = _dataset_problem(name, None, datasets, any_column)
        status = problem or ("smoke" if is_smoke(name) else "paper")
        out[name] = (counts[name], status)
    return out


def _recipe_key(record: Mapping[str, Any]) -> str | None:
    """Digest of the record's config without its seed, and of the data identity it ran on
    (records of one recipe differ only by seed); ``None`` when the record carries no config."""
    config = record.get("config")
    if not isinstance(config, Mapping):
        return None
    # What it ran on is part of the recipe: a run on regenerated synthetic data (another
    # generator version) or another copy of a dataset is not a seed of the same experiment.
    data = (record.get("dataset") or {}).get("identity")
    canon = json.dumps({"config": {k: v for k, v in config.items() if k != "seed"},
                        **({"data": data} if data else {})}, sort_keys=True)
    return hashlib.sha256(canon.encode()).hexdigest()[:12]


def _drop_superseded(records: list[dict[str, Any]],
                     ignored: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per (config name, dataset), keep only the newest recipe.

    A config edited after some runs leaves records of two recipes under one name; averaging
    them as if they were seeds would be wrong, so the older recipe's records are set aside.
    """
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r.get("config_name"), record_dataset(r))].append(r)
    kept: list[dict[str, Any]] = []
    for group in groups.values():
        recipes = {_recipe_key(r) for r in group}
        if len(recipes) <= 1:
            kept += group
            continue
        newest = max(group, key=lambda r: str(r.get("finished_at", "")))
        for r in group:
            if _recipe_key(r) == _recipe_key(newest):
                kept.append(r)
            else:
                ignored.append((_run_id(r), "superseded: the config or the data it ran on "
                                            "changed since this run (newer recipe "
                                            f"{_recipe_key(newest)})"))
    return kept


def _dataset_problem(
    name: str, wanted: str | None, datasets: list[str], any_column: bool
) -> str | None:
    """Why a record on dataset ``name`` cannot be used in this table, or None."""
    column = DATASET_TO_COLUMN.get(name)
    if wanted is not None and wanted not in (name, column):
        return f"ran on {name}, not on the requested dataset {wanted}"
    if is_smoke(name):
        return None
    if column is None:
        return f"dataset {name!r} has no published counterpart (see DATASET_TO_COLUMN)"
    if column not in datasets and not any_column:
        return f"the table has no {column} columns"
    return None


# --------------------------------------------------------------------------- comparison


@dataclass(frozen=True)
class _Stats:
    """Reproduced values of one (row, column): mean, sample std (NaN if n < 2), n, sources."""

    mean: float
    std: float
    n: int
    sources: tuple[str, ...]

    @classmethod
    def of(cls, values: list[float], sources: list[str]) -> _Stats:
        n = len(values)
        mean = sum(values) / n if n else math.nan
        std = (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n >= 2
               else math.nan)
        return cls(mean, std, n, tuple(sorted(set(sources))))


@dataclass
class Comparison:
    """A table, the records used, and the comparison frame (one line per row and column)."""

    table: PaperTable
    selection: Selection
    frame: pd.DataFrame

    @property
    def comparable(self) -> bool:
        """True when absolute values can be compared (Δ is filled)."""
        return self.selection.profile == "paper" or self.table.kind == "data"

    @property
    def environment(self) -> Environment:
        """The software the used records were made with (a mix of builds is flagged)."""
        return Environment.of(_records_in_row_order(self), _row_seed_label(self))


def _cell_stats(
    table: PaperTable, row: Row, column: Column, selection: Selection
) -> _Stats:
    """Mean / std / n of the records of ``row`` that fill ``column``."""
    values: list[float] = []
    sources: list[str] = []
    for record in selection.records:
        if row.config is None or record.get("config_name") != row.config:
            continue
        if column.dataset != "n/a" and selection.column_dataset(record) != column.dataset:
            continue
        if table.kind == "metrics":
            value = metric_value(record, column.metric)
        else:
            spec = MEASUREMENTS.get(column.metric)
            value = spec.read(record, column.unit) if spec is not None else None
        if value is not None:
            values.append(value)
            sources.append(record_dataset(record))
    return _Stats.of(values, sources)


def compare(
    table_id: str | PaperTable,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None = None,
    profile: str | None = None,
    compare_to: str | None = None,
    tables_dir: str | Path | None = None,
) -> Comparison:
    """The full comparison (table, selection, frame); see :func:`build_comparison`."""
    table = table_id if isinstance(table_id, PaperTable) else load_table(table_id, tables_dir)
    selection = _select(table, records, dataset, profile, compare_to)
    stats = {(row.name, j): _cell_stats(table, row, column, selection)
             for row in table.rows for j, column in enumerate(table.columns)}
    comparable = selection.profile == "paper" or table.kind == "data"
    lines = [
        _line(table, row, j, stats, comparable)
        for row in table.rows for j in range(len(table.columns))
    ]
    frame = pd.DataFrame.from_records(lines, columns=COMPARISON_COLUMNS)
    for name in ("published", "reproduced", "std", "delta", "published_gain",
                 "reproduced_gain", "gain_se"):
        frame[name] = frame[name].astype(float)
    frame["n"] = frame["n"].astype(int)
    frame["claim_holds"] = frame["claim_holds"].astype("boolean")
    frame.attrs.update(table_id=table.table_id, profile=selection.profile,
                       compare_to=selection.compare_to, comparable=comparable)
    return Comparison(table, selection, frame)


def build_comparison(
    table_id: str,
    records: Sequence[Mapping[str, Any]],
    dataset: str | None = None,
    profile: str | None = None,
    *,
    compare_to: str | None = None,
    tables_dir: str | Path | None = None,
) -> pd.DataFrame:
    """One line per (table row, published column): published vs reproduced, gains, verdict.

    Args:
        table_id: a paper table id (``rga_table1``); unknown ids raise PaperTableError
            (a ValueError) listing the valid ones.
        records: run-record dicts (e.g. from :func:`load_records`); records of other configs
            are ignored.
        dataset: only use records on this dataset (a record name like ``cuhk03np-labeled`` or
            ``synthetic``, or a table name like ``cuhk03-labeled``).
        profile: ``"paper"`` or ``"smoke"``; inferred from the records when None.
        compare_to: smoke profile only: the published dataset whose columns the synthetic
            runs are lined up with (default: the table's first dataset).
        tables_dir: paper tables directory (default: the repo's ``paper_tables/``).

    Returns:
        A frame with :data:`COMPARISON_COLUMNS`. ``reproduced``/``std``/``delta``/gains are NaN
        where there is nothing to show (never 0); ``claim_holds`` is a nullable boolean;
        ``frame.attrs`` holds ``profile``, ``compare_to`` and ``comparable``.
    """
    return compare(table_id, records, dataset, profile, compare_to, tables_dir).frame


def _line(
    table: PaperTable, row: Row, j: int, stats: Mapping[tuple[str, int], _Stats],
    comparable: bool,
) -> dict[str, Any]:
    """The frame line of ``row`` in column ``j``."""
    column, cell, here = table.columns[j], row.cells[j], stats[(row.name, j)]
    published = math.nan if cell.value is None else cell.value
    base_row = _baseline(table)
    is_baseline = base_row is not None and row.name == base_row.name
    line: dict[str, Any] = {
        "row": row.name, "group": row.group, "config": row.config,
        "reference_only": row.reference_only, "is_baseline": is_baseline,
        "dataset": column.dataset, "metric": column.metric,
        "unit": column.unit or ("%" if table.kind == "metrics" else None),
        "published": published, "flag": cell.flag, "published_note": cell.note,
        "source_dataset": ", ".join(here.sources) or None, "comparable": comparable,
        "reproduced": here.mean, "std": here.std, "n": here.n,
        "delta": here.mean - published if comparable else math.nan,
        "published_gain": math.nan, "reproduced_gain": math.nan, "gain_se": math.nan,
        "claim_holds": pd.NA,
    }
    if table.kind == "data":
        line["verdict"] = _data_verdict(row, here)
        return line
    base = stats[(base_row.name, j)] if base_row is not None else None
    if base_row is not None and base is not None and not is_baseline:
        base_published = base_row.cells[j].value
        if base_published is not None:
            line["published_gain"] = round(published - base_published, 10)
        line["reproduced_gain"] = here.mean - base.mean
        if here.n >= 2 and base.n >= 2:
            line["gain_se"] = math.sqrt(here.std**2 / here.n + base.std**2 / base.n)
    line["claim_holds"], line["verdict"] = _verdict(line, row, is_baseline, here, base)
    return line


def _baseline(table: PaperTable) -> Row | None:
    """The table's baseline row, if it names one."""
    return table.row(table.baseline_row) if table.baseline_row is not None else None


def _verdict(
    line: Mapping[str, Any], row: Row, is_baseline: bool, here: _Stats, base: _Stats | None
) -> tuple[Any, str]:
    """(claim_holds, verdict) of one cell; the rule is in the module docstring."""
    if row.reference_only:
        return pd.NA, REFERENCE
    if is_baseline:
        return pd.NA, BASELINE
    if here.n == 0:
        return pd.NA, NOT_RUN
    if base is None or base.n == 0:
        return pd.NA, NO_BASELINE_RUN
    g_p, g_r, se = line["published_gain"], line["reproduced_gain"], line["gain_se"]
    if math.isnan(g_p) or g_p == 0:
        return pd.NA, NO_PUBLISHED_GAIN
    holds = math.copysign(1, g_r) == math.copysign(1, g_p) and g_r != 0
    if not math.isnan(se) and abs(g_r) <= se:
        return holds, INCONCLUSIVE
    return holds, HOLDS if holds else NOT_HOLDS


def _data_verdict(row: Row, here: _Stats) -> str:
    """Status of a data-table cell: reference only / measured / not run."""
    if row.reference_only:
        return REFERENCE
    if row.config is None:
        return NO_CONFIG
    return MEASURED if here.n else NOT_RUN


# --------------------------------------------------------------------------- formatting


def _fmt_published(value: float, flag: str, unit: str | None) -> str:
    """A published number as printed (†: reconstructed; — (missing))."""
    if flag == "missing" or math.isnan(value):
        return "— (missing)"
    text = _fmt_plain(value, unit)
    return text + "†" if flag == "reconstructed" else text


def _fmt_plain(value: float, unit: str | None) -> str:
    """A published value with as many decimals as it has (at least one, counts none)."""
    if unit == "count" and value.is_integer():
        return f"{value:.0f}"
    for decimals in (1, 2, 3):
        if abs(round(value, decimals) - value) < 1e-9:
            return f"{value:.{decimals}f}"
    return f"{value:.4g}"


def _fmt_reproduced(mean: float, std: float, n: int) -> str:
    """``78.00 ± 1.00 (n=3)``; a single record shows no std."""
    if n == 0:
        return NOT_RUN
    spread = "" if math.isnan(std) else f" ± {std:.2f}"
    return f"{mean:.2f}{spread} (n={n})"


def _fmt_signed(value: float, decimals: int = 2) -> str:
    """``+1.50`` / ``-0.80``; empty for NaN."""
    return "" if math.isnan(value) else f"{value:+.{decimals}f}"


def _md_cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(
    header: list[str], lines: list[list[str]], right_from: int = 1, right_to: int | None = None
) -> list[str]:
    """A GitHub Markdown table; columns ``right_from`` to ``right_to`` (excl.) right-aligned."""
    stop = len(header) if right_to is None else right_to
    align = ["---:" if right_from <= i < stop else "---" for i in range(len(header))]
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
           "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(_md_cell(c) for c in line) + " |" for line in lines]
    return out


def _column_label(column: Column) -> str:
    """``cuhk03-labeled R1`` (plus the unit of a data column)."""
    label = column.metric if column.dataset == "n/a" else f"{column.dataset} {column.metric}"
    return f"{label} ({column.unit})" if column.unit and column.unit != "%" else label


# --------------------------------------------------------------------------- environment

#: Packages whose build can change the numbers: CPU training is bit-reproducible only within
#: one environment (build, CPU type, threads; README "Environments"), and torchvision / numpy
#: releases change transforms and RNG streams. Records made under several versions of one of
#: these are flagged in the report header.
BUILD_KEYS: Final[tuple[str, ...]] = ("torch", "torchvision", "numpy")
#: Everything the header states about where the records were made (``record["versions"]``).
ENVIRONMENT_KEYS: Final[tuple[str, ...]] = (*BUILD_KEYS, "python", "platform", "cpu_capability")
NOT_RECORDED: Final[str] = "not recorded"

#: How a report names a record in a version list: ``record -> (row name, detail or None)``;
#: the detail is typically the seed (``"0"``); ``None`` counts repeats (``PCB ×2``).
RecordLabel = Callable[[Mapping[str, Any]], tuple[str, str | None]]


def record_version(record: Mapping[str, Any], key: str) -> str:
    """``record["versions"][key]`` as text, or ``"not recorded"``.

    A missing version is a value of its own: such a record cannot be shown to share the build
    of the others.
    """
    versions = record.get("versions")
    value = versions.get(key) if isinstance(versions, Mapping) else None
    return str(value) if value not in (None, "") else NOT_RECORDED


def _by_version(
    records: Sequence[Mapping[str, Any]], key: str
) -> list[tuple[str, list[Mapping[str, Any]]]]:
    """(version, its records) for ``key``, most records first (ties by version text);
    records keep their order."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[record_version(record, key)].append(record)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def _natural(text: str) -> tuple[int, int | str]:
    """Sort key putting numeric seeds in numeric order (2 before 10), then other text."""
    head = text.split(" ", 1)[0]
    return (0, int(head)) if head.isdigit() else (1, text)


def _who(records: Sequence[Mapping[str, Any]], label: RecordLabel) -> tuple[str, ...]:
    """``("ResNet-50 (seeds 0, 1)", "RGA-S (seed 2)")``: rows in first-appearance order."""
    details: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    for record in records:
        row, detail = label(record)
        counts[row] += 1
        mine = details.setdefault(row, [])
        if detail is not None and detail not in mine:
            mine.append(detail)
    parts = []
    for row, mine in details.items():
        if mine:
            word = "seeds" if len(mine) > 1 else "seed"
            parts.append(f"{row} ({word} {', '.join(sorted(mine, key=_natural))})")
        else:
            parts.append(row if counts[row] == 1 else f"{row} ×{counts[row]}")
    return tuple(parts)


def _shorten(parts: tuple[str, ...], keep: int) -> str:
    """The first ``keep`` parts, then how many more (a one-line warning stays readable)."""
    if len(parts) <= keep:
        return ", ".join(parts)
    return ", ".join(parts[:keep]) + f", … (+{len(parts) - keep} more rows)"


def _n_records(n: int) -> str:
    """``1 record`` / ``3 records``."""
    return f"{n} record{'s' if n != 1 else ''}"


@dataclass(frozen=True)
class VersionMix:
    """The build packages (torch, ...) whose version differs among a report's records.

    ``packages``: the varying ones, in :data:`BUILD_KEYS` order (torch and torchvision usually
    change together: one warning, not two). ``groups``: per combination of their versions
    (one version per package), the number of records and which rows / seeds (one text per
    row); most records first.
    """

    packages: tuple[str, ...]
    groups: tuple[tuple[tuple[str, ...], int, tuple[str, ...]], ...]
    #: Rows named per version in :meth:`sentence` (the Markdown lists them all).
    SENTENCE_ROWS: ClassVar[int] = 4

    def _names(self) -> str:
        """``torch``, ``torch and torchvision``, ``torch, torchvision and numpy``."""
        *rest, last = self.packages
        return f"{', '.join(rest)} and {last}" if rest else last

    def _versions(self, versions: tuple[str, ...], code: bool) -> str:
        """``2.15.0`` for one package; ``torch 2.15.0, torchvision 0.29.2`` for several."""
        shown = [_code(v) if code else v for v in versions]
        if len(self.packages) == 1:
            return shown[0]
        return ", ".join(f"{k} {v}" for k, v in zip(self.packages, shown))

    def sentence(self) -> str:
        """The warning as one plain-text line (CLI summary, logs)."""
        parts = [f"{self._versions(versions, False)} ({_n_records(n)}: "
                 f"{_shorten(who, self.SENTENCE_ROWS)})" for versions, n, who in self.groups]
        return (f"⚠ records mix {self._names()} versions: {'; '.join(parts)} — numbers from "
                f"different builds are not bit-comparable")

    def markdown(self) -> list[str]:
        """The warning as a Markdown blockquote, one bullet per version (combination)."""
        out = [f"> **⚠ The records mix {self._names()} versions** — numbers from different "
               f"builds are not bit-comparable (same seed, other losses and metrics):"]
        out += [f"> - {self._versions(versions, True)}: {_n_records(n)} — {', '.join(who)}"
                for versions, n, who in self.groups]
        return out


@dataclass(frozen=True)
class Environment:
    """The software a report's records were made with; the one place both reports (metrics
    and cost) learn whether their numbers come from a single build."""

    records: tuple[Mapping[str, Any], ...]
    mix: VersionMix | None

    @classmethod
    def of(cls, records: Sequence[Mapping[str, Any]], label: RecordLabel) -> Environment:
        """The environment of ``records`` (the ones the report uses, after its selection);
        ``label`` names a record in the per-version lists."""
        varying = tuple(k for k in BUILD_KEYS if len(_by_version(records, k)) > 1)
        if not varying:
            return cls(tuple(records), None)
        groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = defaultdict(list)
        for record in records:
            groups[tuple(record_version(record, k) for k in varying)].append(record)
        ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        return cls(tuple(records), VersionMix(varying, tuple(
            (versions, len(group), _who(group, label)) for versions, group in ordered)))

    @property
    def mixed(self) -> bool:
        return self.mix is not None

    def warnings(self) -> list[str]:
        """The mix as one plain-text line (empty when the builds agree)."""
        return [self.mix.sentence()] if self.mix is not None else []

    def warning_markdown(self) -> list[str]:
        """Header blockquote naming each version and its rows / seeds; empty if unmixed."""
        return self.mix.markdown() + [""] if self.mix is not None else []

    def bullet(self) -> str:
        """The header bullet stating the environment (per version counts where it varies)."""
        if not self.records:
            return "- **Environment:** —"
        parts = []
        for key in ENVIRONMENT_KEYS:
            groups = _by_version(self.records, key)
            if len(groups) == 1:
                parts.append(f"{key} {_code(groups[0][0])}")
            else:
                parts.append(f"{key} " + ", ".join(
                    f"{_code(version)} ({_n_records(len(group))})" for version, group in groups))
        where = ("mixed, see the warning above" if self.mixed
                 else f"all {_n_records(len(self.records))}")
        return f"- **Environment ({where}):** " + " · ".join(parts)


def _data_mix_warning(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """A header blockquote when the used records of one dataset ran on different data (another
    synthetic generator version, another copy of a real dataset): gains between such rows
    compare different data. Records without a data identity (before it was recorded) count as
    their own version."""
    by_dataset: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        ds = r.get("dataset") or {}
        fingerprint = (ds.get("identity") or {}).get("fingerprint") or NOT_RECORDED
        by_dataset[str(ds.get("name"))][fingerprint].append(
            f"{r.get('config_name')} (seed {r.get('seed')})")
    out = []
    for name, groups in by_dataset.items():
        if len(groups) > 1:
            parts = "; ".join(f"`{fp}`: {', '.join(who)}" for fp, who in groups.items())
            out += [f"> ⚠ **The records on {name} ran on {len(groups)} different versions of its "
                    f"data** — {parts}. Gains between rows on different data are not "
                    f"comparable; re-run the older rows.", ""]
    return out


def _code(version: str) -> str:
    """A version in backticks; ``not recorded`` stays plain text."""
    return version if version == NOT_RECORDED else f"`{version}`"


def _row_names(table: PaperTable) -> dict[str, str]:
    """Config id -> the name of the first (non-reference first) row that runs it."""
    names: dict[str, str] = {}
    for row in sorted(table.rows, key=lambda r: r.reference_only):
        if row.config is not None:
            names.setdefault(row.config, row.name)
    return names


def _row_seed_label(comp: Comparison) -> RecordLabel:
    """Label records by row and seed; the row names its dataset when the report spans several
    (``RGA-SC on market1501``)."""
    names = _row_names(comp.table)
    several = len({record_dataset(r) for r in comp.selection.records}) > 1

    def label(record: Mapping[str, Any]) -> tuple[str, str | None]:
        config = str(record.get("config_name"))
        row = names.get(config, config)
        if several:
            row += f" on {record_dataset(record)}"
        return row, str(record.get("seed", "?"))
    return label


def _records_in_row_order(comp: Comparison) -> list[dict[str, Any]]:
    """The used records, in the paper's row order (so version lists read like the table)."""
    order = {config: i for i, config in enumerate(_row_names(comp.table))}
    return sorted(comp.selection.records,
                  key=lambda r: order.get(str(r.get("config_name")), len(order)))


# --------------------------------------------------------------------------- header


def _header(comp: Comparison) -> list[str]:
    """Title, caption, and the facts a reader needs to trust the numbers."""
    table, sel = comp.table, comp.selection
    records = sel.records
    out = [f"# {table.paper} Table {table.table}: published vs reproduced", "",
           f"*{table.paper_title}* ({table.paper}), Table {table.table} "
           f"(`paper_tables/{table.table_id}.yaml`, source `{table.source}`).", "",
           f"> {table.caption}", ""]
    if sel.profile == "smoke" and table.kind == "metrics" and records:
        out += [_smoke_warning(sel), ""]
    environment = comp.environment
    out += environment.warning_markdown()
    out += _data_mix_warning(_records_in_row_order(comp))
    run_rows = sorted({r["config_name"] for r in records})
    out += [
        f"- **Profile:** {_profile_text(sel)}",
        f"- **Records:** {len(records)} run record(s) for {len(run_rows)} of "
        f"{len(table.configs())} reproducible configs",
        f"- **Dataset(s):** {_datasets_text(comp)}",
        f"- **Device(s):** {_counted(_device_text(r) for r in records)}",
        f"- **Code version (git commit):** {_counted(_commit_text(r) for r in records)}",
        environment.bullet(),
        f"- **Finished:** {_date_range(records)}",
        f"- **Seeds:** {_seeds_text(records)} (per row under *Runs* below)",
        f"- **Initialisation:** {_init_text(records)}",
        f"- **Model and schedule:** {_counted(_model_text(r) for r in records)}",
        f"- **Compute:** {_compute_text(records)}",
        f"- **Protocol (as published):** {_protocol_text(table)}",
    ]
    if table.protocol.notes:
        out.append(f"- **Protocol notes:** {table.protocol.notes}")
    return out + [""]


def _model_text(record: Mapping[str, Any]) -> str:
    """Backbone, input size, batch and epochs of a run (smoke runs shrink them: say so)."""
    config = record.get("config")
    if not isinstance(config, Mapping):
        return "not recorded"
    model, data = config.get("model", {}), config.get("data", {})
    optim = config.get("optim", {})
    return (f"{model.get('backbone', '?')}, input {data.get('height', '?')}×{data.get('width', '?')}, "
            f"batch {data.get('batch_size', '?')}, {optim.get('epochs', '?')} epochs")


def _smoke_warning(sel: Selection) -> str:
    return (f"> **Smoke scale: absolute values are NOT comparable.** These runs used the "
            f"synthetic dataset `{sel.smoke_dataset}`, not the paper's data. Their numbers are "
            f"lined up under the paper's `{sel.compare_to}` columns only so the rows can be read "
            f"side by side; Δ (reproduced − published) is therefore not given. What is "
            f"comparable is the direction of each gain over the baseline: the claim verdicts.")


def _profile_text(sel: Selection) -> str:
    if not sel.records:
        return "none: no run record matches this table's configs yet"
    if sel.profile == "smoke":
        return (f"synthetic smoke (`{sel.smoke_dataset}`, compared against the published "
                f"`{sel.compare_to}` columns in direction only)")
    return "real datasets at paper scale (absolute values compared)"


def _datasets_text(comp: Comparison) -> str:
    sel = comp.selection
    if not sel.records:
        return "—"
    names = sorted({record_dataset(r) for r in sel.records})
    if sel.profile == "smoke":
        return ", ".join(f"`{n}`" for n in names) + f" → lined up with `{sel.compare_to}`"
    parts = [f"`{n}` → `{DATASET_TO_COLUMN[n]}` columns" for n in names]
    return "; ".join(parts)


def _counted(items: Any) -> str:
    """``a (3), b (1)`` from an iterable of strings; ``—`` when empty."""
    counts = Counter(items)
    if not counts:
        return "—"
    return ", ".join(f"{k} ({v} run{'s' if v != 1 else ''})" for k, v in counts.most_common())


def _device_text(record: Mapping[str, Any]) -> str:
    device = record.get("device")
    if not isinstance(device, Mapping):
        return "unknown"
    text = str(device.get("type", "unknown"))
    if device.get("name"):
        text += f" {device['name']}"
    if device.get("amp"):
        text += f" (AMP {device.get('amp_dtype') or ''})".replace(" )", ")")
    return text


def _commit_text(record: Mapping[str, Any]) -> str:
    versions = record.get("versions")
    commit = versions.get("git_commit") if isinstance(versions, Mapping) else None
    if not commit:
        return "unknown"
    sha = str(commit).removesuffix("-dirty")
    return f"`{sha[:12]}`" + (" with uncommitted changes" if sha != str(commit) else "")


def _date_range(records: Sequence[Mapping[str, Any]]) -> str:
    stamps = sorted(str(r["finished_at"]) for r in records if r.get("finished_at"))
    if not stamps:
        return "—"
    return stamps[0] if stamps[0] == stamps[-1] else f"{stamps[0]} … {stamps[-1]}"


def _seeds_text(records: Sequence[Mapping[str, Any]]) -> str:
    seeds = sorted({r["seed"] for r in records if isinstance(r.get("seed"), int)})
    return ", ".join(map(str, seeds)) if seeds else "—"


def _init_text(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "—"
    random = [r for r in records if r.get("pretrained") is None]
    if len(random) == len(records):
        return (f"all {len(records)} run(s) started from **random initialisation** "
                f"(`pretrained: null`); no pretrained weights were used")
    starts = _counted(str(r["pretrained"]) for r in records if r.get("pretrained") is not None)
    if not random:
        return f"all runs started from pretrained weights: {starts}"
    return (f"**mixed**: {len(random)} of {len(records)} run(s) from random initialisation "
            f"(`pretrained: null`), the others from {starts}")


def _compute_text(records: Sequence[Mapping[str, Any]]) -> str:
    if not records:
        return "—"
    wall = sum(_finite(r.get("wall_time_s")) or 0.0 for r in records)
    parts = [f"total wall time {wall / 3600:.2f} h" if wall >= 360 else
             f"total wall time {wall:.0f} s"]
    for key, label in (("host_rss_peak_mb", "peak host RSS"),
                       ("cuda_allocated_peak_mb", "peak CUDA allocated")):
        peaks = [_finite(r.get("peak_memory", {}).get(key)) for r in records
                 if isinstance(r.get("peak_memory"), Mapping)]
        peaks_f = [p for p in peaks if p is not None]
        if peaks_f:
            parts.append(f"{label} {max(peaks_f) / 1024:.1f} GiB")
    return "; ".join(parts)


def _protocol_text(table: PaperTable) -> str:
    p = table.protocol
    rerank = "yes" if p.reranking is True else "no" if p.reranking is False else str(p.reranking)
    return (f"re-ranking: {rerank} · query: {p.query} · CUHK03 split: {p.cuhk03} · "
            f"CUHK03 boxes: {p.cuhk03_boxes}")


# --------------------------------------------------------------------------- tables


def _row_verdict(lines: pd.DataFrame) -> str:
    """One verdict for a printed row, from its per-column verdicts."""
    verdicts = list(lines["verdict"])
    first = lines.iloc[0]
    if first["reference_only"]:
        return REFERENCE
    if first["is_baseline"]:
        return BASELINE if (lines["n"] > 0).any() else f"{BASELINE} ({NOT_RUN})"
    if all(v == NOT_RUN for v in verdicts):
        return NOT_RUN
    if MEASURED in verdicts:
        return MEASURED
    if all(v == NO_CONFIG for v in verdicts):
        return NO_CONFIG
    counts = Counter(v for v in verdicts if v in CHECKED)
    total = sum(counts.values())
    if not total:
        return NO_BASELINE_RUN if NO_BASELINE_RUN in verdicts else NO_PUBLISHED_GAIN
    unchecked = verdicts.count(NO_BASELINE_RUN)
    suffix = (f"; {unchecked} column{'s' if unchecked > 1 else ''} unchecked "
              f"({NO_BASELINE_RUN})" if unchecked else "")
    return _checked_verdict(counts, total) + suffix


def _checked_verdict(counts: Counter[str], total: int) -> str:
    """Row verdict over its ``total`` checked cells."""
    if counts[HOLDS] == total:
        return f"claim holds ({total}/{total})"
    if counts[NOT_HOLDS] == total:
        return f"does not hold (0/{total})"
    if counts[INCONCLUSIVE] == total:
        return f"inconclusive ({total}/{total})"
    parts = [f"{counts[v]} {label}" for v, label in
             ((HOLDS, "hold"), (NOT_HOLDS, "do not hold"), (INCONCLUSIVE, "inconclusive"))
             if counts[v]]
    return "mixed: " + ", ".join(parts)


def _rows_in_order(comp: Comparison) -> list[tuple[Row, pd.DataFrame]]:
    """(row, its frame lines in column order), in the paper's row order."""
    frame = comp.frame
    return [(row, frame[frame["row"] == row.name]) for row in comp.table.rows]


def _layout_table(comp: Comparison) -> list[str]:
    """The paper's layout: one block per published column (published / reproduced / Δ)."""
    with_delta = comp.comparable
    header = ["Group", "Row"]
    for column in comp.table.columns:
        label = _column_label(column)
        header += [f"{label} published", f"{label} reproduced"]
        if with_delta:
            header.append(f"{label} Δ")
    header.append("Verdict")
    lines: list[list[str]] = []
    previous_group: str | None = None
    for row, sub in _rows_in_order(comp):
        group = row.group or ""
        cells = [group if group != previous_group else "", row.name]
        previous_group = group
        for _, line in sub.iterrows():
            cells.append(_fmt_published(line["published"], line["flag"], line["unit"]))
            if row.reference_only:
                cells.append(REFERENCE)
            else:
                cells.append(_fmt_reproduced(line["reproduced"], line["std"], line["n"]))
            if with_delta:
                cells.append(_fmt_signed(line["delta"]))
        cells.append(_row_verdict(sub))
        lines.append(cells)
    return _md_table(header, lines, right_from=2, right_to=len(header) - 1)


_SYMBOL: Final[dict[str, str]] = {HOLDS: "✓", NOT_HOLDS: "✗", INCONCLUSIVE: "~"}


def _gains_table(comp: Comparison) -> list[str]:
    """Per row and column: published gain / reproduced gain ± se and the cell verdict."""
    header = ["Row"] + [_column_label(c) for c in comp.table.columns]
    lines = []
    for row, sub in _rows_in_order(comp):
        if row.reference_only or bool(sub["is_baseline"].iloc[0]):
            continue
        cells = [row.name]
        for _, line in sub.iterrows():
            paper = _fmt_signed(line["published_gain"], 1) or "—"
            cells.append(f"{paper} / {_fmt_gain(line)}")
        lines.append(cells)
    return _md_table(header, lines)


def _fmt_gain(line: pd.Series) -> str:
    """The reproduced side of a gains cell."""
    verdict = line["verdict"]
    if verdict in (NOT_RUN, NO_BASELINE_RUN):
        return verdict
    text = _fmt_signed(line["reproduced_gain"])
    if not math.isnan(line["gain_se"]):
        text += f" ± {line['gain_se']:.2f}"
    symbol = _SYMBOL.get(verdict)
    return f"{text} {symbol} {verdict}" if symbol else f"{text} ({verdict})"


# --------------------------------------------------------------------------- summary


def _summary(comp: Comparison) -> list[str]:
    """Claims checked / holding, single-seed verdicts, rows not run, runs per row."""
    table = comp.table
    out = ["## Summary", ""]
    if table.kind == "metrics":
        out.append(_claims_line(comp))
    not_run = [row.name for row, sub in _rows_in_order(comp)
               if not row.reference_only and row.config is not None and not (sub["n"] > 0).any()]
    out.append(f"- **Rows not run** ({len(not_run)}): "
               + (", ".join(not_run) if not_run else "none"))
    reference = [row.name for row in table.rows if row.reference_only]
    if reference:
        out.append(f"- **Reference-only rows** (other methods, published value only): "
                   f"{', '.join(reference)}")
    out += ["", "### Runs", ""] + _runs_lines(comp)
    if comp.selection.ignored:
        out += ["", "### Records not used", ""]
        out += [f"- `{run_id}`: {reason}" for run_id, reason in comp.selection.ignored]
    return out + [""]


def _claims_line(comp: Comparison) -> str:
    frame = comp.frame
    checked = frame[frame["verdict"].isin(CHECKED)]
    counts = Counter(checked["verdict"])
    base = comp.table.baseline_row
    if base is None:
        return "- **Claims checked:** none (the table names no baseline row)"
    single = checked[checked["gain_se"].isna()]
    text = (f"- **Claims checked:** {len(checked)} (row × column cells where both the published "
            f"and the reproduced gain over {base} exist): {counts[HOLDS]} hold, "
            f"{counts[NOT_HOLDS]} do not hold, {counts[INCONCLUSIVE]} inconclusive")
    if len(single):
        text += (f". {len(single)} of these rest on a single seed of the row or the baseline "
                 f"(sign only, no noise estimate)")
    return text + "."


def _runs_lines(comp: Comparison) -> list[str]:
    """One bullet per row that has records: config, and per dataset the seeds and recipe.

    The recipe is :func:`_recipe_key` (the config without its seed; ``config_hash`` covers the
    seed too, so it differs between the seeds of one recipe).
    """
    out = []
    for row in comp.table.rows:
        mine = [r for r in comp.selection.records if r.get("config_name") == row.config]
        if mine:
            parts = [_dataset_runs(name, [r for r in mine if record_dataset(r) == name])
                     for name in sorted({record_dataset(r) for r in mine})]
            out.append(f"- {row.name} (`{row.config}`): " + "; ".join(parts))
    return out or ["- no run records for this table yet"]


def _dataset_runs(name: str, records: list[dict[str, Any]]) -> str:
    """``cuhk03np-labeled: seeds 0, 1 (2 records, recipe `ab12...`)``."""
    seeds = sorted(str(r.get("seed")) for r in records)
    recipes = sorted({key for r in records if (key := _recipe_key(r)) is not None})
    plural = "s" if len(seeds) > 1 else ""
    recipe = f", recipe `{', '.join(recipes)}`" if recipes else ""
    return f"{name}: seed{plural} {', '.join(seeds)} ({len(seeds)} record{plural}{recipe})"


def _notes(comp: Comparison) -> list[str]:
    """Legend, verdict rule, and the notes of reconstructed / annotated published cells."""
    out = ["## Reading this report", "",
           "- **published**: as printed in the paper. † = reconstructed from damaged extraction "
           "text (see the cell notes below); — (missing) = the paper gives no number.",
           "- **reproduced**: mean ± sample std over the run records (one per seed), n = "
           "number of records; *not run* = no record for the row's config (never shown as 0)."]
    if comp.comparable:
        out.append("- **Δ** = reproduced − published, in the table's unit.")
    else:
        out.append("- **Δ** is not given: smoke-scale values are not comparable in absolute "
                   "terms with the published ones.")
    if _gain_rows(comp):
        out += [
            f"- **Gains** are over the baseline row ({comp.table.baseline_row}), same column: "
            "published = published(row) − published(baseline), reproduced = mean(row) − "
            "mean(baseline), ± its standard error sqrt(s_row²/n_row + s_base²/n_base) when "
            "both rows have ≥ 2 seeds.",
            "- **Verdict** per cell: *holds* (✓) when the reproduced gain has the published "
            "gain's sign, *does not hold* (✗) otherwise; *inconclusive* (~) when |reproduced "
            "gain| ≤ its standard error. The row verdict summarises its cells.",
        ]
    cell_notes = [(row.name, _column_label(col), cell.flag, cell.note)
                  for row in comp.table.rows for col, cell in zip(comp.table.columns, row.cells)
                  if cell.note]
    if cell_notes:
        out += ["", "### Published cell notes", ""]
        out += [f"- {'† ' if flag == 'reconstructed' else ''}{row} / {col} ({flag}): {note}"
                for row, col, flag, note in cell_notes]
    row_notes = [(row.name, row.note) for row in comp.table.rows if row.note]
    if row_notes:
        out += ["", "### Row notes", ""] + [f"- {name}: {note}" for name, note in row_notes]
    return out + [""]


# --------------------------------------------------------------------------- plots


def _new_figure(n_panels: int, n_rows: int) -> tuple[Any, list[Any]]:
    """A Figure (Agg canvas, no pyplot state) with one horizontal-bar panel per column."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = min(n_panels, 2)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(6.0 * ncols, (0.32 * n_rows + 1.4) * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel().tolist()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def _save_png(fig: Any, path: Path) -> None:
    atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=110))


def _bars(ax: Any, labels: list[str], pairs: list[tuple[float, float, float]],
          names: tuple[str, str]) -> None:
    """Grouped horizontal bars (published, reproduced ± err); NaN values draw no bar."""
    import numpy as np

    y = np.arange(len(labels))
    pub = np.array([p[0] for p in pairs], dtype=float)
    rep = np.array([p[1] for p in pairs], dtype=float)
    err = np.array([0.0 if math.isnan(p[2]) else p[2] for p in pairs], dtype=float)
    keep_p, keep_r = ~np.isnan(pub), ~np.isnan(rep)
    ax.barh(y[keep_p] - 0.2, pub[keep_p], height=0.4, label=names[0], color="#8c8c8c")
    ax.barh(y[keep_r] + 0.2, rep[keep_r], height=0.4, xerr=err[keep_r], label=names[1],
            color="#1f77b4", error_kw={"capsize": 2})
    ax.set_yticks(y, labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # paper order, top to bottom
    ax.grid(axis="x", alpha=0.3)


def _legend(fig: Any, ax: Any) -> None:
    """One legend for the figure, below the panels (never over a bar)."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)


def _plot_values(comp: Comparison, path: Path) -> None:
    """Published vs reproduced per row, one panel per published column."""
    rows = list(comp.table.rows)
    fig, axes = _new_figure(len(comp.table.columns), len(rows))
    smoke = not comp.comparable
    for j, (ax, column) in enumerate(zip(axes, comp.table.columns)):
        sub = comp.frame.iloc[j::len(comp.table.columns)]
        pairs = [(line["published"], line["reproduced"], line["std"]) for _, line in sub.iterrows()]
        _bars(ax, [r.name for r in rows], pairs,
              ("published", "reproduced (smoke)" if smoke else "reproduced (mean ± std)"))
        title = _column_label(column)
        if smoke and column.dataset == comp.selection.compare_to:
            title += f"\nreproduced on {comp.selection.smoke_dataset}: not comparable"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(column.unit or ("%" if comp.table.kind == "metrics" else ""))
    _legend(fig, axes[0])
    fig.suptitle(f"{comp.table.paper} Table {comp.table.table}: published vs reproduced "
                 f"(rows not run have no reproduced bar)", fontsize=11)
    _save_png(fig, path)


def _gain_rows(comp: Comparison) -> list[Row]:
    """Rows whose gain over the baseline can be checked (none without a baseline row)."""
    if comp.table.kind != "metrics" or comp.table.baseline_row is None:
        return []
    return [row for row in comp.table.rows
            if not row.reference_only and row.name != comp.table.baseline_row]


def _plot_gains(comp: Comparison, path: Path) -> None:
    """Gain over the baseline row, published vs reproduced, one panel per column."""
    rows = _gain_rows(comp)
    fig, axes = _new_figure(len(comp.table.columns), len(rows))
    for j, (ax, column) in enumerate(zip(axes, comp.table.columns)):
        sub = comp.frame.iloc[j::len(comp.table.columns)]
        sub = sub[sub["row"].isin([r.name for r in rows])]
        pairs = [(line["published_gain"], line["reproduced_gain"], line["gain_se"])
                 for _, line in sub.iterrows()]
        _bars(ax, [r.name for r in rows], pairs, ("published gain", "reproduced gain (± se)"))
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(_column_label(column), fontsize=10)
        ax.set_xlabel(f"gain over {comp.table.baseline_row} (points)")
    _legend(fig, axes[0])
    fig.suptitle(f"{comp.table.paper} Table {comp.table.table}: gain over "
                 f"{comp.table.baseline_row} (rows not run have no reproduced bar)", fontsize=11)
    _save_png(fig, path)


# --------------------------------------------------------------------------- report


def render_markdown(comp: Comparison, values_png: str, gains_png: str | None) -> str:
    """The report's Markdown text (plots referenced by relative file names)."""
    table = comp.table
    out = _header(comp)
    out += ["## Table (paper layout)", ""] + _layout_table(comp) + [""]
    if _gain_rows(comp):
        out += [f"## Gains over the baseline ({table.baseline_row})", "",
                "Each cell: published gain / reproduced gain (± standard error) and verdict.", ""]
        out += _gains_table(comp) + [""]
    out += _summary(comp)
    out += ["## Plots", "", f"![published vs reproduced]({values_png})", ""]
    if gains_png is not None:
        out += [f"![gains over the baseline]({gains_png})", ""]
    out += _notes(comp)
    return "\n".join(out).rstrip() + "\n"


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
    Every file is written atomically. Arguments as in :func:`build_comparison`.
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
    gains_png = out_dir / f"{comp.table.table_id}_gains.png" if _gain_rows(comp) else None
    text = render_markdown(comp, values_png.name, gains_png.name if gains_png else None)
    _plot_values(comp, values_png)
    if gains_png is not None:
        _plot_gains(comp, gains_png)
    atomic_write_text(path, text)
    return path


class EmptyReportError(ValueError):
    """A report would contain no record at all; nothing was written.

    A ValueError, so callers that map user errors to one line and exit code 2 (the CLI)
    need nothing new. The message (one line) names the table, the filters that matched
    nothing, what the records do offer instead, and the report file that was left as it was.
    """


def untouched_text(path: Path) -> str:
    """The end of an :class:`EmptyReportError` message: what happened to ``path``."""
    if path.exists():
        return f"the existing report at {path} was left untouched"
    return f"nothing was written (no report at {path} yet)"


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
            f"{name} ({_n_records(n)}, "
            f"{status + ' profile' if status in PROFILES else 'unusable: ' + status})"
            for name, (n, status) in sel.available.items())
    elif sel.n_given == 0:
        offer = "no run record was given at all"
    else:
        configs = table.configs()
        shown = ", ".join(configs[:6]) + (", …" if len(configs) > 6 else "")
        offer = (f"none of the {_n_records(sel.n_given)} given is of its configs "
                 f"({shown or 'the table has no reproducible row'})")
    return f"{head}; {offer}; {untouched_text(path)}"


def row_summary(comp: Comparison) -> list[tuple[str, int, str]]:
    """(row, number of records, row verdict) per printed row, for the CLI's summary table."""
    return [(row.name, int(sub["n"].max()) if len(sub) else 0, _row_verdict(sub))
            for row, sub in _rows_in_order(comp)]
