"""``python -m reid_core reproduce``: any paper table from one command; the scripts in
``reproduce/`` are one call of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import reid_core.app.reproduce as app_reproduce
from reid_core.cli import main as cli_main
from reid_core.cli.reproduce import runnable_tables
from reid_core.resources import paper_configs_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # rich would wrap long lines at 80 columns


def test_list_shows_the_tables_that_have_configs(capsys, wide):
    assert cli_main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for table_id in ("rga_table1", "rga_table3", "csa_table1", "csa_table6"):
        assert table_id in out
    assert "csa_table7" not in out  # no reproducible row
    for table in runnable_tables():
        assert table.configs() and (paper_configs_dir() / f"{table.paper.lower()}.yaml").is_file()


def test_flags_after_the_table_id_go_to_the_table(monkeypatch):
    calls = []
    monkeypatch.setattr(app_reproduce, "main",
                        lambda table_id, argv, **kw: calls.append((table_id, argv, kw)) or 0)
    assert cli_main(["reproduce", "rga_table4", "--seeds", "0", "1", "--rows", "RGA-S"]) == 0
    assert calls == [("rga_table4", ["--seeds", "0", "1", "--rows", "RGA-S"],
                      {"prog": "python -m reid_core reproduce rga_table4"})]


def test_a_table_that_trains_nothing_keeps_its_runner(tmp_path, capsys):
    """rga_table3 counts parameters (paper input size, whatever --profile says): one row here."""
    assert cli_main(["reproduce", "rga_table3", "--out", str(tmp_path), "--rows", "Baseline",
                     "--profile", "smoke"]) == 0
    (path,) = (tmp_path / "runs").glob("rga_baseline-params751-*.json")
    record = json.loads(path.read_text())
    assert record["kind"] == "measurement" and record["profile"] == "paper"
    assert record["dataset"]["classifier_classes"] == 751  # Market-1501's (RGA Table 3)
    assert record["measurements"]["params"] == 25_050_176
    assert (tmp_path / "reports" / "rga_table3.md").is_file()


def test_usage_errors(capsys, wide):
    assert cli_main(["reproduce", "rga_table99"]) == 2
    out = capsys.readouterr().out
    assert "unknown paper table 'rga_table99'" in out and "rga_table1" in out
    assert "--list" in out and "Traceback" not in out
    for argv in (["reproduce"], ["reproduce", "--list", "rga_table1"]):
        with pytest.raises(SystemExit) as e:
            cli_main(argv)
        assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # the table's own parser: its flags only
        cli_main(["reproduce", "rga_table1", "--epochs", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "reproduce rga_table1: error: unrecognized" in err


def test_table_help_names_the_table(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["reproduce", "rga_table1", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert out.startswith("usage: python -m reid_core reproduce rga_table1")
    assert "RGA Table 1:" in out and "--seeds" in out and "--rows" in out


def test_every_script_is_one_call_of_the_command():
    for script in sorted((REPO / "reproduce").glob("table*_*.py")):
        table_id = f"{script.stem.split('_')[1]}_{script.stem.split('_')[0]}"
        body = script.read_text().split('"""')[-1]
        assert f'sys.exit(reproduce_table("{table_id}"))' in body, script.name
        assert "from reid_core.cli.reproduce import reproduce_table" in body, script.name


def test_script_help_is_unchanged():
    done = subprocess.run([sys.executable, str(REPO / "reproduce" / "table1_rga.py"), "--help"],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: reproduce rga_table1 [-h] [--profile {smoke,scratch,paper}]")
    assert "RGA Table 1:" in done.stdout
