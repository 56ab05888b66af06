"""Config validation: unknown keys, wrong types and choices fail with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reid_core.config import ConfigError, RunConfig, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def test_shipped_configs_validate():
    paths = sorted((REPO / "configs").glob("*.yaml"))
    assert paths, "no configs shipped"
    for p in paths:
        cfg = load_config(p)
        assert cfg.name == yaml.safe_load(p.read_text()).get("name", p.stem)


def test_unknown_top_level_key_lists_valid_keys(tmp_path):
    p = write(tmp_path, {"name": "x", "sede": 1})
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "'sede'" in msg and "valid keys: name, seed, data" in msg


def test_unknown_nested_key_names_section(tmp_path):
    p = write(tmp_path, {"name": "x", "optim": {"learning_rate": 0.1}})
    with pytest.raises(ConfigError, match=r"optim: unknown key\(s\) 'learning_rate'; valid keys: name, lr"):
        load_config(p)


@pytest.mark.parametrize(
    "section, key, value, pattern",
    [
        ("optim", "lr", "fast", r"optim\.lr: expected a number"),
        ("optim", "name", "rmsprop", r"optim\.name: 'rmsprop' is not one of 'adam', 'sgd'"),
        ("data", "height", 12.5, r"data\.height: expected an integer"),
        ("eval", "features", ["after_bn", "pooled"], r"eval\.features\[1\]: 'pooled' is not one of"),
        ("eval", "flip", "yes", r"eval\.flip: expected bool"),
    ],
)
def test_wrong_values(tmp_path, section, key, value, pattern):
    p = write(tmp_path, {"name": "x", section: {key: value}})
    with pytest.raises(ConfigError, match=pattern):
        load_config(p)


def test_semantic_checks():
    with pytest.raises(ConfigError, match="multiple of data.num_instances"):
        config_from_dict({"name": "x", "data": {"batch_size": 30, "num_instances": 4}})
    with pytest.raises(ConfigError, match="milestones must be increasing"):
        config_from_dict({"name": "x", "optim": {"milestones": [70, 40]}})


def test_hash_changes_with_any_value_and_overrides(tmp_path):
    base = RunConfig(name="x")
    p = write(tmp_path, {"name": "x"})
    assert load_config(p).config_hash() == base.config_hash()
    changed = load_config(p, {"optim.lr": 1e-3})
    assert changed.optim.lr == 1e-3 and changed.config_hash() != base.config_hash()
    assert load_config(p, {"seed": 3}).seed == 3


def test_int_accepted_for_float_and_null_for_optional():
    cfg = config_from_dict({"name": "x", "optim": {"lr": 1}, "loss": {"triplet_margin": None}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.loss.term("triplet").options["margin"] is None


def test_committed_records_keep_their_config_hash():
    """Options added later (``ADDED`` metadata) must not change the hash of earlier configs:
    every committed run record re-validates to the hash it was recorded under."""
    import json

    from reid_core.config import config_from_dict

    records = sorted((REPO / "results" / "runs").glob("*.json"))
    assert records
    for path in records:
        rec = json.loads(path.read_text())
        assert config_from_dict(rec["config"], str(path)).config_hash() == rec["config_hash"], path


def test_added_option_changes_hash_only_when_set():
    from reid_core.config import config_from_dict

    base = config_from_dict({"name": "x"})
    same = config_from_dict({"name": "x", "model": {"options": {}}})
    other = config_from_dict({"name": "x", "model": {"options": {"parts": 6}}})
    assert base.config_hash() == same.config_hash() != other.config_hash()
