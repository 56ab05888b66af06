"""Table kinds: declared in each paper table, mapped to a row runner and a report renderer.

Defect reproduced: the kind of CSA Table 6 (memory / FPS) was chosen by keyword arguments of
``reproduce/table6_csa.py``; anything else that reproduced or reported it (``reproduce.main``
without them, the metrics report) rendered six "not run" rows over the cost report's file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from rich.console import Console

from reid_core.app.reproduce import main as reproduce_main
from reid_core.results.paper_tables import PAPER_TABLES_DIR, PaperTableError, list_tables, load_table

NEW = {"torch": "2.15.0+cu132", "torchvision": "0.29.2+cu132", "numpy": "2.4.6"}


def cost_record(config: str, stamp: str, **extra: Any) -> dict[str, Any]:
    """A minimal cost measurement record (as measure_cost_row writes it)."""
    return {
        "kind": "measurement", "run_id": f"{config}-cost-{stamp}", "config_name": config,
        "seed": 0, "dataset": {"name": "n/a"}, "versions": dict(NEW), "profile": "paper",
        "measurements": {"memory_per_image_mb": {"train": 100.0, "inference": 10.0},
                         "fps": {"best": 22.0, "median": 20.0, "times_s": [1.0]},
                         "memory_method": "m", "batch_size": 8, "input_size": [384, 128],
                         "device": "cpu", "threads": 2, "repeats": 5}, **extra}


def write_runs(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (directory / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    return directory


# --------------------------------------------------------------------------- the defect


def test_reproducing_the_cost_table_measures_and_writes_the_cost_report(tmp_path: Path) -> None:
    """``main("csa_table6")`` alone (no keyword arguments) runs its rows at the paper profile
    and writes the cost report: ratios, not six "not run" rows."""
    seen: list[tuple[str, str]] = []

    def fake_measure(cfg: Any, args: Any, console: Any) -> dict[str, Any]:
        seen.append((cfg.name, args.profile))
        return cost_record(cfg.name, "1")

    code = reproduce_main("csa_table6", ["--out", str(tmp_path), "--rows", "csa_pcb",
                                         "csa_pcb_sa", "--profile", "smoke"],
                          run_row=fake_measure)
    assert code == 0
    assert seen == [("csa_pcb", "paper"), ("csa_pcb_sa", "paper")]  # the kind's profile
    text = (tmp_path / "reports" / "csa_table6.md").read_text()
    assert "| Row | Published MB/img | Published ratio |" in text
    assert "| PCB + SA (Group Num = 1) | 304.33 | 242% | 100.0 | 100% |" in text
    assert {p.name for p in (tmp_path / "reports").iterdir()} == {
        "csa_table6.md", "csa_table6_ratios.png"}


def test_reproduce_picks_the_runner_of_the_kind() -> None:
    from reid_core.app.tables import (
        count_parameters_row, measure_cost_row, table_kind, train_row)

    assert table_kind(load_table("csa_table6")).run_row is measure_cost_row
    assert table_kind(load_table("rga_table3")).run_row is count_parameters_row
    assert table_kind(load_table("rga_table1")).run_row is train_row
    assert table_kind(load_table("sag_table2")).run_row is None  # published data only


def test_the_comparison_refuses_a_cost_table() -> None:
    from reid_core.results.report import compare

    with pytest.raises(ValueError, match="csa_table6 is a cost table"):
        compare("csa_table6", [cost_record("csa_pcb", "1")])


def test_render_table_report_renders_the_kind_of_the_table(tmp_path: Path) -> None:
    from reid_core.app.tables import render_table_report

    runs = write_runs(tmp_path / "runs", [cost_record("csa_pcb", "1"),
                                          cost_record("csa_pcb_sa", "2")])
    console = Console(record=True, width=200)
    path = render_table_report("csa_table6", runs, tmp_path / "reports", console)
    assert path == tmp_path / "reports" / "csa_table6.md"
    assert "| PCB | 125.64 | 100% | 100.0 | 100% |" in path.read_text()
    with pytest.raises(ValueError, match="--dataset, --profile and --compare-to do not apply"):
        render_table_report("csa_table6", runs, tmp_path / "reports", console,
                            profile="paper")


def test_render_table_report_prints_the_verdicts_of_a_comparison(tmp_path: Path) -> None:
    from reid_core.app.tables import render_table_report

    rec = {"run_id": "rga_baseline-params", "config_name": "rga_baseline",
           "dataset": {"name": "n/a"}, "kind": "measurement", "seed": 0,
           "measurements": {"params": 25_557_032}, "versions": dict(NEW)}
    runs = write_runs(tmp_path / "runs", [rec])
    (runs / "broken.json").write_text("{not json")
    console = Console(record=True, width=200)
    path = render_table_report("rga_table3", runs, tmp_path / "reports", console)
    printed = console.export_text()
    assert path.name == "rga_table3.md" and "broken.json" in printed  # a note per bad file
    assert "paper profile" in printed and "RGA-S" in printed and "not run" in printed


# --------------------------------------------------------------------------- the registry


def test_every_table_declares_a_kind_with_behaviour() -> None:
    from reid_core.app.tables import TABLE_KINDS
    from reid_core.results.table_kinds import TABLE_KIND_RULES

    assert TABLE_KINDS.names() == TABLE_KIND_RULES.names()
    for table_id in list_tables():
        raw = yaml.safe_load((PAPER_TABLES_DIR / f"{table_id}.yaml").read_text())
        assert raw["kind"] in TABLE_KINDS.names(), table_id
    assert load_table("csa_table6").kind == "cost"
    assert load_table("rga_table3").kind == "parameters"


def _table_file(tmp_path: Path, **changes: Any) -> Path:
    data = yaml.safe_load((PAPER_TABLES_DIR / "rga_table3.yaml").read_text())
    data = copy.deepcopy(data) | changes
    (tmp_path / "rga_table3.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return tmp_path


@pytest.mark.parametrize("kind, columns, message", [
    ("parameters", [{"dataset": "n/a", "metric": "flops", "unit": "G"}],
     "columns[0].metric: 'flops' is not a quantity of a parameters table (params)"),
    ("cost", [{"dataset": "n/a", "metric": "params", "unit": "M"}],
     "columns[0].metric: 'params' is not a quantity of a cost table (fps, memory_per_image)"),
    ("metric", [{"dataset": "n/a", "metric": "params", "unit": "M"}],
     "kind: 'metric' is not one of metrics, data, parameters, cost"),
])
def test_the_schema_checks_the_columns_of_each_kind(tmp_path: Path, kind: str,
                                                    columns: list[dict[str, Any]],
                                                    message: str) -> None:
    folder = _table_file(tmp_path, kind=kind, columns=columns)
    with pytest.raises(PaperTableError) as info:
        load_table("rga_table3", folder)
    assert message in str(info.value)
