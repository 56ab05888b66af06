"""Config format 1 -> 2: the objective as a list of terms, PCB's feature names, and an identity
(``config_hash``, hence every run id) that the migration keeps -- checked on every committed
record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reid_core.config import ConfigError, config_from_dict
from reid_core.config.migrate import LossConfigV1, legacy_loss_view
from reid_core.losses.cross_entropy import CrossEntropyOptions
from reid_core.losses.triplet import TripletOptions
from reid_core.results.identity import make_run_id

REPO = Path(__file__).resolve().parents[1]


def committed_records() -> list[Path]:
    paths = [p for p in sorted((REPO / "results").rglob("*.json"))
             if "config_hash" in (text := p.read_text()) and '"config"' in text]
    assert paths, "no committed records found"
    return paths


@pytest.mark.parametrize("path", committed_records(), ids=lambda p: p.name)
def test_every_committed_record_keeps_its_identity(path):
    rec = json.loads(path.read_text())
    cfg = config_from_dict(rec["config"], str(path))
    assert cfg.config_hash() == rec["config_hash"]
    # Written back in format 2 (what new records store), it is still the same config.
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.config_hash() == rec["config_hash"] and again == cfg
    if "run_identity" in rec:  # a training run: its id is recomputed from the identity
        assert make_run_id(cfg.name, cfg.seed, cfg.config_hash(),
                           rec["run_identity"]) == rec["run_id"]


def test_format1_loss_becomes_terms_in_the_old_order():
    cfg = config_from_dict({"name": "x", "loss": {"ce_weight": 0.5, "label_smoothing": 0.2,
                                                  "triplet_weight": 0, "triplet_margin": None}})
    assert [(t.name, t.weight, t.options) for t in cfg.loss.terms] == [
        ("ce", 0.5, {"label_smoothing": 0.2}), ("triplet", 0.0, {"margin": None})]


def test_pcb_heads_migrate_to_part_ce_and_their_feature_names():
    raw = {"name": "x", "model": {"name": "pcb", "attention": {
        "name": "csa", "stages": ["layer1"], "deep_supervision": True}},
        "loss": {"label_smoothing": 0.0, "triplet_weight": 0.0, "deep_supervision_weight": 0.5},
        "eval": {"features": ["before_bn", "after_bn"]}}
    cfg = config_from_dict(raw)
    assert [t.name for t in cfg.loss.terms] == ["part_ce", "triplet", "deep_supervision"]
    assert cfg.loss.term("deep_supervision").weight == 0.5
    assert cfg.loss.term("deep_supervision").options == {"label_smoothing": 0.0}
    assert cfg.eval.features == ["parts_pooled", "parts_reduced"]
    # Unset eval.features: the PCB head's own names, in the order of the old default.
    del raw["eval"]
    assert config_from_dict(raw).eval.features == ["parts_reduced", "parts_pooled"]


def test_a_format2_config_equal_to_a_format1_one_has_its_identity():
    old = config_from_dict({"name": "x", "loss": {"triplet_margin": 0.5}})
    new = config_from_dict({"name": "x", "loss": {"terms": [
        {"name": "ce", "options": {"label_smoothing": 0.1}},
        {"name": "triplet", "options": {"margin": 0.5}}]}})
    assert new.config_hash() == old.config_hash()
    # Options left at their defaults are the same config too.
    bare = config_from_dict({"name": "x", "loss": {"terms": [{"name": "ce"}, {
        "name": "triplet", "options": {"margin": 0.5}}]}})
    assert bare.config_hash() == old.config_hash()


def test_objectives_format1_cannot_express_get_their_own_identity():
    base = config_from_dict({"name": "x"})
    swapped = config_from_dict({"name": "x", "loss": {"terms": [
        {"name": "triplet"}, {"name": "ce"}]}})  # another float summation order
    only_ce = config_from_dict({"name": "x", "loss": {"terms": [{"name": "ce"}]}})
    assert legacy_loss_view(swapped) is None and legacy_loss_view(only_ce) is None
    assert len({base.config_hash(), swapped.config_hash(), only_ce.config_hash()}) == 3


def test_term_defaults_are_format1_defaults():
    v1 = LossConfigV1()
    assert CrossEntropyOptions().label_smoothing == v1.label_smoothing
    assert TripletOptions().margin == v1.triplet_margin


@pytest.mark.parametrize("loss, pattern", [
    ({"terms": [{"name": "ce"}], "ce_weight": 1}, r"loss: 'terms' \(format 2\) cannot be "
                                                  r"combined with the format-1 keys 'ce_weight'"),
    ({"terms": [{"name": "ce", "weight": -1}]}, r"loss\.terms\[0\]\.weight: must be >= 0"),
    ({"terms": [{"name": "ce", "wieght": 1}]}, r"loss\.terms\[0\]: unknown key\(s\) 'wieght'"),
    ({"terms": []}, r"loss\.terms must list at least one term"),
    ({"ce_wieght": 1}, r"loss: unknown key\(s\) 'ce_wieght'; valid keys: ce_weight"),
])
def test_bad_loss_sections_name_the_key(loss, pattern):
    with pytest.raises(ConfigError, match=rf"^src: {pattern}"):
        config_from_dict({"name": "x", "loss": loss}, "src")


def test_an_inert_format1_weight_keeps_its_identity():
    # Format 1 hashed deep_supervision_weight != 1 even when the model had no deep supervision
    # (where it had no effect): the migration keeps it, for the identity only.
    import hashlib
    import json as _json
    from reid_core.config.schema import hash_view

    raw = {"name": "x", "loss": {"deep_supervision_weight": 0.5}}
    cfg = config_from_dict(raw)
    assert [t.name for t in cfg.loss.terms] == ["ce", "triplet"] and cfg.loss.inert
    view = hash_view(config_from_dict({"name": "x"}))
    view["loss"] = {"ce_weight": 1.0, "label_smoothing": 0.1, "triplet_weight": 1.0,
                    "triplet_margin": 0.3, "deep_supervision_weight": 0.5}
    format1 = hashlib.sha256(_json.dumps(view, sort_keys=True, separators=(",", ":"))
                             .encode()).hexdigest()[:12]
    assert cfg.config_hash() == format1 != config_from_dict({"name": "x"}).config_hash()
    assert config_from_dict(cfg.to_dict()).config_hash() == format1


def test_default_valued_triplet_feature_is_the_same_config():
    base = config_from_dict({"name": "x"})
    same = config_from_dict({"name": "x", "loss": {"terms": [
        {"name": "ce"}, {"name": "triplet", "options": {"feature": None}}]}})
    assert same.config_hash() == base.config_hash()


def test_format2_pcb_configs_are_not_renamed():
    raw = {"name": "x", "model": {"name": "pcb"}, "eval": {"features": ["before_bn"]},
           "loss": {"terms": [{"name": "part_ce"}]}}
    assert config_from_dict(raw).eval.features == ["before_bn"]  # the model build rejects it


def test_format1_histories_name_terms_and_features_as_format2():
    from reid_core.config.migrate import migrate_history

    old = [{"epoch": 1, "loss": 3.0, "ce": 2.0, "aux": 1.0,
            "eval": {"before_bn": {"R1": 1.0}, "after_bn": {"R1": 2.0}}}]
    assert migrate_history(old, {"name": "pcb_rpp"}) == [
        {"epoch": 1, "loss": 3.0, "part_ce": 2.0, "deep_supervision": 1.0,
         "eval": {"parts_pooled": {"R1": 1.0}, "parts_reduced": {"R1": 2.0}}}]
    assert migrate_history(old, {"name": "bnneck"})[0]["ce"] == 2.0


def test_committed_pcb_records_read_with_format2_names():
    from reid_core.results.store import read_record

    def is_pcb_run(path: Path) -> bool:  # a PCB / PCB-RPP training run (SAG's augment is "pcb")
        data = json.loads(path.read_text())
        return "history" in data and (data.get("config") or {}).get("model", {}).get(
            "name") in ("pcb", "pcb_rpp")

    paths = [p for p in committed_records()
             if (REPO / "results" / "runs") in p.parents and is_pcb_run(p)]
    assert paths
    for path in paths:
        rec = read_record(path)
        for entry in rec["history"]:
            assert "aux" not in entry and "ce" not in entry and "part_ce" in entry
        assert set(rec["final"]) <= {"parts_pooled", "parts_reduced"}
