"""Verdicts with uncertainty (reid_core.results.report.uncertainty / verdicts): the confidence
interval of a reproduced gain and the verdict drawn from it, on hand-made data whose interval is
known: the Student t-interval of the seed differences, the paired bootstrap over queries (a
two-query case whose bootstrap distribution is exact), their combination, the pairing checks,
and single-seed cases that cannot be contradicted by their sign.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from reid_core.results.report import build_comparison
from reid_core.results.report.uncertainty import (
    BootstrapSettings, GainInterval, gain_interval, paired_gain_interval, query_set_problem)
from reid_core.results.report.verdicts import (
    CONTRADICTED, HOLDS, INCONCLUSIVE, interval_verdict)

T1 = 12.706204736174707  # Student t, 1 degree of freedom, 97.5% quantile
T2 = 4.302652729749464   # 2 degrees of freedom


def per_query(first_hit: list[int | None], ap: list[float | None],
              digest: str = "q0") -> dict[str, Any]:
    return {"queries": len(first_hit), "valid": sum(h is not None for h in first_hit),
            "query_digest": digest, "ap": ap, "first_hit": first_hit}


def record(config: str, seed: int, first_hit: list[int | None] | None = None,
           ap: list[float | None] | None = None, *, r1: float | None = None,
           dataset: str = "synthetic", fingerprint: str = "spec:1",
           digest: str = "q0") -> dict[str, Any]:
    """A run record; with ``first_hit`` / ``ap`` its R1 / mAP are their means (percent)."""
    values: dict[str, Any] = {}
    if first_hit is not None:
        assert ap is not None
        valid = [h for h in first_hit if h is not None]
        values["R1"] = 100 * sum(h == 0 for h in valid) / len(valid)
        values["mAP"] = 100 * float(np.mean([a for a in ap if a is not None]))
        values["per_query"] = per_query(first_hit, ap, digest)
    else:
        values["R1"] = r1
        values["mAP"] = r1
    return {
        "run_id": f"{config}-seed{seed}-{fingerprint}", "config_name": config, "seed": seed,
        "config": {"name": config, "seed": seed},
        "dataset": {"name": dataset, "identity": {"dataset": dataset, "protocol": "market",
                                                  "fingerprint": fingerprint},
                    "splits": {"query": {"images": 4}, "gallery": {"images": 40}}},
        "finished_at": "2025-01-01T10:00:00+00:00",
        "final": {"after_bn": values}, "primary_feature": "after_bn",
    }


def cell(frame, row: str, metric: str = "R1"):
    hit = frame[(frame["row"] == row) & (frame["dataset"] == "cuhk03-labeled")
                & (frame["metric"] == metric)]
    assert len(hit) == 1
    return hit.iloc[0]


# --------------------------------------------------------------------------- verdict rule


def test_interval_verdict_needs_the_whole_interval_on_one_side() -> None:
    assert interval_verdict(+5.5, 0.1, 3.0) == HOLDS
    assert interval_verdict(+5.5, -3.0, -0.1) == CONTRADICTED
    assert interval_verdict(+5.5, -0.1, 3.0) == INCONCLUSIVE
    assert interval_verdict(+5.5, 0.0, 3.0) == INCONCLUSIVE  # touching 0 is not "entirely"
    assert interval_verdict(-2.0, -3.0, -0.1) == HOLDS  # a published loss, reproduced
    assert interval_verdict(-2.0, 0.5, 1.0) == CONTRADICTED
    assert interval_verdict(+1.0, math.nan, math.nan) == INCONCLUSIVE  # no interval
    with pytest.raises(ValueError, match="non-zero published gain"):
        interval_verdict(0.0, 1.0, 2.0)


# --------------------------------------------------------------------------- the interval


def test_seed_spread_alone_is_the_student_t_interval() -> None:
    low, high, method = gain_interval([1.0, 2.0, 3.0])
    half = T2 * 1.0 / math.sqrt(3)  # sd 1, k = 3
    assert (low, high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    assert method == "seeds"
    assert gain_interval([4.0]) is None  # one seed, no per-query data: no interval at all
    assert gain_interval([]) is None


def test_paired_query_bootstrap_of_two_queries_is_exact() -> None:
    """x = (0, 2): the mean of 2 resampled queries is 0, 1 or 2 with probabilities 1/4, 1/2,
    1/4, so the 2.5 / 97.5 % percentiles are exactly center − 1 and center + 1."""
    low, high, method = gain_interval([5.0], np.array([0.0, 2.0]))
    assert (low, high, method) == (4.0, 6.0, "queries")
    # no query noise: the interval is the point
    assert gain_interval([5.0], np.full(10, 5.0))[:2] == (5.0, 5.0)


def test_query_bootstrap_matches_the_normal_approximation() -> None:
    """400 queries, half hit (100) and half miss (0) more often for the row: the interval of
    the mean is about center ± 1.96 * 50 / sqrt(400)."""
    x = np.array([100.0, 0.0] * 200)
    low, high, _ = gain_interval([50.0], x)
    assert low == pytest.approx(50.0 - 1.96 * 2.5, abs=0.5)
    assert high == pytest.approx(50.0 + 1.96 * 2.5, abs=0.5)


def test_bootstrap_is_reproducible_and_seeded() -> None:
    x = np.random.default_rng(7).normal(1.0, 5.0, size=300)
    a = gain_interval([1.0, 1.5, 0.5], x)
    assert gain_interval([1.0, 1.5, 0.5], x) == a  # same data, same settings: same bits
    other = gain_interval([1.0, 1.5, 0.5], x, BootstrapSettings(seed=1))
    assert other != a and other[0] == pytest.approx(a[0], abs=0.5)
    narrow = gain_interval([1.0, 1.5, 0.5], x, BootstrapSettings(confidence=0.5))
    assert a[0] < narrow[0] < narrow[1] < a[1]


def test_seed_spread_combines_with_the_query_bootstrap() -> None:
    diffs = [1.0, 2.0, 3.0]
    # queries without noise: the combined interval is the t-interval (stratified t draws)
    low, high, method = gain_interval(diffs, np.full(50, 2.0))
    half = T2 / math.sqrt(3)
    assert method == "queries+seeds"
    assert (2.0 - low, high - 2.0) == (pytest.approx(half, rel=1e-3), pytest.approx(half, rel=1e-3))
    # both sources: wider than either alone, narrower than their sum
    x = np.random.default_rng(3).normal(2.0, 20.0, size=200)
    q_low, q_high, _ = gain_interval([2.0], x)
    s_low, s_high, _ = gain_interval(diffs)
    c_low, c_high, _ = gain_interval(diffs, x)
    width = c_high - c_low
    assert max(q_high - q_low, s_high - s_low) < width < (q_high - q_low) + (s_high - s_low)


def test_two_seeds_are_as_wide_as_their_t_interval() -> None:
    """Resampling 2 seeds would give an interval between them; the t level does not."""
    low, high, _ = gain_interval([1.0, 3.0], np.full(20, 2.0))
    assert (2.0 - low, high - 2.0) == (pytest.approx(T1, rel=1e-3), pytest.approx(T1, rel=1e-3))


# --------------------------------------------------------------------------- records


HITS_BASE = [0, 1, 0, 2]
AP_BASE = [1.0, 0.5, 1.0, 0.25]


def test_records_are_paired_per_seed_on_their_queries() -> None:
    base = [record("rga_baseline", s, HITS_BASE, AP_BASE) for s in (0, 1)]
    row = [record("rga_s", 0, [0, 0, 0, 2], [1.0, 1.0, 1.0, 0.25]),
           record("rga_s", 1, [0, 0, 0, 1], [1.0, 1.0, 1.0, 0.5])]
    got = paired_gain_interval(row, base, "R1")
    assert (got.method, got.seeds, got.queries, got.note) == ("queries+seeds", 2, 4, None)
    # per query, mean over seeds of row − base R1: (0, 100, 0, 0); both seeds differ by 25
    assert got.center == pytest.approx(25.0)
    assert got.low <= 0.0 <= got.high  # 4 queries, one of which carries the gain
    mAP = paired_gain_interval(row, base, "mAP")
    assert mAP.center == pytest.approx(100 * (0.5 / 4 + 0.75 / 4) / 2)


def test_a_refused_pairing_has_no_interval_and_says_why() -> None:
    base = [record("rga_baseline", 0, HITS_BASE, AP_BASE)]
    other_data = [record("rga_s", 0, HITS_BASE, AP_BASE, fingerprint="spec:2")]
    got = paired_gain_interval(other_data, base, "R1")
    assert not got.exists and "data identities differ" in got.note
    other_queries = [record("rga_s", 0, HITS_BASE, AP_BASE, digest="q1")]
    got = paired_gain_interval(other_queries, base, "R1")
    assert not got.exists and "query_digest" in got.note
    assert query_set_problem(base[0], base[0]) is None
    unpaired = paired_gain_interval([record("rga_s", 5, HITS_BASE, AP_BASE)], base, "R1")
    assert not unpaired.exists and unpaired.note == "not paired: no seed was run by both rows"
    assert GainInterval().method is None


def test_records_without_per_query_data_fall_back_to_the_seed_spread() -> None:
    base = [record("rga_baseline", s, r1=30.0 + s) for s in (0, 1, 2)]
    row = [record("rga_s", s, r1=32.0 + s + (0.5 if s == 1 else 0)) for s in (0, 1, 2)]
    got = paired_gain_interval(row, base, "R1")
    sd = float(np.std([2.0, 2.5, 2.0], ddof=1))
    assert got.method == "seeds" and got.queries is None and got.note is None
    assert (got.low, got.high) == (pytest.approx(13 / 6 - T2 * sd / math.sqrt(3)),
                                   pytest.approx(13 / 6 + T2 * sd / math.sqrt(3)))
    # per-query data on some records only: seed spread, with a note
    mixed = [record("rga_s", 0, HITS_BASE, AP_BASE), *row[1:]]
    got = paired_gain_interval(mixed, base, "R1")
    assert got.method == "seeds" and "per-query data in 1 of the 6" in got.note


# --------------------------------------------------------------------------- comparison


def test_one_seed_without_per_query_data_is_never_contradicted() -> None:
    records = [record("rga_baseline", 0, r1=40.0), record("rga_s", 0, r1=30.0)]
    line = cell(build_comparison("rga_table1", records), "RGA-S")
    assert line["reproduced_gain"] == pytest.approx(-10.0)  # far below a published +5.5 ...
    assert line["claim_holds"] == False  # noqa: E712
    assert line["verdict"] == INCONCLUSIVE  # ... but one seed's sign decides nothing
    assert math.isnan(line["gain_low"]) and line["paired_seeds"] == 1


def test_one_seed_with_per_query_data_shows_its_interval_but_decides_nothing() -> None:
    """One seed: the query bootstrap gives an interval (the test set's noise), but one training
    run is never a verdict (the seed-to-seed spread is unknown)."""
    n = 200
    base_hits = [0] * (n // 2) + [3] * (n // 2)
    worse = [3] * n  # the row misses every query the baseline hits
    slightly = list(base_hits)  # two hits lost, one gained: -0.5 points, within the noise
    slightly[0] = slightly[1] = 3
    slightly[-1] = 0
    ap = [0.5] * n
    records = [record("rga_baseline", 0, base_hits, ap), record("rga_s", 0, worse, ap),
               record("rga_c", 0, slightly, ap)]
    frame = build_comparison("rga_table1", records)
    rga_s = cell(frame, "RGA-S")
    assert rga_s["reproduced_gain"] == pytest.approx(-50.0)
    assert rga_s["interval"] == "queries" and rga_s["interval_queries"] == n
    assert rga_s["gain_high"] < 0 and rga_s["verdict"] == INCONCLUSIVE
    rga_c = cell(frame, "RGA-C")
    assert rga_c["reproduced_gain"] == pytest.approx(-0.5)
    assert rga_c["claim_holds"] == False  # noqa: E712
    assert rga_c["gain_low"] < 0 < rga_c["gain_high"] and rga_c["verdict"] == INCONCLUSIVE
    # mAP: equal APs on every query, the gain is exactly 0 with no noise -> [0, 0]: inconclusive
    m = cell(frame, "RGA-S", "mAP")
    assert (m["gain_low"], m["gain_high"], m["verdict"]) == (0.0, 0.0, INCONCLUSIVE)


def test_comparison_uses_queries_and_seeds_and_states_the_test(tmp_path) -> None:
    from reid_core.results.report import render_report

    rng = np.random.default_rng(0)
    n = 300
    records = []
    for seed in (0, 1, 2):
        base = [int(h) for h in rng.integers(0, 3, size=n)]
        better = [0 if rng.random() < 0.3 else h for h in base]  # the row fixes ~30% of misses
        records += [record("rga_baseline", seed, base, [0.5] * n),
                    record("rga_s", seed, better, [0.6] * n)]
    frame = build_comparison("rga_table1", records)
    line = cell(frame, "RGA-S")
    assert line["interval"] == "queries+seeds" and line["paired_seeds"] == 3
    assert 0 < line["gain_low"] < line["reproduced_gain"] < line["gain_high"]
    assert line["verdict"] == HOLDS
    assert frame.attrs["resamples"] == 2000 and frame.attrs["bootstrap_seed"] == 0
    again = build_comparison("rga_table1", records)
    assert cell(again, "RGA-S")["gain_low"] == line["gain_low"]  # reproducible
    text = render_report("rga_table1", records, tmp_path).read_text()
    assert "2 hold, 0 contradicted, 0 inconclusive" in text
    assert "2 by the paired bootstrap over queries combined with the seed spread (3 seeds)" in text
    shown = (f"+{line['reproduced_gain']:.2f} [+{line['gain_low']:.2f}, "
             f"+{line['gain_high']:.2f}] ✓ holds")
    assert shown in text
