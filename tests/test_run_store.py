"""Typed records and the run store: one record model, one place for paths, one reader.

* Every committed record (results/runs, results/evaluations) reads into its typed record and
  writes back byte-for-byte the same mapping (same keys, same order, unknown keys kept).
* Format-1 records are migrated on read: the PCB heads' features get their own names
  (``before_bn`` -> ``parts_pooled``, ``after_bn`` -> ``parts_reduced``) in ``final``,
  ``history`` and ``primary_feature``; ``run_id`` and ``config_hash`` never change.
* The store knows where records, checkpoints and evaluations go.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reid_core.results.record_types import (
    RECORD_FORMAT, EvaluationRecord, MeasurementRecord, RecordError, RunRecord,
    record_from_dict)
from reid_core.results.store import RunStore, load_record, load_records, read_record

RESULTS = Path(__file__).resolve().parents[1] / "results"
COMMITTED = sorted([*(RESULTS / "runs").glob("*.json"), *(RESULTS / "evaluations").glob("*.json")])


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.stem[:40])
def test_committed_records_round_trip_exactly(path: Path) -> None:
    raw = json.loads(path.read_text())
    record = record_from_dict(raw)
    expected = {"run": RunRecord, "measurement": MeasurementRecord,
                "evaluation": EvaluationRecord}[raw.get("kind", "run")]
    assert type(record) is expected
    out = record.to_dict()
    assert out == raw and list(out) == list(raw)


def test_records_share_identity_and_provenance() -> None:
    shared = {"run_id", "config_name", "config_hash", "seed", "config", "dataset", "device",
              "versions", "finished_at", "wall_time_s", "peak_memory", "format_version"}
    for cls in (RunRecord, MeasurementRecord, EvaluationRecord):
        assert shared <= set(cls.__dataclass_fields__), cls


def test_a_new_record_writes_null_where_null_means_something() -> None:
    rec = RunRecord(run_id="r", config_name="c", dataset={"name": "market1501"})
    out = rec.to_dict()
    assert out["format_version"] == RECORD_FORMAT and "kind" not in out
    assert out["resumed_from_epoch"] is None and out["pretrained"] is None
    assert "wall_time_s" not in out  # None that means "not measured": left out
    meas = MeasurementRecord(run_id="m", config_name="c", dataset={"name": "n/a"})
    assert list(meas.to_dict())[:3] == ["format_version", "kind", "run_id"]
    assert meas.to_dict()["kind"] == "measurement"


def test_not_a_record_is_refused_naming_why() -> None:
    with pytest.raises(RecordError, match="missing run_id, dataset.name"):
        record_from_dict({"config_name": "c"})
    with pytest.raises(RecordError, match="unknown record kind 'plot'"):
        record_from_dict({"kind": "plot"})
    with pytest.raises(RecordError, match="a measurement record, not a run record"):
        RunRecord.from_dict({"kind": "measurement", "run_id": "r", "config_name": "c",
                             "dataset": {"name": "n/a"}})


# --------------------------------------------------------------------------- migration


def pcb_record_v1() -> dict[str, Any]:
    """A committed CSA (PCB head) record, format 1: features named as BNNeck's."""
    raw = json.loads((RESULTS / "runs" / "csa_pcb-seed0-3d1f90d9f585.json").read_text())
    assert raw["format_version"] == 1 and raw["primary_feature"] == "before_bn"
    return raw


def test_a_format1_pcb_record_reads_with_the_heads_feature_names(tmp_path: Path) -> None:
    raw = pcb_record_v1()
    raw["history"][0]["eval"] = {"before_bn": {"R1": 1.0}, "after_bn": {"R1": 2.0}}
    path = tmp_path / "runs" / f"{raw['run_id']}.json"
    path.parent.mkdir()
    path.write_text(json.dumps(raw))
    record = read_record(path)
    assert record["format_version"] == RECORD_FORMAT
    assert record["primary_feature"] == "parts_pooled"
    assert list(record["final"]) == ["parts_pooled", "parts_reduced"]
    assert record["final"]["parts_pooled"] == raw["final"]["before_bn"]
    assert list(record["history"][0]["eval"]) == ["parts_pooled", "parts_reduced"]
    assert record["config"]["eval"]["features"] == ["parts_pooled", "parts_reduced"]
    assert "terms" in record["config"]["loss"]  # config format 2
    assert (record["run_id"], record["config_hash"]) == (raw["run_id"], raw["config_hash"])
    assert json.loads(path.read_text()) == raw  # the file itself is never rewritten


def test_a_format1_bnneck_record_keeps_its_feature_names(tmp_path: Path) -> None:
    raw = json.loads((RESULTS / "runs" / "rga_s-seed0-665fcde7371c.json").read_text())
    path = tmp_path / "r.json"
    path.write_text(json.dumps(raw))
    record = read_record(path)
    assert record["primary_feature"] == raw["primary_feature"]
    assert list(record["final"]) == list(raw["final"])


def test_migration_keeps_every_committed_metric() -> None:
    """The report of the migrated records reads the same numbers as the raw ones."""
    from reid_core.results.report.cell_values import metric_value

    raw = {p.stem: json.loads(p.read_text()) for p in (RESULTS / "runs").glob("*.json")}
    for record in load_records(RESULTS / "runs"):
        assert metric_value(record, "R1") == metric_value(raw[record["run_id"]], "R1")


# --------------------------------------------------------------------------- the store


def test_store_paths(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run = store.run("rga_s-seed0-abc")
    assert run.record == tmp_path / "runs" / "rga_s-seed0-abc.json" == store.record_path(run.run_id)
    assert run.checkpoint == tmp_path / "checkpoints" / "rga_s-seed0-abc" / "last.pt"
    assert run.final_checkpoint == tmp_path / "checkpoints" / "rga_s-seed0-abc" / "final.pt"
    assert store.evaluation_path("r", "partial-reid", ["multi_mean", "rerank"]) == (
        tmp_path / "evaluations" / "r--on--partial-reid--multi_mean--rerank.json")
    assert RunStore.data_variant(tmp_path / "e.json", "ab12") == tmp_path / "e--data-ab12.json"
    assert RunStore.holding(run.record) == store
    assert store.reports_dir == tmp_path / "reports"


def test_store_writes_and_finds_records(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    rec = RunRecord(run_id="r1", config_name="c", config={"name": "c"},
                    dataset={"name": "market1501"}, history=[], final={})
    path = store.write_record(rec)
    assert path == store.record_path("r1")
    assert store.find_record("r1")["run_id"] == "r1"
    assert isinstance(load_record(path), RunRecord)
    assert store.find_record("nothing") is None
    path.write_text(json.dumps({"run_id": "other", "config": {}, "final": {}, "history": []}))
    with pytest.raises(RecordError, match="holds run 'other'"):
        store.find_record("r1")
    path.write_text("{not json")
    with pytest.raises(RecordError, match="is not a valid record"):
        store.find_record("r1")
