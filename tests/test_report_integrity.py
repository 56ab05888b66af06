"""Reports say which builds their records come from, and never overwrite a report with nothing.

* Version mix: the records a report uses (after its selection) are checked for more than one
  torch / torchvision / numpy version; the header warns and lists rows / seeds per version,
  otherwise it states the one environment. Same helper for the metrics and the cost report.
* Empty selection: the writer raises EmptyReportError (a ValueError) and leaves the existing
  Markdown and plots byte-identical; the CLI prints one line and exits 2.
* Plots are written atomically: a failing savefig leaves the previous PNG in place.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reid_core.cli import main as cli_main
from reid_core.results.report import (
    EmptyReportError,
    Environment,
    compare,
    render_cost_report,
    render_report,
)
from reid_core.results.store import load_records

CUHK = "cuhk03np-labeled"
NEW = {"torch": "2.15.0+cu132", "torchvision": "0.29.2+cu132", "numpy": "2.4.6",
       "python": "3.11.7", "platform": "Linux-6.18-x86_64", "git_commit": "0123456789ab"}
OLD_TORCH = {**NEW, "torch": "2.14.1+cu130"}


def record(config: str, seed: int, dataset: str = CUHK, versions: dict[str, str] | None = None,
           *, r1: float = 75.0, day: int = 1) -> dict[str, Any]:
    """A minimal metrics run record with its software versions."""
    return {
        "run_id": f"{config}-seed{seed}-{dataset}",
        "config_name": config, "seed": seed, "dataset": {"name": dataset},
        "config": {"name": config, "seed": seed},
        "versions": dict(NEW if versions is None else versions),
        "finished_at": f"2025-01-0{day}T10:00:00+00:00",
        "final": {"after_bn": {"R1": r1, "mAP": r1 - 5}}, "primary_feature": "after_bn",
    }


def uniform_records() -> list[dict[str, Any]]:
    return [record("rga_baseline", 0, r1=74.0), record("rga_baseline", 1, r1=75.0),
            record("rga_s", 0, r1=78.0), record("rga_s", 1, r1=79.0)]


def mixed_records() -> list[dict[str, Any]]:
    """RGA-S seed 2 was trained under an older torch build than everything else."""
    return uniform_records() + [record("rga_s", 2, versions=OLD_TORCH, r1=77.0)]


def cost_record(config: str, versions: dict[str, str], stamp: str) -> dict[str, Any]:
    """A minimal ``kind: measurement`` cost record (as measure_cost_row writes it)."""
    return {
        "kind": "measurement", "run_id": f"{config}-cost-{stamp}", "config_name": config,
        "seed": 0, "dataset": {"name": "n/a"}, "versions": dict(versions),
        "measurements": {"memory_per_image_mb": {"train": 100.0, "inference": 10.0},
                         "fps": {"best": 22.0, "median": 20.0, "times_s": [1.0]},
                         "memory_method": "m", "batch_size": 8, "input_size": [384, 128],
                         "device": "cpu", "threads": 2, "repeats": 5},
    }


def header(text: str) -> str:
    """The report text before its first table."""
    return text.split("## Table")[0] if "## Table" in text else text.split("| Row |")[0]


def snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file in ``directory``."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.iterdir()) if p.is_file()}


def write_runs(directory: Path, records: list[dict[str, Any]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for rec in records:
        (directory / f"{rec['run_id']}.json").write_text(json.dumps(rec))
    return directory


# --------------------------------------------------------------------------- version mix


def test_header_states_the_one_environment(tmp_path: Path) -> None:
    text = header(render_report("rga_table1", uniform_records(), tmp_path).read_text())
    assert ("- **Environment (all 4 records):** torch `2.15.0+cu132` · torchvision "
            "`0.29.2+cu132` · numpy `2.4.6` · python `3.11.7` · platform "
            "`Linux-6.18-x86_64`") in text
    assert "⚠" not in text and "mix" not in text


def test_header_flags_a_torch_mix_with_rows_and_seeds_per_version(tmp_path: Path) -> None:
    text = render_report("rga_table1", mixed_records(), tmp_path).read_text()
    top = header(text)
    assert ("> **⚠ The records mix torch versions** — numbers from different builds are not "
            "bit-comparable") in top
    assert "> - `2.15.0+cu132`: 4 records — ResNet-50 (seeds 0, 1), RGA-S (seeds 0, 1)" in top
    assert "> - `2.14.1+cu130`: 1 record — RGA-S (seed 2)" in top
    # prominent: above the facts list, right after the caption
    assert top.index("⚠ The records mix torch") < top.index("- **Profile:**")
    assert ("- **Environment (mixed, see the warning above):** torch `2.15.0+cu132` "
            "(4 records), `2.14.1+cu130` (1 record) · torchvision `0.29.2+cu132`") in top
    assert "mix torchvision" not in text and "mix numpy" not in text


def test_environment_sentence_for_the_cli() -> None:
    comp = compare("rga_table1", mixed_records())
    assert comp.environment.warnings() == [
        "⚠ records mix torch versions: 2.15.0+cu132 (4 records: ResNet-50 (seeds 0, 1), "
        "RGA-S (seeds 0, 1)); 2.14.1+cu130 (1 record: RGA-S (seed 2)) — numbers from "
        "different builds are not bit-comparable"]
    assert compare("rga_table1", uniform_records()).environment.warnings() == []


def test_only_the_records_the_report_uses_are_checked() -> None:
    """Superseded recipes, other profiles and unusable datasets cannot raise a mix warning."""
    superseded = record("rga_s", 5, versions=OLD_TORCH, day=1)
    superseded["config"] = {"name": "rga_s", "seed": 5, "optim": {"lr": 1.0}}
    newer = [copy.deepcopy(r) for r in uniform_records()]
    for r in newer:
        r["finished_at"] = "2025-01-02T10:00:00+00:00"
    ignored = [superseded,
               record("rga_s", 0, "synthetic", versions=OLD_TORCH),  # smoke, paper report
               record("rga_s", 3, "msmt17v2", versions=OLD_TORCH)]   # no published counterpart
    comp = compare("rga_table1", newer + ignored)
    assert len(comp.selection.records) == 4
    assert not comp.environment.mixed
    # ... and the same old-build records do count in the report that uses them
    smoke = compare("rga_table1", newer + ignored, profile="smoke")
    assert not smoke.environment.mixed and "2.14.1" in smoke.environment.bullet()


def test_missing_versions_and_several_datasets(tmp_path: Path) -> None:
    """A record without versions cannot be shown to share the build: it is a version of its
    own. Packages that vary are reported together, one line per combination; with several
    datasets, rows name their dataset."""
    bare = record("rga_sc", 0, "market1501")
    del bare["versions"]
    numpy_old = record("rga_sc", 0, versions={**NEW, "numpy": "1.26.4"})
    text = header(render_report("rga_table1", uniform_records() + [bare, numpy_old],
                                tmp_path).read_text())
    assert text.count("⚠") == 1
    assert "**⚠ The records mix torch, torchvision and numpy versions**" in text
    assert ("> - torch `2.15.0+cu132`, torchvision `0.29.2+cu132`, numpy `2.4.6`: 4 records — "
            "ResNet-50 on cuhk03np-labeled (seeds 0, 1), RGA-S on cuhk03np-labeled "
            "(seeds 0, 1)") in text
    assert ("> - torch `2.15.0+cu132`, torchvision `0.29.2+cu132`, numpy `1.26.4`: 1 record — "
            "RGA-SC on cuhk03np-labeled (seed 0)") in text
    assert ("> - torch not recorded, torchvision not recorded, numpy not recorded: 1 record — "
            "RGA-SC on market1501 (seed 0)") in text
    assert "numpy `2.4.6` (4 records), `1.26.4` (1 record), not recorded (1 record)" in text


def test_torch_and_torchvision_changing_together_make_one_warning() -> None:
    old_build = {**OLD_TORCH, "torchvision": "0.29.1+cu130"}
    records = uniform_records() + [record("rga_s", s, versions=old_build) for s in (2, 10)]
    assert compare("rga_table1", records).environment.warnings() == [
        "⚠ records mix torch and torchvision versions: torch 2.15.0+cu132, torchvision "
        "0.29.2+cu132 (4 records: ResNet-50 (seeds 0, 1), RGA-S (seeds 0, 1)); torch "
        "2.14.1+cu130, torchvision 0.29.1+cu130 (2 records: RGA-S (seeds 2, 10)) — numbers "
        "from different builds are not bit-comparable"]


def test_environment_helper_is_generic() -> None:
    """The shared helper works on any records with any labelling (the cost report's)."""
    records = [cost_record("a", NEW, "1"), cost_record("a", NEW, "2"),
               cost_record("b", OLD_TORCH, "3")]
    env = Environment.of(records, lambda r: (str(r["config_name"]).upper(), None))
    assert env.warnings() == [
        "⚠ records mix torch versions: 2.15.0+cu132 (2 records: A ×2); 2.14.1+cu130 "
        "(1 record: B) — numbers from different builds are not bit-comparable"]
    assert Environment.of([], lambda r: ("", None)).bullet() == "- **Environment:** —"


def test_cli_sentence_shortens_long_row_lists_the_markdown_does_not() -> None:
    records = [cost_record(f"row{i}", NEW, str(i)) for i in range(6)]
    records.append(cost_record("old", OLD_TORCH, "x"))
    env = Environment.of(records, lambda r: (str(r["config_name"]), None))
    assert "(6 records: row0, row1, row2, row3, … (+2 more rows))" in env.warnings()[0]
    assert "> - `2.15.0+cu132`: 6 records — row0, row1, row2, row3, row4, row5" in (
        env.warning_markdown())


def test_cost_report_states_or_flags_the_environment(tmp_path: Path) -> None:
    same = [cost_record("csa_pcb", NEW, "1"), cost_record("csa_pcb_sa", NEW, "2")]
    text = header(render_cost_report("csa_table6", same, tmp_path).read_text())
    assert "- **Environment (all 2 records):** torch `2.15.0+cu132` · torchvision" in text
    assert "⚠" not in text
    mixed = same + [cost_record("csa_pcb", OLD_TORCH, "3"),
                    cost_record("rga_s", OLD_TORCH, "4")]  # not a row of this table: unused
    text = header(render_cost_report("csa_table6", mixed, tmp_path).read_text())
    assert "**⚠ The records mix torch versions**" in text
    assert "> - `2.15.0+cu132`: 2 records — PCB, PCB + SA (Group Num = 1)" in text
    assert "> - `2.14.1+cu130`: 1 record — PCB" in text


def test_cli_summary_mentions_the_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = write_runs(tmp_path / "runs", mixed_records())
    code = cli_main(["report", "rga_table1", "--runs", str(runs), "--out", str(tmp_path / "r")])
    printed = capsys.readouterr().out
    assert code == 0
    assert "⚠ records mix torch versions: 2.15.0+cu132 (4 records" in printed


def test_cli_writes_a_cost_table_with_the_cost_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report csa_table6`` must not replace the cost report with an all-"not run" one."""
    runs = write_runs(tmp_path / "runs", [cost_record("csa_pcb", NEW, "1"),
                                          cost_record("csa_pcb_sa", OLD_TORCH, "2")])
    out = tmp_path / "reports"
    assert cli_main(["report", "csa_table6", "--runs", str(runs), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| Row | Published MB/img |" in (out / "csa_table6.md").read_text()
    assert {p.name for p in out.iterdir()} == {"csa_table6.md", "csa_table6_ratios.png"}
    assert ("⚠ records mix torch versions: 2.14.1+cu130 (1 record: PCB + SA (Group Num = 1)); "
            "2.15.0+cu132 (1 record: PCB)") in printed  # a tie: in version-text order
    assert f"report written to {out / 'csa_table6.md'}" in printed  # one line, copy-pasteable
    before = snapshot(out)
    code = cli_main(["report", "csa_table6", "--runs", str(runs), "--out", str(out),
                     "--dataset", "market1501"])
    assert code == 2 and "do not apply" in capsys.readouterr().out
    assert snapshot(out) == before


# --------------------------------------------------------------------------- empty reports


@pytest.fixture()
def committed(tmp_path: Path) -> Path:
    """A reports directory holding a real (smoke) rga_table1 report and its two plots."""
    synthetic = [record("rga_baseline", s, "synthetic", r1=30.0 + s) for s in (0, 1)]
    synthetic += [record("rga_s", s, "synthetic", r1=34.0 + s) for s in (0, 1)]
    out = tmp_path / "reports"
    render_report("rga_table1", synthetic, out)
    assert {p.name for p in out.iterdir()} == {
        "rga_table1.md", "rga_table1_values.png", "rga_table1_gains.png"}
    return out


def synthetic_runs() -> list[dict[str, Any]]:
    return [record("rga_baseline", s, "synthetic") for s in (0, 1)] + [
        record("rga_s", 0, "synthetic")]


def test_empty_dataset_filter_refuses_and_leaves_files_untouched(
    committed: Path, tmp_path: Path
) -> None:
    before = snapshot(committed)
    with pytest.raises(EmptyReportError) as caught:
        render_report("rga_table1", synthetic_runs(), committed, dataset="market1501")
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert "rga_table1" in message and "dataset 'market1501'" in message
    assert "synthetic (3 records, smoke profile)" in message
    assert f"the existing report at {committed / 'rga_table1.md'} was left untouched" in message
    assert "\n" not in message
    assert snapshot(committed) == before


def test_empty_profile_filter_names_the_profiles_that_exist(
    committed: Path, tmp_path: Path
) -> None:
    records = synthetic_runs() + [record("rga_s", 3, "msmt17v2")]
    before = snapshot(committed)
    with pytest.raises(EmptyReportError, match="matches profile 'paper'") as caught:
        render_report("rga_table1", records, committed, profile="paper")
    assert "msmt17v2 (1 record, unusable: dataset 'msmt17v2' has no published" in str(
        caught.value)
    assert snapshot(committed) == before


def test_no_record_of_the_table_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "fresh"
    with pytest.raises(EmptyReportError) as caught:
        render_report("rga_table1", [record("csa_pcb", 0, "market1501")], out)
    assert "none of the 1 record given is of its configs (rga_baseline, rga_s" in str(caught.value)
    assert "nothing was written" in str(caught.value)
    assert not out.exists() or not list(out.iterdir())
    with pytest.raises(EmptyReportError, match="no run record was given at all"):
        render_report("rga_table1", [], out)


def test_empty_cost_report_refuses_and_leaves_files_untouched(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    render_cost_report("csa_table6", [cost_record("csa_pcb", NEW, "1")], out)
    before = snapshot(out)
    assert set(before) == {"csa_table6.md", "csa_table6_ratios.png"}
    with pytest.raises(EmptyReportError, match="no cost measurement .* csa_table6") as caught:
        render_cost_report("csa_table6", [record("csa_pcb", 0, "market1501")], out)
    assert "left untouched" in str(caught.value)
    assert snapshot(out) == before


def test_cli_refuses_with_one_line_and_exit_2(
    committed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = write_runs(tmp_path / "runs", synthetic_runs())
    before = snapshot(committed)
    code = cli_main(["report", "rga_table1", "--runs", str(runs), "--out", str(committed),
                     "--dataset", "market1501"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, lines  # not wrapped at the terminal width
    assert lines[0].startswith("error: EmptyReportError: no run record of rga_table1 matches "
                               "dataset 'market1501'")
    assert lines[0].endswith("was left untouched")
    assert snapshot(committed) == before
    assert load_records(runs)  # the records themselves are untouched too


def test_reproduce_never_overwrites_the_report_with_nothing(
    committed: Path, tmp_path: Path
) -> None:
    """reproduce.main regenerates the report at the end; with no usable record (here: a
    paper-profile report of synthetic runs) the existing report must survive."""
    from reid_core.app.reproduce import main as reproduce_main

    out = committed.parent
    before = snapshot(committed)

    def fake_run(cfg: Any, args: Any, console: Any) -> dict[str, Any]:
        return record(cfg.name, cfg.seed, "synthetic")

    assert reproduce_main("rga_table1", ["--out", str(out), "--profile", "paper", "--rows",
                                         "rga_baseline"], run_row=fake_run) == 2
    assert snapshot(committed) == before


def test_reproduce_reports_the_refusal_and_returns_2(
    committed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reid_core.app.reproduce import main as reproduce_main

    def fake_run(cfg: Any, args: Any, console: Any) -> dict[str, Any]:
        return record(cfg.name, cfg.seed, "synthetic")

    code = reproduce_main("rga_table1", ["--out", str(committed.parent), "--profile", "paper",
                                         "--rows", "rga_baseline"], run_row=fake_run)
    assert code == 2
    assert "EmptyReportError" in capsys.readouterr().out


# --------------------------------------------------------------------------- atomic plots


def failing_savefig(self: Any, fname: Any, *args: Any, **kwargs: Any) -> None:
    """Write half a file, then fail (a full disk, a killed process)."""
    fname.write(b"\x89PNG half")
    raise RuntimeError("disk full")


def test_metrics_plots_are_written_atomically(
    committed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    before = snapshot(committed)
    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        render_report("rga_table1", synthetic_runs(), committed)
    assert snapshot(committed) == before  # old plots intact, Markdown not rewritten
    assert not list(committed.glob(".*.tmp"))


def test_cost_plot_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    out = tmp_path / "reports"
    render_cost_report("csa_table6", [cost_record("csa_pcb", NEW, "1")], out)
    before = snapshot(out)
    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        render_cost_report("csa_table6", [cost_record("csa_pcb", OLD_TORCH, "2")], out)
    assert snapshot(out) == before
    assert not list(out.glob(".*.tmp"))


def test_header_flags_records_on_different_versions_of_the_data() -> None:
    from reid_core.results.report.environment import data_mix_warning as _data_mix_warning

    def rec(name: str, seed: int, fingerprint: str | None) -> dict[str, Any]:
        ds: dict[str, Any] = {"name": "synthetic-small"}
        if fingerprint:
            ds["identity"] = {"fingerprint": fingerprint}
        return {"config_name": name, "seed": seed, "dataset": ds}

    same = [rec("a", 0, "synthetic-spec:1"), rec("b", 0, "synthetic-spec:1")]
    assert _data_mix_warning(same) == []
    mixed = [*same, rec("c", 0, "synthetic-spec:2"), rec("d", 1, None)]
    text = "".join(_data_mix_warning(mixed))
    assert "3 different versions" in text and "c (seed 0)" in text and "not recorded" in text
