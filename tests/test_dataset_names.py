"""Dataset names: one registry (reid_core/data/names.py) feeds the loaders, the paper-table schema
and the report's dataset -> column mapping.

Defect reproduced: the names were spelled three times, and the report's mapping lacked
``cuhk03-classic-*``, ``cuhk03np-mat-*`` and ``partial-*``: records on those datasets were left
out as "no published counterpart" -- SAG Tables 1 / 4 (classic CUHK03) and DAAF Table 3
(Partial-REID / Partial-iLIDS) could not be filled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from reid_core.data import available_datasets
from reid_core.data.names import (
    NO_DATASET, RECORD_DATASETS, TABLE_DATASETS, imitated, record_dataset_names, smoke_variant,
    table_dataset_names)
from reid_core.results.report import DATASET_TO_COLUMN, build_comparison, compare


def record(config: str, dataset: str, r1: float = 70.0) -> dict[str, Any]:
    return {"run_id": f"{config}-seed0-{dataset}", "config_name": config, "seed": 0,
            "dataset": {"name": dataset}, "config": {"name": config, "seed": 0},
            "finished_at": "2026-01-01T00:00:00+00:00",
            "final": {"after_bn": {"R1": r1, "R3": r1 + 5, "mAP": r1 - 10}},
            "primary_feature": "after_bn"}


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


def cell_n(frame: Any, row: str, dataset: str, metric: str = "R1") -> int:
    hit = frame[(frame["row"] == row) & (frame["dataset"] == dataset)
                & (frame["metric"] == metric)]
    assert len(hit) == 1, (row, dataset, metric)
    return int(hit.iloc[0]["n"])


# --------------------------------------------------------------------------- the defect


@pytest.mark.parametrize("table_id, row, dataset, column", [
    ("sag_table1", "Baseline(ResNet50)", "cuhk03-classic-detected", "cuhk03-classic-detected"),
    ("sag_table4", "SAG", "cuhk03-classic-detected", "cuhk03-classic-detected"),
    ("daaf_table3", "Trinet", "partial-reid", "partial-reid"),
    ("daaf_table3", "Trinet", "partial-ilids", "partial-ilids"),
    ("rga_table1", "ResNet-50", "cuhk03np-mat-labeled", "cuhk03-labeled"),
    ("rga_table5", "Baseline", "cuhk03np-mat-detected", "cuhk03-detected"),
])
def test_records_on_the_missing_datasets_fill_their_columns(
    table_id: str, row: str, dataset: str, column: str
) -> None:
    from reid_core.results.paper_tables import load_table

    config = load_table(table_id).row(row).config
    frame = build_comparison(table_id, [record(config, dataset)])
    assert cell_n(frame, row, column) == 1


# --------------------------------------------------------------------------- one registry


def test_every_loader_name_is_declared_and_every_declared_name_has_a_loader() -> None:
    declared = {n for n in record_dataset_names() if RECORD_DATASETS.get(n).has_loader}
    assert set(available_datasets()) == declared
    assert not RECORD_DATASETS.get(NO_DATASET).has_loader


def test_an_undeclared_loader_name_is_refused() -> None:
    from reid_core.data.base import register_dataset

    with pytest.raises(KeyError, match="not declared in reid_core/data/names.py"):
        register_dataset("market1502")


def test_the_paper_tables_accept_exactly_the_declared_table_datasets() -> None:
    from reid_core.results.paper_tables import DATASETS, load_all_tables

    assert set(DATASETS) == set(table_dataset_names())
    used = {c.dataset for t in load_all_tables() for c in t.columns}
    assert used <= set(table_dataset_names())


def test_the_report_mapping_is_the_registry() -> None:
    expected = {n: RECORD_DATASETS.get(n).column for n in record_dataset_names()
                if RECORD_DATASETS.get(n).column is not None}
    assert DATASET_TO_COLUMN == expected
    for name, column in DATASET_TO_COLUMN.items():
        assert column in TABLE_DATASETS.names(), name


def _table_with_column(directory: Path, dataset: str) -> Path:
    """A one-row RGA metrics table with R1 on ``dataset`` (any declared table dataset)."""
    data = {
        "paper": "RGA", "paper_title": "t", "source": "s", "table": "9", "caption": "c",
        "kind": "metrics",
        "protocol": {"reranking": False, "query": "single", "cuhk03": "unknown",
                     "cuhk03_boxes": "unknown"},
        "baseline_row": None, "columns": [{"dataset": dataset, "metric": "R1"}],
        "rows": [{"name": "Base", "reference_only": False, "config": "rga_baseline",
                  "values": [70.0]}],
    }
    (directory / "rga_table9.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return directory


@pytest.mark.parametrize("name", [n for n in record_dataset_names()
                                  if RECORD_DATASETS.get(n).column not in (None, NO_DATASET)])
def test_records_on_every_registered_dataset_are_accepted(tmp_path: Path, name: str) -> None:
    """A record on any declared dataset with a published counterpart fills that column."""
    column = RECORD_DATASETS.get(name).column
    folder = _table_with_column(tmp_path, column)
    comp = compare("rga_table9", [record("rga_baseline", name)], tables_dir=folder)
    assert comp.selection.profile == "paper" and not comp.selection.ignored
    assert cell_n(comp.frame, "Base", column) == 1


@pytest.mark.parametrize("name", [n for n in record_dataset_names()
                                  if RECORD_DATASETS.get(n).smoke])
def test_records_on_every_synthetic_dataset_are_smoke_runs(tmp_path: Path, name: str) -> None:
    """Under a table of the protocol it reads (any table for a plain synthetic preset)."""
    column = (imitated(name) or ("market1501",))[0]
    folder = _table_with_column(tmp_path, column)
    comp = compare("rga_table9", [record("rga_baseline", name)], tables_dir=folder)
    assert (comp.selection.profile, comp.selection.smoke_dataset) == ("smoke", name)
    assert cell_n(comp.frame, "Base", column) == 1


def test_smoke_runs_under_a_protocol_fill_only_the_tables_of_that_protocol(
        tmp_path: Path) -> None:
    """synthetic-small-cuhk03-classic runs fill a CUHK03-classic table, in preference to the
    plain synthetic-small runs of the same row; a Market table leaves them out, saying why."""
    runs = [record("rga_baseline", "synthetic-small"),
            record("rga_baseline", "synthetic-small-cuhk03-classic")]
    folder = _table_with_column(_mkdir(tmp_path / "c"), "cuhk03-classic-detected")
    classic = compare("rga_table9", runs, tables_dir=folder)
    assert classic.selection.smoke_dataset == "synthetic-small-cuhk03-classic"
    assert cell_n(classic.frame, "Base", "cuhk03-classic-detected") == 1
    assert [why for _, why in classic.selection.ignored] == [
        "smoke run on synthetic-small: this report uses the runs under "
        "cuhk03-classic-detected's protocol"]
    market = compare("rga_table9", runs,
                     tables_dir=_table_with_column(_mkdir(tmp_path / "m"), "market1501"))
    assert market.selection.smoke_dataset == "synthetic-small"
    assert [why for _, why in market.selection.ignored] == [
        "smoke run on synthetic-small-cuhk03-classic: imitates the protocol of "
        "cuhk03-classic-labeled, cuhk03-classic-detected, not of market1501"]


def test_smoke_variants_name_their_preset_and_protocol() -> None:
    assert smoke_variant("synthetic-small", "cuhk03-classic-detected") == \
        "synthetic-small-cuhk03-classic"
    assert smoke_variant("synthetic-tiny", "partial-reid") == "synthetic-tiny-partial-reid"
    assert smoke_variant("synthetic-small", "market1501") is None
    assert smoke_variant("market1501", "cuhk03-classic-detected") is None


@pytest.mark.parametrize("name", ["msmt17v2", "msmt17-trainval", "msmt17v2-trainval",
                                  "market1502"])
def test_records_without_a_published_counterpart_are_listed_with_the_reason(name: str) -> None:
    comp = compare("rga_table5", [record("rga_baseline", name)])
    ((run_id, reason),) = comp.selection.ignored
    assert reason.startswith(f"dataset {name!r} has no published counterpart (")
    assert "reid_core/data/names.py" in reason
