"""Published tables of the reproduced papers, as validated data with provenance.

Each ``paper_tables/<paper>_table<id>.yaml`` holds one published table (schema:
``paper_tables/README.md``). This module reads a file with ``yaml.safe_load``, validates it
strictly and returns a typed :class:`PaperTable`, or a long :class:`pandas.DataFrame` with one
line per cell. Any violation raises :class:`PaperTableError`, whose message names the file and
the field, e.g. ``paper_tables/rga_table1.yaml: rows[3].values[2]: flag 'clen' is not one of
clean, reconstructed, missing``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Mapping

import pandas as pd

from reid_core.data.names import table_dataset_names
from reid_core.metrics.rank import AP_MODES
from reid_core.resources import paper_tables_dir
from reid_core.results.table_kinds import KIND_ORDER, TableKindRules, kind_rules
from reid_core.utils.yaml_io import YamlError, load_yaml

__all__ = [
    "FLAGS",
    "FRAME_COLUMNS",
    "PAPER_TABLES_DIR",
    "Cell",
    "Claim",
    "Column",
    "PaperTable",
    "PaperTableError",
    "Protocol",
    "Row",
    "configs_for_table",
    "list_tables",
    "load_all_frames",
    "load_all_tables",
    "load_table",
    "load_table_frame",
]

#: The repository's ``paper_tables/`` (source or editable install) or the installed package's
#: copy (see :mod:`reid_core.resources`).
PAPER_TABLES_DIR: Final[Path] = paper_tables_dir()

FLAGS: Final[tuple[str, ...]] = ("clean", "reconstructed", "missing")
#: Table kinds (``kind:``), with their rules in :mod:`reid_core.results.table_kinds`.
PAPERS: Final[tuple[str, ...]] = ("RGA", "CSA", "DAAF", "SAG", "DSA")
#: Column datasets: declared, with their family, in :mod:`reid_core.data.names`.
DATASETS: Final[tuple[str, ...]] = table_dataset_names()
#: Metric names of metrics tables besides rank-k CMC (``R1``, ``R3``, ``R5``, ...).
NAMED_METRICS: Final[tuple[str, ...]] = ("mAP", "mINP", "FPR95")
RERANKING: Final[tuple[object, ...]] = (True, False, "mixed")
QUERY: Final[tuple[str, ...]] = ("single", "multi", "mixed", "n/a")
CUHK03: Final[tuple[str, ...]] = ("new", "classic", "n/a", "unknown")
CUHK03_BOXES: Final[tuple[str, ...]] = ("labeled", "detected", "both", "n/a", "unknown")

TOP_KEYS: Final[tuple[str, ...]] = (
    "paper",
    "paper_title",
    "source",
    "table",
    "caption",
    "kind",
    "protocol",
    "baseline_row",
    "columns",
    "rows",
)
#: Optional top-level keys: ``claims``, the text's claims between rows (:class:`Claim`).
TOP_OPTIONAL: Final[tuple[str, ...]] = ("claims",)
CLAIM_REQUIRED: Final[tuple[str, ...]] = ("claim", "source", "direction", "pairs")
#: ``claims[i].direction``: the first row of each pair scores lower / higher than the second.
CLAIM_DIRECTIONS: Final[tuple[str, ...]] = ("lower", "higher")
PROTOCOL_REQUIRED: Final[tuple[str, ...]] = ("reranking", "query", "cuhk03", "cuhk03_boxes")
PROTOCOL_OPTIONAL: Final[tuple[str, ...]] = ("notes", "ap", "ap_note")
#: ``protocol.ap``: an AP definition of the metric functions, or not known.
AP_DEFINITION_CHOICES: Final[tuple[str, ...]] = (*AP_MODES, "unknown")
COLUMN_REQUIRED: Final[tuple[str, ...]] = ("dataset", "metric")
COLUMN_OPTIONAL: Final[tuple[str, ...]] = ("unit", "note", "query")
#: ``columns[i].query``: what a column's queries are.
COLUMN_QUERY: Final[tuple[str, ...]] = ("single", "multi")
ROW_REQUIRED: Final[tuple[str, ...]] = ("name", "reference_only", "config", "values")
ROW_OPTIONAL: Final[tuple[str, ...]] = ("group", "note")
CELL_REQUIRED: Final[tuple[str, ...]] = ("value", "flag")
CELL_OPTIONAL: Final[tuple[str, ...]] = ("note",)

#: Columns of the long frame, in order. ``note`` joins the cell's note and its row's note
#: (``"; "``); ``column_note`` is the column's note (e.g. the Brown train/test pair).
FRAME_COLUMNS: Final[list[str]] = [
    "paper",
    "table",
    "table_id",
    "row",
    "group",
    "dataset",
    "metric",
    "unit",
    "value",
    "flag",
    "reference_only",
    "config",
    "note",
    "column_note",
]

#: Unit given to metrics-table columns that do not state one: the schema writes them as printed, in %.
DEFAULT_METRIC_UNIT: Final[str] = "%"

_RANK_METRIC = re.compile(r"^R[1-9][0-9]*$")
_QUANTITY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CONFIG = re.compile(r"^[a-z][a-z0-9_]*$")


class PaperTableError(ValueError):
    """A paper table file is missing, unreadable or violates the schema."""


@dataclass(frozen=True)
class Cell:
    """One published number: ``value`` is None exactly when ``flag`` is ``missing``."""

    value: float | None
    flag: str
    note: str | None = None


@dataclass(frozen=True)
class Column:
    """One column of the printed table: a dataset and a metric (unit, note optional)."""

    dataset: str
    metric: str
    unit: str | None = None
    note: str | None = None
    #: ``single`` / ``multi`` query (Market-1501 multi-query); required in a table whose
    #: ``protocol.query`` is ``mixed``, else the protocol's (:meth:`PaperTable.column_query`).
    query: str | None = None


@dataclass(frozen=True)
class Row:
    """One printed row: a model (or scheme, layer, ...) with one cell per column."""

    name: str
    group: str | None
    reference_only: bool
    config: str | None
    cells: tuple[Cell, ...]
    note: str | None = None


@dataclass(frozen=True)
class Protocol:
    """How the numbers were obtained, as far as the paper says."""

    reranking: bool | str
    query: str
    cuhk03: str
    cuhk03_boxes: str
    notes: str | None = None
    #: The AP definition behind the published mAP (``reid_core.metrics.rank.AP_MODES`` or
    #: ``unknown``), with how it is known (``ap_note``); required when a column is mAP.
    ap: str | None = None
    ap_note: str | None = None


@dataclass(frozen=True)
class Claim:
    """A claim the paper's text makes between two of its rows, other than a gain over the
    baseline row ("stacking modules drops accuracy"): in every published column, the first row
    of each pair scores ``direction`` (``lower`` / ``higher``) than the second."""

    claim: str
    #: Where the text says it, quoted (section and words).
    source: str
    direction: str
    #: (row, against) row names; both rows reproducible.
    pairs: tuple[tuple[str, str], ...]

    @property
    def sign(self) -> int:
        """-1 for ``lower``, +1 for ``higher``: the sign the row − against difference should
        have."""
        return -1 if self.direction == "lower" else 1


@dataclass(frozen=True)
class PaperTable:
    """A validated published table (metadata, columns and rows)."""

    table_id: str
    path: Path
    paper: str
    paper_title: str
    source: str
    table: str
    caption: str
    kind: str
    protocol: Protocol
    baseline_row: str | None
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    claims: tuple[Claim, ...] = ()

    @property
    def rules(self) -> TableKindRules:
        """The rules of the table's kind (retrieval metrics or quantities, ...)."""
        return kind_rules(self.kind)

    @property
    def shape(self) -> tuple[int, int]:
        """(number of rows, number of columns)."""
        return len(self.rows), len(self.columns)

    def column_query(self, column: Column) -> str | None:
        """``single`` / ``multi``: the column's own, else the protocol's; None when the
        protocol has no queries (``n/a``)."""
        if column.query is not None:
            return column.query
        return self.protocol.query if self.protocol.query in COLUMN_QUERY else None

    def row(self, name: str) -> Row:
        """The row named ``name`` (KeyError if absent)."""
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"{self.table_id}: no row {name!r}")

    def flag_counts(self) -> dict[str, int]:
        """How many cells carry each flag (every flag present, possibly 0)."""
        counts = dict.fromkeys(FLAGS, 0)
        for row in self.rows:
            for cell in row.cells:
                counts[cell.flag] += 1
        return counts

    def configs(self) -> list[str]:
        """Config ids of the reproducible rows, in row order, without duplicates."""
        seen: dict[str, None] = {}
        for row in self.rows:
            if not row.reference_only and row.config is not None:
                seen.setdefault(row.config, None)
        return list(seen)

    def to_frame(self) -> pd.DataFrame:
        """Long frame: one line per cell, in the paper's row then column order."""
        records = [
            self._record(row, column, cell)
            for row in self.rows
            for column, cell in zip(self.columns, row.cells)
        ]
        frame = pd.DataFrame.from_records(records, columns=FRAME_COLUMNS)
        frame["value"] = frame["value"].astype(float)
        frame["reference_only"] = frame["reference_only"].astype(bool)
        return frame

    def _record(self, row: Row, column: Column, cell: Cell) -> dict[str, Any]:
        """The frame line of one cell."""
        unit = column.unit
        if unit is None and self.rules.retrieval_metrics:
            unit = DEFAULT_METRIC_UNIT
        notes = [n for n in (cell.note, row.note) if n]
        return {
            "paper": self.paper,
            "table": self.table,
            "table_id": self.table_id,
            "row": row.name,
            "group": row.group,
            "dataset": column.dataset,
            "metric": column.metric,
            "unit": unit,
            "value": math.nan if cell.value is None else float(cell.value),
            "flag": cell.flag,
            "reference_only": row.reference_only,
            "config": row.config,
            "note": "; ".join(notes) if notes else None,
            "column_note": column.note,
        }


# --------------------------------------------------------------------------- public API


def _directory(directory: str | Path | None) -> Path:
    """The tables directory: ``directory`` or the repo's ``paper_tables/``."""
    return PAPER_TABLES_DIR if directory is None else Path(directory)


def list_tables(directory: str | Path | None = None) -> list[str]:
    """Sorted table ids (the ``*.yaml`` file stems) in ``directory``."""
    return sorted(p.stem for p in _directory(directory).glob("*.yaml"))


def load_table(table_id: str, directory: str | Path | None = None) -> PaperTable:
    """Read and validate table ``table_id``; PaperTableError on an unknown id or a bad file."""
    folder = _directory(directory)
    path = folder / f"{table_id}.yaml"
    if not path.is_file():
        valid = ", ".join(list_tables(folder)) or "(none)"
        raise PaperTableError(f"unknown paper table {table_id!r} in {folder}; valid ids: {valid}")
    return _parse_file(path)


def load_table_frame(table_id: str, directory: str | Path | None = None) -> pd.DataFrame:
    """Long frame of one table (columns :data:`FRAME_COLUMNS`, one line per cell)."""
    return load_table(table_id, directory).to_frame()


def load_all_tables(directory: str | Path | None = None) -> list[PaperTable]:
    """Every table in ``directory``, validated, in id order."""
    return [load_table(table_id, directory) for table_id in list_tables(directory)]


def load_all_frames(directory: str | Path | None = None) -> pd.DataFrame:
    """The long frames of every table, concatenated (empty frame if there are none)."""
    frames = [table.to_frame() for table in load_all_tables(directory)]
    if not frames:
        return pd.DataFrame(columns=FRAME_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def configs_for_table(table_id: str, directory: str | Path | None = None) -> list[str]:
    """Config ids of the reproducible rows of a table, in row order, deduplicated."""
    return load_table(table_id, directory).configs()


# --------------------------------------------------------------------------- validation


class _Reader:
    """Validates one file's parsed YAML; every error names the file and the field."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = f"{path.parent.name}/{path.name}"

    def fail(self, field: str, message: str) -> PaperTableError:
        """The error to raise for ``field``."""
        return PaperTableError(f"{self.label}: {field}: {message}")

    def check_keys(
        self, field: str, data: object, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> Mapping[str, Any]:
        """``data`` must be a mapping holding all ``required`` keys and no unknown key."""
        if not isinstance(data, dict):
            raise self.fail(field, f"expected a mapping, got {type(data).__name__}")
        for key in data:
            if key not in required and key not in optional:
                allowed = ", ".join(required + optional)
                raise self.fail(_join(field, str(key)), f"unknown key (allowed: {allowed})")
        for key in required:
            if key not in data:
                raise self.fail(_join(field, key), "required key is missing")
        return data

    def text(self, field: str, value: object, *, optional: bool = False) -> str | None:
        """A non-empty string (or None when ``optional``)."""
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(field, f"expected a non-empty string, got {value!r}")
        return value

    def choice(self, field: str, value: object, allowed: tuple[object, ...]) -> Any:
        """``value`` must be one of ``allowed``."""
        if not any(value == a and type(value) is type(a) for a in allowed):
            names = ", ".join("true" if a is True else "false" if a is False else str(a) for a in allowed)
            raise self.fail(field, f"{value!r} is not one of {names}")
        return value


def _join(field: str, key: str) -> str:
    """``field.key`` (or ``key`` at the top level)."""
    return key if not field else f"{field}.{key}"


def _parse_file(path: Path) -> PaperTable:
    """Read ``path`` with ``load_yaml`` (safe_load, duplicate keys rejected) and validate it
    into a PaperTable."""
    reader = _Reader(path)
    try:
        data = load_yaml(path, reader.label)
    except YamlError as exc:
        raise reader.fail("(yaml)", f"not valid YAML: {exc.detail}") from None
    if not isinstance(data, dict):
        raise reader.fail("(top level)", f"expected a mapping, got {type(data).__name__}")
    return _parse_table(reader, data)


def _parse_table(reader: _Reader, data: dict[str, Any]) -> PaperTable:
    """Validate the top level, then the protocol, columns and rows."""
    reader.check_keys("", data, TOP_KEYS, TOP_OPTIONAL)
    paper = reader.choice("paper", data["paper"], PAPERS)
    table = _parse_table_label(reader, data["table"])
    expected_stem = f"{paper}_table{table}".lower()
    if reader.path.stem.lower() != expected_stem:
        raise reader.fail("table", f"file name should be {expected_stem}.yaml for paper {paper} table {table}")
    kind = reader.choice("kind", data["kind"], KIND_ORDER)
    columns = _parse_columns(reader, data["columns"], kind)
    rows = _parse_rows(reader, data["rows"], paper, kind, len(columns))
    baseline = reader.text("baseline_row", data["baseline_row"], optional=True)
    if baseline is not None and baseline not in {row.name for row in rows}:
        raise reader.fail("baseline_row", f"{baseline!r} is not the name of a row")
    protocol = _parse_protocol(reader, data["protocol"])
    if protocol.query == "mixed" and kind_rules(kind).retrieval_metrics:
        for i, column in enumerate(columns):
            if column.query is None:
                raise reader.fail(f"columns[{i}].query", "the protocol's query is 'mixed': say "
                                                         "whether this column is single or multi")
    if protocol.ap is None and any(c.metric == "mAP" for c in columns):
        raise reader.fail("protocol.ap", f"a table with an mAP column must say which AP "
                                         f"definition it used: one of "
                                         f"{', '.join(AP_DEFINITION_CHOICES)} (with ap_note)")
    claims = _parse_claims(reader, data.get("claims"), rows, kind)
    return PaperTable(
        table_id=reader.path.stem,
        path=reader.path,
        paper=paper,
        paper_title=str(reader.text("paper_title", data["paper_title"])),
        source=str(reader.text("source", data["source"])),
        table=table,
        caption=str(reader.text("caption", data["caption"])),
        kind=kind,
        protocol=protocol,
        baseline_row=baseline,
        columns=columns,
        rows=rows,
        claims=claims,
    )


def _parse_claims(reader: _Reader, data: object, rows: tuple[Row, ...], kind: str
                  ) -> tuple[Claim, ...]:
    """``claims``: a list of :class:`Claim` on a metrics table, each pair naming two
    reproducible rows."""
    if data is None:
        return ()
    if not kind_rules(kind).retrieval_metrics:
        raise reader.fail("claims", f"only a metrics table states claims between rows, not a "
                                    f"{kind} table")
    if not isinstance(data, list) or not data:
        raise reader.fail("claims", "expected a non-empty list")
    by_name = {row.name: row for row in rows}
    claims = []
    for i, item in enumerate(data):
        field = f"claims[{i}]"
        item = reader.check_keys(field, item, CLAIM_REQUIRED, ())
        pairs = item["pairs"]
        if not isinstance(pairs, list) or not pairs:
            raise reader.fail(f"{field}.pairs", "expected a non-empty list of [row, against]")
        parsed = []
        for j, pair in enumerate(pairs):
            where = f"{field}.pairs[{j}]"
            if (not isinstance(pair, list) or len(pair) != 2
                    or not all(isinstance(name, str) for name in pair)):
                raise reader.fail(where, f"expected [row, against] (two row names), got {pair!r}")
            for name in pair:
                row = by_name.get(name)
                if row is None:
                    raise reader.fail(where, f"{name!r} is not the name of a row")
                if row.reference_only or row.config is None:
                    raise reader.fail(where, f"{name!r} is not a reproducible row")
            if pair[0] == pair[1]:
                raise reader.fail(where, "a row compared with itself")
            parsed.append((pair[0], pair[1]))
        claims.append(Claim(
            claim=str(reader.text(f"{field}.claim", item["claim"])),
            source=str(reader.text(f"{field}.source", item["source"])),
            direction=reader.choice(f"{field}.direction", item["direction"], CLAIM_DIRECTIONS),
            pairs=tuple(parsed)))
    return tuple(claims)


def _parse_table_label(reader: _Reader, value: object) -> str:
    """The table number as printed ("1", "I"); an unquoted YAML integer is accepted."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(reader.text("table", value))


def _parse_protocol(reader: _Reader, data: object) -> Protocol:
    """The ``protocol`` mapping."""
    data = reader.check_keys("protocol", data, PROTOCOL_REQUIRED, PROTOCOL_OPTIONAL)
    return Protocol(
        reranking=reader.choice("protocol.reranking", data["reranking"], RERANKING),
        query=reader.choice("protocol.query", data["query"], QUERY),
        cuhk03=reader.choice("protocol.cuhk03", data["cuhk03"], CUHK03),
        cuhk03_boxes=reader.choice("protocol.cuhk03_boxes", data["cuhk03_boxes"], CUHK03_BOXES),
        notes=reader.text("protocol.notes", data.get("notes"), optional=True),
        ap=(None if data.get("ap") is None
            else reader.choice("protocol.ap", data["ap"], AP_DEFINITION_CHOICES)),
        ap_note=reader.text("protocol.ap_note", data.get("ap_note"), optional=True),
    )


def _parse_columns(reader: _Reader, data: object, kind: str) -> tuple[Column, ...]:
    """The non-empty ``columns`` list."""
    if not isinstance(data, list) or not data:
        raise reader.fail("columns", "expected a non-empty list")
    return tuple(_parse_column(reader, f"columns[{i}]", item, kind) for i, item in enumerate(data))


def _parse_column(reader: _Reader, field: str, data: object, kind: str) -> Column:
    """One column: known dataset; a known metric (metrics tables) or a quantity with a unit,
    one the kind allows (e.g. ``params`` for a ``parameters`` table)."""
    data = reader.check_keys(field, data, COLUMN_REQUIRED, COLUMN_OPTIONAL)
    dataset = reader.choice(f"{field}.dataset", data["dataset"], DATASETS)
    metric = str(reader.text(f"{field}.metric", data["metric"]))
    unit = reader.text(f"{field}.unit", data.get("unit"), optional=True)
    known = bool(_RANK_METRIC.match(metric)) or metric in NAMED_METRICS
    rules = kind_rules(kind)
    if rules.retrieval_metrics and not known:
        raise reader.fail(
            f"{field}.metric",
            f"{metric!r} is not a metric of a metrics table (R<k>, {', '.join(NAMED_METRICS)})",
        )
    if rules.quantities is not None and metric not in rules.quantities:
        raise reader.fail(f"{field}.metric", f"{metric!r} is not a quantity of a {kind} table "
                                             f"({', '.join(sorted(rules.quantities))})")
    if not rules.retrieval_metrics and not known:
        if not _QUANTITY.match(metric):
            raise reader.fail(f"{field}.metric", f"{metric!r} is not a snake_case quantity name")
        if unit is None:
            raise reader.fail(f"{field}.unit", f"data column {metric!r} needs a unit")
    note = reader.text(f"{field}.note", data.get("note"), optional=True)
    query = (None if data.get("query") is None
             else reader.choice(f"{field}.query", data["query"], COLUMN_QUERY))
    return Column(dataset=dataset, metric=metric, unit=unit, note=note, query=query)


def _parse_rows(
    reader: _Reader, data: object, paper: str, kind: str, n_columns: int
) -> tuple[Row, ...]:
    """The non-empty ``rows`` list; row names must be unique."""
    if not isinstance(data, list) or not data:
        raise reader.fail("rows", "expected a non-empty list")
    rows: list[Row] = []
    seen: set[str] = set()
    for i, item in enumerate(data):
        row = _parse_row(reader, f"rows[{i}]", item, paper, kind, n_columns)
        if row.name in seen:
            raise reader.fail(f"rows[{i}].name", f"duplicate row name {row.name!r}")
        seen.add(row.name)
        rows.append(row)
    return tuple(rows)


def _parse_row(
    reader: _Reader, field: str, data: object, paper: str, kind: str, n_columns: int
) -> Row:
    """One row: name, reference_only/config consistency, and one value per column."""
    data = reader.check_keys(field, data, ROW_REQUIRED, ROW_OPTIONAL)
    name = str(reader.text(f"{field}.name", data["name"]))
    reference_only = reader.choice(f"{field}.reference_only", data["reference_only"], (True, False))
    config = _parse_config(reader, f"{field}.config", data["config"], paper)
    if reference_only and config is not None:
        raise reader.fail(f"{field}.config", f"reference_only row has config {config!r} (must be null)")
    if not reference_only and config is None and kind_rules(kind).rows_need_config:
        raise reader.fail(f"{field}.config", "row is not reference_only but has no config")
    values = data["values"]
    if not isinstance(values, list):
        raise reader.fail(f"{field}.values", f"expected a list, got {type(values).__name__}")
    if len(values) != n_columns:
        raise reader.fail(f"{field}.values", f"{len(values)} values for {n_columns} columns")
    cells = tuple(_parse_cell(reader, f"{field}.values[{j}]", v) for j, v in enumerate(values))
    return Row(
        name=name,
        group=reader.text(f"{field}.group", data.get("group"), optional=True),
        reference_only=reference_only,
        config=config,
        cells=cells,
        note=reader.text(f"{field}.note", data.get("note"), optional=True),
    )


def _parse_config(reader: _Reader, field: str, value: object, paper: str) -> str | None:
    """A snake_case config id prefixed by the paper (``rga_sc``), or None."""
    if value is None:
        return None
    prefix = f"{paper.lower()}_"
    if not isinstance(value, str) or not _CONFIG.match(value) or not value.startswith(prefix):
        raise reader.fail(field, f"config {value!r} is not a snake_case id starting with {prefix!r}")
    return value


def _parse_cell(reader: _Reader, field: str, value: object) -> Cell:
    """A number (clean), null (missing) or a ``{value, flag, note}`` mapping."""
    if value is None:
        return Cell(value=None, flag="missing")
    if not isinstance(value, dict):
        return Cell(value=_number(reader, field, value), flag="clean")
    data = reader.check_keys(field, value, CELL_REQUIRED, CELL_OPTIONAL)
    flag = data["flag"]
    if flag not in FLAGS:
        raise reader.fail(field, f"flag {flag!r} is not one of {', '.join(FLAGS)}")
    note = reader.text(f"{field}.note", data.get("note"), optional=True)
    if flag == "missing":
        if data["value"] is not None:
            raise reader.fail(f"{field}.value", f"flag missing but a value is given ({data['value']!r})")
        return Cell(value=None, flag=flag, note=note)
    if flag == "reconstructed" and note is None:
        raise reader.fail(f"{field}.note", "a reconstructed cell needs a note saying how it was read")
    return Cell(value=_number(reader, f"{field}.value", data["value"]), flag=flag, note=note)


def _number(reader: _Reader, field: str, value: object) -> float:
    """A finite int or float (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise reader.fail(field, f"value {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise reader.fail(field, f"value {value!r} is not a finite number")
    return number


# --------------------------------------------------------------------------- summary CLI


def summary(directory: str | Path | None = None) -> str:
    """One line per table: id, rows x columns, and clean / reconstructed / missing cell counts."""
    lines = [f"{'table':<14} {'rows x cols':>11}  {'clean':>5} {'recon':>5} {'miss':>5}"]
    for table in load_all_tables(directory):
        counts = table.flag_counts()
        n_rows, n_cols = table.shape
        lines.append(
            f"{table.table_id:<14} {f'{n_rows} x {n_cols}':>11}  "
            f"{counts['clean']:>5} {counts['reconstructed']:>5} {counts['missing']:>5}"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # python -m reid_core.results.paper_tables
    print(summary())
