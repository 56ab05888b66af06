"""The published-vs-reproduced report (reid_core.results.report) and ``python -m reid_core report``.

Hand-made run records for ``rga_table1`` (published: paper_tables/rga_table1.yaml) exercise every
path: a baseline with 2 seeds, a row with 3 seeds whose gain has the published sign, a row whose
gain has the opposite sign, a row whose gain is within the seed noise (inconclusive), a
single-seed row, rows not run, a row run on a dataset whose baseline was not run, records on a
real dataset (Δ filled) and on the synthetic one (Δ NA). Expected numbers are computed by hand in
the comments. The records carry no per-query data, so each verdict rests on the Student
t-interval of the paired seed differences (tests/test_report_uncertainty.py covers the
bootstrap over queries).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from reid_core.cli import main as cli_main
from reid_core.results.report import (
    COMPARISON_COLUMNS,
    DATASET_TO_COLUMN,
    build_comparison,
    render_report,
)
from reid_core.results.store import load_records

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CUHK = "cuhk03np-labeled"


def record(
    config: str, seed: int, dataset: str, *, day: int = 1, **metrics: float
) -> dict[str, Any]:
    """A minimal run record: only the fields the report reads."""
    return {
        "run_id": f"{config}-seed{seed}-{dataset}",
        "config_name": config,
        "config_hash": "abc123",
        "seed": seed,
        "config": {"name": config, "seed": seed, "data": {"dataset": dataset}},
        "dataset": {"name": dataset},
        "device": {"type": "cuda", "name": "NVIDIA A100", "amp": True,
                   "amp_dtype": "torch.bfloat16"},
        "versions": {"git_commit": "0123456789abcdef0123"},
        "finished_at": f"2025-01-0{day}T10:00:00+00:00",
        "wall_time_s": 1800.0,
        "peak_memory": {"host_rss_peak_mb": 2048.0, "cuda_allocated_peak_mb": 8192.0},
        "pretrained": None,
        "final": {"after_bn": dict(metrics), "before_bn": {k: 0.0 for k in metrics}},
        "primary_feature": "after_bn",
    }


def real_records() -> list[dict[str, Any]]:
    """Records on real datasets (CUHK03-NP labeled, one Market run) plus two to be ignored."""
    return [
        # baseline ResNet-50, 2 seeds: R1 mean 74.5 (std 0.7071), mAP mean 69.5
        record("rga_baseline", 0, CUHK, day=1, R1=74.0, mAP=69.0),
        record("rga_baseline", 1, CUHK, day=1, R1=75.0, mAP=70.0),
        # RGA-S, 3 seeds: R1 mean 78 (std 1), gain +3.5 vs published +5.5; paired seeds 0, 1
        # differ by +3, +3 (R1 and mAP): interval [+3, +3] -> holds
        record("rga_s", 0, CUHK, day=2, R1=77.0, mAP=72.0),
        record("rga_s", 1, CUHK, day=2, R1=78.0, mAP=73.0),
        record("rga_s", 2, CUHK, day=2, R1=79.0, mAP=74.0),
        # RGA-S w/o Rel., 2 seeds: R1 mean 73.0, gain -1.5 vs published +3.0; paired R1
        # differences -1.5, -1.5 -> [-1.5, -1.5] contradicted; mAP -1.0, -1.6: -1.3 ± t(1) 0.3
        # -> [-5.11, +2.51] inconclusive
        record("rga_s_wo_rel", 0, CUHK, day=2, R1=72.5, mAP=68.0),
        record("rga_s_wo_rel", 1, CUHK, day=2, R1=73.5, mAP=68.4),
        # RGA-C, 2 seeds, no mAP in the record: R1 differences +0.4, 0: +0.2 ± 12.706 * 0.2
        # -> inconclusive
        record("rga_c", 0, CUHK, day=3, R1=74.4),
        record("rga_c", 1, CUHK, day=3, R1=75.0),
        # RGA-SC, 1 seed on CUHK03 (no interval: inconclusive) and 1 on Market (baseline not
        # run there)
        record("rga_sc", 0, CUHK, day=3, R1=80.0, mAP=75.0),
        record("rga_sc", 0, "market1501", day=3, R1=95.0, mAP=87.0),
        # ignored: another table's config (silently), an unmapped dataset (listed)
        record("csa_pcb", 0, "market1501", R1=90.0, mAP=80.0),
        record("rga_s", 3, "msmt17v2", R1=70.0, mAP=40.0),
    ]


def synthetic_records() -> list[dict[str, Any]]:
    """Smoke runs: baseline R1 mean 31 (std 1.414), RGA-S mean 34 -> gain +3.0 (se 1.414);
    paired differences +5, +1: 3 ± t(1) 2 = [-22.4, +28.4]."""
    return [
        record("rga_baseline", 0, "synthetic", R1=30.0, mAP=20.0),
        record("rga_baseline", 1, "synthetic", R1=32.0, mAP=22.0),
        record("rga_s", 0, "synthetic", R1=35.0, mAP=21.0),
        record("rga_s", 1, "synthetic", R1=33.0, mAP=21.0),
    ]


def cell(frame: pd.DataFrame, row: str, dataset: str, metric: str) -> pd.Series:
    """The frame line of (row, dataset, metric)."""
    hit = frame[(frame["row"] == row) & (frame["dataset"] == dataset) & (frame["metric"] == metric)]
    assert len(hit) == 1, (row, dataset, metric)
    return hit.iloc[0]


def write_runs(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (directory / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    return directory


@pytest.fixture(scope="module")
def real_frame() -> pd.DataFrame:
    return build_comparison("rga_table1", real_records())


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_report("rga_table1", real_records(), tmp_path_factory.mktemp("reports"))


# --------------------------------------------------------------------------- frame


def test_frame_shape_and_order(real_frame: pd.DataFrame) -> None:
    assert list(real_frame.columns) == COMPARISON_COLUMNS
    assert len(real_frame) == 10 * 4  # one line per (row, published column)
    assert list(real_frame["row"].iloc[:4]) == ["ResNet-50"] * 4
    assert real_frame.attrs["profile"] == "paper"
    assert real_frame["comparable"].all()


def test_baseline_two_seeds(real_frame: pd.DataFrame) -> None:
    base = cell(real_frame, "ResNet-50", "cuhk03-labeled", "R1")
    assert base["published"] == 73.8 and base["flag"] == "clean"
    assert base["reproduced"] == pytest.approx(74.5)
    assert base["std"] == pytest.approx(math.sqrt(0.5))
    assert base["n"] == 2
    assert base["delta"] == pytest.approx(0.7)
    assert base["verdict"] == "baseline"
    assert math.isnan(base["published_gain"]) and pd.isna(base["claim_holds"])


def test_gain_with_published_sign_holds(real_frame: pd.DataFrame) -> None:
    line = cell(real_frame, "RGA-S", "cuhk03-labeled", "R1")
    assert (line["reproduced"], line["n"]) == (pytest.approx(78.0), 3)
    assert line["std"] == pytest.approx(1.0)
    assert line["delta"] == pytest.approx(78.0 - 79.3)
    assert line["published_gain"] == pytest.approx(79.3 - 73.8)
    assert line["reproduced_gain"] == pytest.approx(3.5)
    assert line["gain_se"] == pytest.approx(math.sqrt(1 / 3 + 0.5 / 2))
    assert line["claim_holds"] is True or line["claim_holds"] == True  # noqa: E712
    assert line["verdict"] == "holds"
    # the interval is over the 2 seeds both rows ran (seed 2 of RGA-S is unpaired)
    assert (line["gain_low"], line["gain_high"]) == (pytest.approx(3.0), pytest.approx(3.0))
    assert line["interval"] == "seeds" and line["paired_seeds"] == 2
    assert "seed 2" in line["interval_note"]
    m = cell(real_frame, "RGA-S", "cuhk03-labeled", "mAP")
    assert (m["reproduced_gain"], m["published_gain"]) == (pytest.approx(3.5), pytest.approx(5.7))
    assert m["verdict"] == "holds"


def test_gain_with_opposite_sign_is_contradicted_or_inconclusive(
    real_frame: pd.DataFrame,
) -> None:
    line = cell(real_frame, "RGA-S w/o Rel.", "cuhk03-labeled", "R1")
    assert line["reproduced"] == pytest.approx(73.0)
    assert line["published_gain"] == pytest.approx(3.0)
    assert line["reproduced_gain"] == pytest.approx(-1.5)
    assert line["gain_se"] == pytest.approx(math.sqrt(0.5))
    assert line["claim_holds"] == False  # noqa: E712
    # both paired seeds differ by exactly -1.5: the interval is [-1.5, -1.5], below 0
    assert (line["gain_low"], line["gain_high"]) == (pytest.approx(-1.5), pytest.approx(-1.5))
    assert line["verdict"] == "contradicted"
    m = cell(real_frame, "RGA-S w/o Rel.", "cuhk03-labeled", "mAP")
    assert m["std"] == pytest.approx(math.sqrt(0.08))
    assert m["reproduced_gain"] == pytest.approx(68.2 - 69.5)
    # paired differences -1.0, -1.6: the t-interval -1.3 ± 12.706 * 0.3 straddles 0
    assert m["gain_low"] == pytest.approx(-1.3 - 12.7062047 * 0.3)
    assert m["gain_high"] == pytest.approx(-1.3 + 12.7062047 * 0.3)
    assert m["claim_holds"] == False and m["verdict"] == "inconclusive"  # noqa: E712


def test_gain_within_standard_error_is_inconclusive(real_frame: pd.DataFrame) -> None:
    line = cell(real_frame, "RGA-C", "cuhk03-labeled", "R1")
    assert line["reproduced_gain"] == pytest.approx(0.2)
    assert line["gain_se"] == pytest.approx(math.sqrt(0.18 / 2 + 0.5 / 2))
    assert line["claim_holds"] == True  # noqa: E712  (sign agrees ...)
    assert line["verdict"] == "inconclusive"  # (... but within the noise)
    assert line["gain_low"] < 0 < line["gain_high"] and pd.isna(line["interval_note"])
    # the RGA-C records carry no mAP: not run, never 0
    m = cell(real_frame, "RGA-C", "cuhk03-labeled", "mAP")
    assert m["n"] == 0 and math.isnan(m["reproduced"]) and m["verdict"] == "not run"


def test_single_seed_and_missing_baseline(real_frame: pd.DataFrame) -> None:
    line = cell(real_frame, "RGA-SC", "cuhk03-labeled", "R1")
    assert line["n"] == 1 and math.isnan(line["std"]) and math.isnan(line["gain_se"])
    assert line["reproduced_gain"] == pytest.approx(5.5)
    # one paired seed and no per-query data: no interval, so the sign alone decides nothing
    assert line["claim_holds"] == True  # noqa: E712
    assert math.isnan(line["gain_low"]) and pd.isna(line["interval"])
    assert line["verdict"] == "inconclusive"
    market = cell(real_frame, "RGA-SC", "market1501", "R1")
    assert market["reproduced"] == pytest.approx(95.0)
    assert market["delta"] == pytest.approx(95.0 - 96.1)
    assert market["verdict"] == "no baseline run" and pd.isna(market["claim_holds"])


def test_rows_not_run_are_nan_not_zero(real_frame: pd.DataFrame) -> None:
    lines = real_frame[real_frame["row"] == "RGA-S w/o Ori."]
    assert (lines["n"] == 0).all()
    assert lines["reproduced"].isna().all() and lines["delta"].isna().all()
    assert lines["reproduced_gain"].isna().all() and lines["claim_holds"].isna().all()
    assert (lines["verdict"] == "not run").all()
    # the unmapped msmt17v2 record and the other table's config did not leak in
    assert cell(real_frame, "RGA-S", "cuhk03-labeled", "R1")["n"] == 3


def test_synthetic_records_fill_compare_to_without_delta() -> None:
    frame = build_comparison("rga_table1", synthetic_records())
    assert frame.attrs["profile"] == "smoke" and frame.attrs["compare_to"] == "cuhk03-labeled"
    line = cell(frame, "RGA-S", "cuhk03-labeled", "R1")
    assert line["reproduced"] == pytest.approx(34.0) and line["n"] == 2
    assert math.isnan(line["delta"]) and not line["comparable"]
    assert line["reproduced_gain"] == pytest.approx(3.0)
    assert line["gain_se"] == pytest.approx(math.sqrt(2.0))
    assert line["gain_low"] == pytest.approx(3.0 - 12.7062047 * 2.0)
    assert line["verdict"] == "inconclusive"  # 2 seeds differing by +5 and +1: seed noise
    assert frame["delta"].isna().all()
    assert (cell(frame, "RGA-S", "market1501", "R1")["n"]) == 0

    other = build_comparison("rga_table1", synthetic_records(), compare_to="market1501")
    assert cell(other, "RGA-S", "market1501", "R1")["n"] == 2
    assert cell(other, "RGA-S", "cuhk03-labeled", "R1")["n"] == 0


def test_profiles_never_mix() -> None:
    mixed = real_records() + synthetic_records()
    paper = build_comparison("rga_table1", mixed)  # inferred: real records win
    assert paper.attrs["profile"] == "paper"
    assert cell(paper, "ResNet-50", "cuhk03-labeled", "R1")["reproduced"] == pytest.approx(74.5)
    smoke = build_comparison("rga_table1", mixed, profile="smoke")
    assert cell(smoke, "ResNet-50", "cuhk03-labeled", "R1")["reproduced"] == pytest.approx(31.0)
    only_cuhk = build_comparison("rga_table1", mixed, dataset="cuhk03-labeled")
    assert cell(only_cuhk, "RGA-SC", "market1501", "R1")["n"] == 0


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="valid ids"):
        build_comparison("rga_table99", [])
    with pytest.raises(ValueError, match="cuhk03-labeled, market1501"):
        build_comparison("rga_table1", synthetic_records(), compare_to="msmt17")
    with pytest.raises(ValueError, match="profile"):
        build_comparison("rga_table1", [], profile="huge")


def test_dataset_mapping_covers_the_real_loaders() -> None:
    assert DATASET_TO_COLUMN["cuhk03np-labeled"] == "cuhk03-labeled"
    assert DATASET_TO_COLUMN["cuhk03np-detected"] == "cuhk03-detected"
    assert "msmt17-trainval" not in DATASET_TO_COLUMN


def test_data_table_params_hook() -> None:
    rec = record("rga_baseline", 0, CUHK)
    rec["measurements"] = {"params": 25_557_032}
    frame = build_comparison("rga_table3", [rec])
    base = cell(frame, "Baseline", "n/a", "params")
    assert base["reproduced"] == pytest.approx(25.557032)
    assert base["delta"] == pytest.approx(25.557032 - 25.1)
    assert base["verdict"] == "measured"
    assert cell(frame, "RGA-S", "n/a", "params")["verdict"] == "not run"
    assert cell(frame, "CBAM-S", "n/a", "params")["verdict"] == "not run"


# --------------------------------------------------------------------------- records on disk


def test_load_records_skips_non_records_with_a_warning(tmp_path: Path) -> None:
    runs = write_runs(tmp_path / "runs", real_records()[:2])
    (runs / "notes.json").write_text(json.dumps([1, 2]))
    (runs / "broken.json").write_text("{not json")
    with pytest.warns(UserWarning) as caught:
        records = load_records(runs)
    assert len(records) == 2
    messages = " ".join(str(w.message) for w in caught)
    assert "notes.json" in messages and "broken.json" in messages
    with pytest.raises(FileNotFoundError):
        load_records(tmp_path / "nowhere")


# --------------------------------------------------------------------------- rendered report


def table_line(text: str, row: str) -> list[str]:
    """The cells of the paper-layout table line of ``row``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) > 2 and cells[1] == row:
            return cells
    raise AssertionError(f"no table line for {row!r}")


def test_markdown_header_facts(real_report: Path) -> None:
    text = real_report.read_text()
    assert real_report.name == "rga_table1.md"
    assert "# RGA Table 1: published vs reproduced" in text
    assert "Relation-Aware Global Attention" in text and "Performance (%) comparisons" in text
    assert "real datasets at paper scale" in text
    assert "`cuhk03np-labeled` → `cuhk03-labeled` columns" in text
    assert "`market1501` → `market1501` columns" in text
    assert "cuda NVIDIA A100 (AMP torch.bfloat16) (11 runs)" in text
    assert "`0123456789ab` (11 runs)" in text
    assert "2025-01-01T10:00:00+00:00 … 2025-01-03T10:00:00+00:00" in text
    assert "**Seeds:** 0, 1, 2" in text
    assert "random initialisation" in text and "`pretrained: null`" in text
    assert "we do not implement re-ranking" in text  # the table's protocol notes
    assert "Smoke scale" not in text


def test_markdown_table_cells(real_report: Path) -> None:
    text = real_report.read_text()
    rga_s = table_line(text, "RGA-S")
    assert rga_s[2:5] == ["79.3", "78.00 ± 1.00 (n=3)", "-1.30"]
    assert rga_s[-1] == "claim holds (2/2)"
    not_run = table_line(text, "RGA-S w/o Ori.")
    # published values stay; every reproduced cell says "not run", Δ is empty, nothing is 0
    assert not_run[3::3] == ["not run"] * 4 and not_run[4::3] == [""] * 4
    assert not any(c.startswith("0.0") or c == "0" for c in not_run)
    assert not_run[-1] == "not run"
    assert table_line(text, "ResNet-50")[-1] == "baseline"
    assert table_line(text, "RGA-S w/o Rel.")[-1] == "mixed: 1 contradicted, 1 inconclusive"
    assert table_line(text, "RGA-C")[-1] == "inconclusive (1/1)"
    assert table_line(text, "RGA-SC")[-1] == (
        "inconclusive (2/2); 2 columns unchecked (no baseline run)")


def test_markdown_gains_show_the_interval(real_report: Path) -> None:
    text = real_report.read_text()
    gains = text.split("## Gains")[1].split("## Summary")[0]
    lines = {cells[0]: cells[1:] for line in gains.splitlines() if line.startswith("| ")
             for cells in [[c.strip() for c in line.strip().strip("|").split("|")]]}
    assert lines["RGA-S"][0] == "+5.5 / +3.50 [+3.00, +3.00] ✓ holds (note 1)"
    assert lines["RGA-S w/o Rel."][:2] == ["+3.0 / -1.50 [-1.50, -1.50] ✗ contradicted",
                                           "+3.3 / -1.30 [-5.11, +2.51] ~ inconclusive"]
    assert lines["RGA-SC"][0] == "+7.3 / +5.50 ~ inconclusive (note 3)"
    assert ("1. RGA-S, cuhk03-labeled R1: paired seeds 0, 1; not used (run by one of the two "
            "rows only): seed 2") in gains


def test_markdown_summary_counts(real_report: Path) -> None:
    text = real_report.read_text()
    assert "**Claims checked:** 7" in text
    assert "2 hold, 1 contradicted, 4 inconclusive" in text
    assert "does not hold" not in text
    test = next(line for line in text.splitlines() if line.startswith("- **Test:**"))
    assert "95% confidence interval" in test and "2000 resamples" in test
    assert "`numpy.random.default_rng(0)`" in test
    assert "5 by the seed spread alone" in test
    assert "2 without an interval" in test
    assert ("**Rows not run** (5): RGA-S w/o Ori., RGA-C w/o Rel., RGA-C w/o Ori., RGA-S//C, "
            "RGA-CS") in text
    assert "`rga_s-seed3-msmt17v2`: dataset 'msmt17v2' has no published counterpart" in text
    assert "csa_pcb" not in text
    assert "- RGA-S (`rga_s`): cuhk03np-labeled: seeds 0, 1, 2 (3 records, recipe `" in text
    assert "- RGA-SC (`rga_sc`): cuhk03np-labeled: seed 0 (1 record, recipe `" in text


def test_pngs_exist_and_are_valid(real_report: Path) -> None:
    import matplotlib.image as mpimg

    text = real_report.read_text()
    for name in ("rga_table1_values.png", "rga_table1_gains.png"):
        path = real_report.parent / name
        assert path.read_bytes()[:8] == PNG_MAGIC
        height, width = mpimg.imread(path).shape[:2]
        assert height > 100 and width > 100
        assert f"]({name})" in text  # embedded with a relative link
    assert not list(real_report.parent.glob("*.tmp"))


def test_smoke_report_says_values_are_not_comparable(tmp_path: Path) -> None:
    path = render_report("rga_table1", synthetic_records(), tmp_path)
    text = path.read_text()
    assert "Smoke scale: absolute values are NOT comparable" in text
    assert "synthetic smoke (`synthetic`" in text
    assert " Δ" not in text.split("## Gains")[0].split("## Table")[1]  # no Δ columns
    rga_s = table_line(text, "RGA-S")
    assert rga_s[2:4] == ["79.3", "34.00 ± 1.41 (n=2)"]


# --------------------------------------------------------------------------- CLI


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = write_runs(tmp_path / "runs", real_records())
    out = tmp_path / "reports"
    code = cli_main(["report", "rga_table1", "--runs", str(runs), "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert (out / "rga_table1.md").is_file() and (out / "rga_table1_values.png").is_file()
    assert "report written to" in printed and "RGA-S" in printed and "not run" in printed


def test_cli_unknown_table_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = write_runs(tmp_path / "runs", [])
    code = cli_main(["report", "rga_table99", "--runs", str(runs), "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert code == 2
    assert "unknown paper table 'rga_table99'" in printed and "rga_table1" in printed
    assert not list(tmp_path.glob("*.md"))


def test_records_of_an_older_recipe_are_not_averaged_in() -> None:
    """Same config name, config edited in between: only the newest recipe's seeds count."""
    old = record("rga_s", 0, CUHK, day=1, R1=60.0, mAP=50.0)
    old["config"] = {"seed": 0, "optim": {"lr": 1e-4}}
    new = [record("rga_s", s, CUHK, day=2, R1=78.0 + s, mAP=73.0) for s in (0, 1)]
    for s, r in enumerate(new):
        r["config"] = {"seed": s, "optim": {"lr": 8e-4}}
        r["run_id"] += "-new"
    frame = build_comparison("rga_table1", [old, *new])
    rga_s = cell(frame, "RGA-S", "cuhk03-labeled", "R1")
    assert rga_s["n"] == 2 and rga_s["reproduced"] == pytest.approx(78.5)


def test_report_names_the_ap_definition_and_shows_both_when_recorded(tmp_path: Path) -> None:
    def with_ap(rec: dict[str, Any], standard: float, trapezoid: float) -> dict[str, Any]:
        rec["config"]["eval"] = {"ap_mode": "trapezoid"}
        rec["final"]["after_bn"].update(mAP_standard=standard, mAP_trapezoid=trapezoid)
        return rec

    records = [with_ap(record("rga_baseline", 0, CUHK, R1=74.0, mAP=68.0), 69.5, 68.0),
               with_ap(record("rga_baseline", 1, CUHK, R1=75.0, mAP=69.0), 70.5, 69.0),
               with_ap(record("rga_s", 0, CUHK, R1=77.0, mAP=72.0), 73.0, 72.0),
               record("rga_s", 1, CUHK, R1=78.0, mAP=73.0)]  # an older record: no second AP
    text = render_report("rga_table1", records, tmp_path).read_text()
    header = text.split("- **mAP's AP definition:** ")[1].split("\n")[0]
    assert header.startswith("`trapezoid`: trapezoid-rule AP")
    assert "as published: **trapezoid** (RGA's evaluator" in header
    assert "another definition" not in header  # the paper's, and so ours
    section = text.split("## mAP under both AP definitions")[1].split("\n## ")[0]
    lines = {cells[0]: cells for cells in
             ([c.strip() for c in line.strip().strip("|").split("|")]
              for line in section.splitlines() if line.startswith("|"))}
    assert lines["ResNet-50"] == ["ResNet-50", "70.00", "68.50", "-1.50", "2"]
    assert lines["RGA-S"] == ["RGA-S", "73.00", "72.00", "-1.00", "1"]
    assert "RGA-C" not in lines  # not run
    records[0]["config"]["eval"]["ap_mode"] = "standard"
    text = render_report("rga_table1", records, tmp_path).read_text()
    assert "**Some runs used another definition than the paper's:**" in text


def test_report_without_second_ap_has_no_such_section(real_report: Path) -> None:
    text = real_report.read_text()
    assert "## mAP under both AP definitions" not in text
    header = text.split("- **mAP's AP definition:** ")[1].split("\n")[0]
    assert header.startswith("not recorded (")
    assert "another definition" not in header  # unknown is not "another"


def test_parameter_counts_of_a_row_config_are_not_training_records_of_the_table(
        tmp_path: Path) -> None:
    count = {"kind": "measurement", "run_id": "rga_s-params751-abc", "config_name": "rga_s",
             "config_hash": "abc", "seed": 0, "config": {"name": "rga_s"},
             "dataset": {"name": "n/a", "classifier_classes": 751},
             "measurements": {"params": 28_273_976}}
    text = render_report("rga_table1", real_records() + [count], tmp_path).read_text()
    assert "rga_s-params751-abc" not in text


def test_multi_query_columns_take_only_multi_query_runs() -> None:
    single = record("sag_d4", 0, "market1501", R1=90.0, mAP=74.0)
    frame = build_comparison("sag_table3", [single], profile="paper")
    cells = frame[frame["row"] == "SAG"]
    assert list(cells["n"]) == [1, 1, 0, 0]  # single-query columns filled, multi-query not
    # The multi-query evaluation of that run (python -m reid_core evaluate ... --multi) fills
    # the multi-query columns; one of a run the report does not use is ignored.
    def evaluation(run: dict, r1: float, ap: float) -> dict:
        return {"kind": "evaluation", "run_id": run["run_id"], "config_name": run["config_name"],
                "seed": run["seed"], "dataset": {"name": "market1501"}, "attempt": None,
                "eval": {"query_mode": "multi_mean", "rerank": False},
                "final": {"after_bn": {"R1": r1, "mAP": ap}, "before_bn": {"R1": 0.0}}}
    other = record("sag_d4", 7, "msmt17v2", R1=1.0, mAP=1.0)
    records = [single, evaluation(single, 93.0, 80.0), evaluation(other, 50.0, 50.0)]
    frame = build_comparison("sag_table3", records, profile="paper")
    cells = frame[frame["row"] == "SAG"]
    assert list(cells["n"]) == [1, 1, 1, 1]
    assert list(cells["reproduced"]) == [90.0, 74.0, 93.0, 80.0]


def test_a_mixed_query_table_must_say_each_columns_query(tmp_path: Path) -> None:
    import yaml

    from reid_core.results.paper_tables import PAPER_TABLES_DIR, PaperTableError, load_table
    data = yaml.safe_load((PAPER_TABLES_DIR / "sag_table3.yaml").read_text())
    del data["columns"][2]["query"]
    (tmp_path / "sag_table3.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PaperTableError, match=r"columns\[2\]\.query"):
        load_table("sag_table3", tmp_path)


# --------------------------------------------------------------------------- claims between rows


def _stack_records() -> list[dict[str, Any]]:
    """Smoke runs of SAG Table 1's D4 and D1,2,3,4 rows, 3 seeds each: the stack scores 5, 6, 7
    points lower in R1 (paired differences -5, -6, -7: interval well below 0) and 1, -1, 0 in
    mAP (interval around 0)."""
    runs = []
    for seed, (r1, ap) in enumerate([(50.0, 40.0), (52.0, 41.0), (54.0, 42.0)]):
        runs.append(record("sag_d4", seed, "synthetic-small", R1=r1, mAP=ap))
        runs.append(record("sag_d1_2_3_4", seed, "synthetic-small", R1=r1 - 5 - seed,
                           mAP=ap + (1, -1, 0)[seed]))
    return runs


def test_claims_between_rows_are_judged_against_the_text_direction(tmp_path: Path) -> None:
    from reid_core.results.report import compare

    comp = compare("sag_table1", _stack_records())
    claims = comp.claims
    mine = claims[(claims["row"] == "Basel.+D1,2,3,4")
                  & (claims["against"] == "Basel.+D4 (h=5,w=2)")
                  & (claims["dataset"] == "market1501")].set_index("metric")
    assert mine.loc["R1", "reproduced_difference"] == pytest.approx(-6.0)
    assert mine.loc["R1", "verdict"] == "holds"  # t(2) interval of -5, -6, -7 is below 0
    assert mine.loc["R1", "published_difference"] == pytest.approx(82.13 - 90.17)
    assert bool(mine.loc["R1", "paper_agrees"])
    assert mine.loc["mAP", "verdict"] == "inconclusive"
    # Rows without records, and columns the smoke runs do not line up with: not run.
    other = claims[claims["row"] == "Basel.+D1,2"]
    assert set(other["verdict"]) == {"not run"}
    assert set(claims[claims["dataset"] == "dukemtmcreid"]["verdict"]) == {"not run"}
    # A published difference against the text's direction is marked, not used as the claim.
    shorter = claims[(claims["row"] == "Basel.+D1,2,3") & (claims["against"] == "Basel.+D1,2")
                     & (claims["dataset"] == "market1501") & (claims["metric"] == "R1")].iloc[0]
    assert shorter["published_difference"] == pytest.approx(85.1 - 84.09)
    assert not bool(shorter["paper_agrees"])

    path = render_report("sag_table1", _stack_records(), tmp_path)
    text = path.read_text()
    assert "## Claims between rows (from the text)" in text
    assert ("### stacking drops accuracy: a stack against the single module at its deepest "
            "depth") in text
    line = next(line for line in text.splitlines()
                if line.startswith("| Basel.+D1,2,3,4 | Basel.+D4 (h=5,w=2) |"))
    first = line.split(" | ")[2]
    assert first.startswith("-8.04 / -6.00 [") and first.endswith("✓ holds")
    assert "+1.01 ‡ / not run" in text
    # The records carry R1 and mAP only: two cells of one pair are checked.
    assert ("- **Claims between rows (from the text):** 3 claim(s), 2 cell(s) with records of "
            "both rows: 1 hold, 0 contradicted, 1 inconclusive. The paper's own numbers show "
            "the stated direction in 89 of 108 published cells.") in text


@pytest.mark.parametrize("edit, message", [
    (lambda c: c[0].update(direction="worse"), r"claims\[0\]\.direction: 'worse' is not one of"),
    (lambda c: c[0]["pairs"].append(["Basel.+D4 (h=5,w=2)", "Basel.+D9"]),
     r"claims\[0\]\.pairs\[3\]: 'Basel.\+D9' is not the name of a row"),
    (lambda c: c[0]["pairs"].append(["Basel.+D4 (h=5,w=2)"]),
     r"claims\[0\]\.pairs\[3\]: expected \[row, against\]"),
    (lambda c: c[0].pop("source"), r"claims\[0\]\.source: required key is missing"),
    (lambda c: c.clear(), r"claims: expected a non-empty list"),
])
def test_claims_between_rows_are_validated(tmp_path: Path, edit: Any, message: str) -> None:
    import yaml

    from reid_core.results.paper_tables import PAPER_TABLES_DIR, PaperTableError, load_table
    data = yaml.safe_load((PAPER_TABLES_DIR / "sag_table1.yaml").read_text())
    edit(data["claims"])
    (tmp_path / "sag_table1.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PaperTableError, match=message):
        load_table("sag_table1", tmp_path)


def test_a_claim_may_not_name_a_reference_row(tmp_path: Path) -> None:
    import yaml

    from reid_core.results.paper_tables import PAPER_TABLES_DIR, PaperTableError, load_table
    data = yaml.safe_load((PAPER_TABLES_DIR / "sag_table3.yaml").read_text())
    data["claims"] = [{"claim": "x", "source": "y", "direction": "higher",
                       "pairs": [["SAG", "CAN [24]"]]}]
    (tmp_path / "sag_table3.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(PaperTableError, match=r"'CAN \[24\]' is not a reproducible row"):
        load_table("sag_table3", tmp_path)
