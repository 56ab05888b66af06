"""CI regression check: re-run the small recorded configurations and compare with
``results/expected/rga_smoke_ci.json`` (how it was recorded is in that file's ``command``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid_core.regression import check_expected

EXPECTED = Path(__file__).resolve().parents[1] / "results" / "expected" / "rga_smoke_ci.json"


def test_expected_file_records_real_runs():
    exp = json.loads(EXPECTED.read_text())
    assert exp["command"].startswith("python") and "record" in exp["command"]
    for row, entry in exp["rows"].items():
        assert len(entry["runs"]) == len(exp["seeds"]) >= 2, row
        assert all(len(r["loss_per_epoch"]) == exp["overrides"]["optim"]["epochs"]
                   for r in entry["runs"]), row


def test_rerun_matches_expected_metrics(tmp_path):
    findings = check_expected(EXPECTED, tmp_path)
    bad = [f for f in findings if not f.ok]
    report = "\n".join(f"{f.row} {f.quantity}: expected {f.expected:.4f}, got {f.got:.4f} "
                       f"({f.tolerance})" for f in bad)
    assert not bad, "regression against results/expected/rga_smoke_ci.json:\n" + report
