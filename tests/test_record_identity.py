"""A record's recipe is its config identity (plus its data), never a hash of the raw config.

Defect reproduced: ``config_hash`` leaves options added later out at their defaults, but the
report hashed the raw ``config`` mapping. A committed RGA record (written before ``data.split``,
``eval.rerank``, ... existed) and a new seed of the same row written by today's code (whose
config spells every option, in config format 2) had one config identity but two "recipes": the
committed seed-0 record was marked superseded and dropped from the report.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from reid_core.config import config_from_dict
from reid_core.results.report import build_comparison, compare

RUNS = Path(__file__).resolve().parents[1] / "results" / "runs"
#: A committed RGA-S smoke record of the first recipe: its config lacks the options added since.
COMMITTED = "rga_s-seed0-665fcde7371c"
#: The same row re-run later on regenerated synthetic data (another data identity).
REGENERATED = "rga_s-seed0-fb77dc2696d9"


def committed(run_id: str) -> dict[str, Any]:
    return json.loads((RUNS / f"{run_id}.json").read_text())


def new_seed(record: dict[str, Any], seed: int) -> dict[str, Any]:
    """What today's code writes for another seed of ``record``'s row on the same data: the
    config validated and written out in full (``RunConfig.to_dict()``), its own hash."""
    cfg = config_from_dict({**record["config"], "seed": seed}, "test")
    out = copy.deepcopy(record)
    out.update(run_id=f"{record['config_name']}-seed{seed}-000000000000", seed=seed,
               config=cfg.to_dict(), config_hash=cfg.config_hash(),
               finished_at="2026-12-24T10:00:00+00:00")
    out["final"][out["primary_feature"]]["R1"] += 1.0
    return out


def rga_s_line(records: list[dict[str, Any]]) -> Any:
    frame = build_comparison("rga_table1", records)
    hit = frame[(frame["row"] == "RGA-S") & (frame["dataset"] == "cuhk03-labeled")
                & (frame["metric"] == "R1")]
    return hit.iloc[0]


def test_the_committed_record_lacks_options_its_new_seed_spells_out() -> None:
    """The precondition of the defect: same config identity, different raw config."""
    old = committed(COMMITTED)
    seed1 = new_seed(old, 1)
    assert "split" not in old["config"]["data"] and "split" in seed1["config"]["data"]
    revalidated = config_from_dict(old["config"], "test")
    assert revalidated.config_hash() == old["config_hash"]  # the identity survives ...
    assert revalidated.to_dict() != old["config"]  # ... while the raw mapping does not


def test_a_new_seed_of_a_committed_row_keeps_the_committed_record() -> None:
    old = committed(COMMITTED)
    line = rga_s_line([old, new_seed(old, 1)])
    assert line["n"] == 2
    assert line["reproduced"] == pytest.approx(old["final"]["before_bn"]["R1"] + 0.5)
    comp = compare("rga_table1", [old, new_seed(old, 1)])
    assert not [reason for _, reason in comp.selection.ignored if "superseded" in reason]


def test_records_on_regenerated_data_are_still_superseded() -> None:
    """The data identity stays part of the recipe: the older data's record is set aside."""
    old, regenerated = committed(COMMITTED), committed(REGENERATED)
    comp = compare("rga_table1", [old, regenerated])
    ignored = dict(comp.selection.ignored)
    assert ignored[COMMITTED].startswith("superseded")
    assert REGENERATED not in ignored
    assert rga_s_line([old, regenerated])["n"] == 1


def test_recipe_key_is_the_config_identity_without_the_seed() -> None:
    from reid_core.results.identity import config_identity, recipe_key

    old = committed(COMMITTED)
    assert config_identity(old["config"]) == old["config_hash"]  # a seed-0 record
    assert recipe_key(new_seed(old, 1)) == recipe_key(old) == recipe_key(new_seed(old, 7))
    edited = copy.deepcopy(old)
    edited["config"]["optim"]["lr"] *= 2
    assert recipe_key(edited) != recipe_key(old)


def test_every_committed_record_keeps_its_identity_when_read() -> None:
    """Read through the store (migrated), a committed record keeps its run id and config hash,
    and its config still hashes to that config hash."""
    from reid_core.results.store import load_records

    raw = {p.stem: json.loads(p.read_text()) for p in RUNS.glob("*.json")}
    for record in load_records(RUNS):
        original = raw[record["run_id"]]
        assert (record["run_id"], record["config_hash"]) == (original["run_id"],
                                                             original["config_hash"])
        assert config_from_dict(record["config"], record["run_id"]).config_hash() == \
            original["config_hash"], record["run_id"]
