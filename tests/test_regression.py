"""CI regression check: re-run the small recorded configurations and compare with
``results/expected/rga_smoke_ci.json`` (how each recording was made is in its ``command``).

One re-run serves every comparison: exact mode where this environment has a recording,
cross-version mode against every recording of another environment (so an upgrade of torch or
a different CPU must pass), and an injected regression (RGA's relation order swapped) that must
fail in both modes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

import reid_core.models.attention.rga as rga
from reid_core.app.regression import (
    choose_reference, compare, current_environment, findings_table, load_expected,
    same_environment, rerun)

EXPECTED = Path(__file__).resolve().parents[1] / "results" / "expected" / "rga_smoke_ci.json"
QUIET = Console(quiet=True)


@pytest.fixture(scope="module")
def expected():
    return load_expected(EXPECTED)


@pytest.fixture(scope="module")
def reruns(expected, tmp_path_factory):
    return rerun(expected, tmp_path_factory.mktemp("regression"), QUIET)


def _explain(result) -> str:
    console = Console(width=160, record=True, file=open("/dev/null", "w"))
    console.print(findings_table(result))
    return console.export_text()


def test_expected_file_records_real_runs(expected):
    epochs = expected["overrides"]["optim"]["epochs"]
    assert len(expected["recordings"]) >= 2  # a cross-version band needs two environments
    for rec in expected["recordings"]:
        assert rec["command"].startswith("python") and "record" in rec["command"]
        assert rec["environment"]["torch"] and rec["environment"]["platform"]
        for row in expected["rows_run"]:
            runs = rec["rows"][row]["runs"]
            assert [r["seed"] for r in runs] == expected["seeds"] and len(runs) >= 2, row
            assert all(len(r["loss_per_epoch"]) == epochs for r in runs), row
    band = expected["cross_version"]
    assert band["environment_pairs"] >= 1 and len(band["epoch_loss_rtol"]) == epochs


def test_rerun_matches_expected_metrics(expected, reruns):
    mode, reference = choose_reference(expected, current_environment())
    result = compare(expected, reruns, mode, reference)
    print(result.describe())
    assert result.ok, "regression against results/expected/rga_smoke_ci.json:\n" + _explain(result)


def test_cross_version_mode_accepts_every_other_environment(expected, reruns):
    env = current_environment()
    others = [r for r in expected["recordings"] if not same_environment(r["environment"], env)]
    assert others, "every recording was made in this environment: nothing to cross-check"
    for reference in others:
        result = compare(expected, reruns, "cross-version", reference)
        assert result.ok, _explain(result)


@pytest.fixture(scope="module")
def regressed(expected, tmp_path_factory):
    """rga_s re-run with the relation vector's halves swapped ([R(:, i), R(i, :)] instead of
    [R(i, :), R(:, i)]): a one-line model change that leaves every shape intact."""
    original = rga.stack_relations
    mp = pytest.MonkeyPatch()
    mp.setattr(rga, "stack_relations", lambda r, grid: original(r.transpose(1, 2), grid))
    try:
        return rerun(expected, tmp_path_factory.mktemp("regressed"), QUIET, rows=["rga_s"])
    finally:
        mp.undo()


def test_injected_regression_fails_in_exact_mode(expected, regressed):
    mode, reference = choose_reference(expected, current_environment())
    if mode != "exact":
        pytest.skip("no recording of this environment: exact mode does not apply here")
    assert not compare(expected, regressed, "exact", reference).ok


def test_injected_regression_fails_in_cross_version_mode(expected, regressed):
    for reference in expected["recordings"]:
        result = compare(expected, regressed, "cross-version", reference)
        assert not result.ok, _explain(result)
        assert any(not f.ok for f in result.findings if f.quantity == "loss epoch 1")


def test_mode_selection(expected):
    recorded = expected["recordings"][0]["environment"]
    mode, ref = choose_reference(expected, dict(recorded))
    assert mode == "exact" and same_environment(ref["environment"], recorded)
    upgraded = {**recorded, "torch": "99.0.0"}
    mode, _ = choose_reference(expected, upgraded)
    assert mode == "cross-version"
    with pytest.raises(ValueError, match="no recording"):
        choose_reference(expected, upgraded, "exact")


def test_expected_file_is_plain_json():
    json.loads(EXPECTED.read_text())  # no NaN / Infinity tokens
