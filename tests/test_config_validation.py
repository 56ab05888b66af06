"""Strict YAML reading (duplicate keys, one-line syntax errors) and semantic range checks.

A duplicated key used to keep only the last value silently; out-of-range values used to pass
validation and fail late or never (rank 0 reported as R0 = 100.00, batch_size=0 looping forever
in the P x K sampler, ``name=../../x`` writing records outside the results tree).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml

from reid_core.config import (
    ConfigError, check_ranks, config_from_dict, load_config, parse_overrides)
from reid_core.data.sampler import RandomIdentitySampler
from reid_core.app.reproduce import PROFILES, build_row_config, load_paper_configs
from reid_core.results.paper_tables import PaperTableError, load_table
from reid_core.utils.yaml_io import YamlError, load_yaml

REPO = Path(__file__).resolve().parents[1]

DUPLICATE_SECTION = """\
name: dup
seed: 0
optim:
  lr: 0.001
  epochs: 3
data:
  batch_size: 8
  num_instances: 2
optim:
  epochs: 5
"""


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- duplicate keys ----------------------------------------------------------------------------


def test_duplicate_top_level_key_names_file_key_and_both_lines(tmp_path):
    path = _write(tmp_path, DUPLICATE_SECTION)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}: duplicate key 'optim' at line 9 (first at line 3)"


def test_duplicate_key_inside_a_section(tmp_path):
    path = _write(tmp_path, "name: x\noptim:\n  lr: 0.1\n  epochs: 2\n  lr: 0.2\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' at line 5 \(first at line 3\)"):
        load_config(path)


def test_duplicate_key_in_a_flow_mapping_and_a_list_item():
    with pytest.raises(YamlError, match=r"src: duplicate key 'a' at line 1 \(first at line 1\)"):
        load_yaml("x: {a: 1, a: 2}\n", "src")
    with pytest.raises(YamlError, match=r"duplicate key 'k' at line 3 \(first at line 2\)"):
        load_yaml("items:\n  - k: 1\n    k: 2\n", "src")


def test_overriding_a_merged_key_is_not_a_duplicate():
    text = "base: &b {lr: 1, epochs: 2}\nrun:\n  <<: *b\n  lr: 3\n"
    assert load_yaml(text, "src") == yaml.safe_load(text)
    assert load_yaml(text, "src")["run"] == {"lr": 3, "epochs": 2}


def test_load_yaml_matches_safe_load_and_reads_paths(tmp_path):
    text = (REPO / "configs" / "bot_r50.yaml").read_text()
    assert load_yaml(text, "t") == yaml.safe_load(text)
    assert load_yaml(REPO / "configs" / "bot_r50.yaml", "t") == yaml.safe_load(text)
    assert load_yaml("", "t") is None
    with pytest.raises(YamlError, match="could not determine a constructor"):
        load_yaml("x: !!python/object:os.system {}\n", "t")  # still safe_load semantics


def test_yaml_error_is_the_public_config_error():
    assert issubclass(YamlError, ConfigError) and issubclass(ConfigError, ValueError)
    import reid_core.config
    import reid_core.utils.yaml_io

    assert reid_core.config.ConfigError is reid_core.utils.yaml_io.ConfigError


def test_duplicate_key_in_paper_configs(tmp_path):
    text = (REPO / "configs" / "papers" / "rga.yaml").read_text()
    path = _write(tmp_path, text + "variants: {}\n", "rga.yaml")
    with pytest.raises(ConfigError, match=rf"{path}: duplicate key 'variants' at line \d+"):
        load_paper_configs("RGA", tmp_path)


def test_duplicate_key_in_paper_table(tmp_path):
    text = (REPO / "paper_tables" / "rga_table1.yaml").read_text()
    _write(tmp_path, text + "caption: again\n", "rga_table1.yaml")
    with pytest.raises(PaperTableError,
                       match=r"rga_table1\.yaml: \(yaml\): not valid YAML: duplicate key "
                             r"'caption' at line \d+ \(first at line \d+\)"):
        load_table("rga_table1", tmp_path)


# --- syntax errors -----------------------------------------------------------------------------


def test_syntax_error_is_one_line_with_file_line_and_column(tmp_path):
    path = _write(tmp_path, "name: x\noptim:\n  lr: [0.1\n  epochs: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: invalid YAML at line ")
    assert "column" in msg and "expected ',' or ']'" in msg


def test_tab_indentation_error(tmp_path):
    path = _write(tmp_path, "name: x\noptim:\n\tlr: 0.1\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line 3, column 1: found character "
                                          r"'\\t' that cannot start any token"):
        load_config(path)


def test_bad_yaml_in_set_value_names_the_item():
    with pytest.raises(ConfigError) as e:
        parse_overrides(["seed=1", "optim.milestones=[3, 5"])
    msg = str(e.value)
    assert msg.startswith("--set 'optim.milestones=[3, 5': invalid YAML at line 1")
    assert "\n" not in msg
    with pytest.raises(ConfigError, match=r"--set 'model.options=\{a: 1, a: 2\}': duplicate key 'a'"):
        parse_overrides(["model.options={a: 1, a: 2}"])
    assert parse_overrides(["optim.milestones=[3]", "model.pretrained=null"]) == {
        "optim.milestones": [3], "model.pretrained": None}


# --- semantic checks ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw, pattern", [
    ({"data": {"batch_size": 0}}, r"data\.batch_size: must be >= 1, got 0"),
    ({"data": {"num_instances": 0}}, r"data\.num_instances: must be >= 1, got 0"),
    ({"data": {"height": 0}}, r"data\.height: must be >= 1, got 0"),
    ({"data": {"width": -1}}, r"data\.width: must be >= 1, got -1"),
    ({"data": {"workers": -1}}, r"data\.workers: must be >= 0, got -1"),
    ({"data": {"flip_p": 1.5}}, r"data\.flip_p: must be in \[0, 1\], got 1\.5"),
    ({"data": {"erasing_p": -0.1}}, r"data\.erasing_p: must be in \[0, 1\], got -0\.1"),
    ({"data": {"split": -1}}, r"data\.split: must be >= 0, got -1"),
    ({"eval": {"batch_size": 0}}, r"eval\.batch_size: must be >= 1, got 0"),
    ({"eval": {"rerank_k1": 0}}, r"eval\.rerank_k1: must be >= 1, got 0"),
    ({"eval": {"rerank_k2": 0}}, r"eval\.rerank_k2: must be >= 1, got 0"),
    ({"eval": {"rerank_lambda": 1.2}}, r"eval\.rerank_lambda: must be in \[0, 1\], got 1\.2"),
    ({"optim": {"lr": 0}}, r"optim\.lr: must be > 0, got 0\.0"),
    ({"optim": {"lr": -1e-3}}, r"optim\.lr: must be > 0, got -0\.001"),
    ({"optim": {"warmup_epochs": -1}}, r"optim\.warmup_epochs: must be >= 0, got -1"),
    ({"optim": {"gamma": 0}}, r"optim\.gamma: must be > 0, got 0\.0"),
    ({"optim": {"epochs": 0}}, r"optim\.epochs: must be >= 1, got 0"),
    ({"optim": {"milestones": [0, 40]}},
     r"optim\.milestones: every milestone must be an epoch >= 1, got \[0, 40\]"),
    ({"seed": -1}, r"seed: must be >= 0, got -1"),
    ({"loss": {"ce_weight": -1}}, r"loss\.ce_weight: must be >= 0, got -1\.0"),
    ({"loss": {"triplet_weight": -0.5}}, r"loss\.triplet_weight: must be >= 0, got -0\.5"),
    ({"loss": {"deep_supervision_weight": -1}}, r"loss\.deep_supervision_weight: must be >= 0"),
    ({"loss": {"label_smoothing": 1.0}}, r"loss\.label_smoothing: must be in \[0, 1\), got 1\.0"),
    ({"loss": {"label_smoothing": -0.1}}, r"loss\.label_smoothing: must be in \[0, 1\)"),
])
def test_out_of_range_values_name_key_and_expectation(raw, pattern):
    with pytest.raises(ConfigError, match=rf"^src: {pattern}"):
        config_from_dict({"name": "x", **raw}, "src")


def test_range_edges_are_accepted():
    cfg = config_from_dict({
        "name": "x", "seed": 0,
        "data": {"batch_size": 1, "num_instances": 1, "workers": 0, "flip_p": 1, "erasing_p": 0},
        "loss": {"label_smoothing": 0, "ce_weight": 0},
        "optim": {"warmup_epochs": 0, "milestones": [1]},
        "eval": {"ranks": [1], "rerank_lambda": 1, "rerank_k1": 1, "rerank_k2": 1},
    })
    assert cfg.data.batch_size == 1 and cfg.eval.ranks == [1]


@pytest.mark.parametrize("ranks, pattern", [
    ([0, 1], r"eval\.ranks: every rank must be >= 1, got \[0, 1\]"),
    ([1, -3], r"eval\.ranks: every rank must be >= 1, got \[1, -3\]"),
    ([], r"eval\.ranks: must list at least one rank, got \[\]"),
    ([1, 5, 1], r"eval\.ranks: every rank must be listed once, got \[1, 5, 1\] \(1 repeated\)"),
])
def test_bad_eval_ranks(ranks, pattern):
    with pytest.raises(ConfigError, match=rf"^src: {pattern}$"):
        config_from_dict({"name": "x", "eval": {"ranks": ranks}}, "src")


def test_check_ranks_for_the_command_line():
    assert check_ranks((1, 5, 10), "--ranks") == [1, 5, 10]
    assert check_ranks([20, 1], "--ranks") == [20, 1]  # order is the caller's
    with pytest.raises(ConfigError, match=r"^--ranks: every rank must be >= 1, got \[0\]$"):
        check_ranks([0], "--ranks")
    with pytest.raises(ConfigError, match=r"^--ranks: every rank must be an integer"):
        check_ranks([1, True], "--ranks")


@pytest.mark.parametrize("name", ["../../x", "a/b", "a\\b", ".", "..", ".hidden", "", "a b",
                                  "/abs", "x\n"])
def test_bad_run_names(name):
    with pytest.raises(ConfigError, match=r"^src: name: must be a plain file-name component"):
        config_from_dict({"name": name}, "src")


@pytest.mark.parametrize("name", ["x", "bot_r50_smoke", "csa_pcb-csa", "v1.2+exp", "0run"])
def test_good_run_names(name):
    assert config_from_dict({"name": name}).name == name


def test_set_name_with_path_is_rejected(tmp_path):
    path = _write(tmp_path, "name: ok\n")
    with pytest.raises(ConfigError, match=r"name: must be a plain file-name component matching "
                                          r"\[A-Za-z0-9\]\[A-Za-z0-9\._\+-\]\*.*got '\.\./\.\./x'"):
        load_config(path, parse_overrides(["name=../../x"]))


def test_zero_num_instances_is_a_config_error_not_a_crash():
    # Before the range checks this was a ZeroDivisionError in the multiple-of check.
    with pytest.raises(ConfigError, match=r"data\.num_instances: must be >= 1"):
        config_from_dict({"name": "x", "data": {"batch_size": 8, "num_instances": 0}})


def test_committed_configs_and_paper_variants_still_validate():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)
    papers = sorted((REPO / "configs" / "papers").glob("*.yaml"))
    assert papers
    for paper in papers:
        source, raw = load_paper_configs(paper.stem)
        for config_id in raw["variants"]:
            for profile in PROFILES:
                build_row_config(raw, source, config_id, profile, seed=0)


# --- sampler -----------------------------------------------------------------------------------


def _construct_with_timeout(batch_size: int, num_instances: int) -> BaseException | None:
    """Build a sampler in a daemon thread; the error it raised (a hang fails the test)."""
    items = [(f"{pid}_{i}.jpg", pid, i % 2) for pid in range(4) for i in range(4)]
    outcome: list[BaseException | None] = []

    def build() -> None:
        try:
            RandomIdentitySampler(items, batch_size, num_instances)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 -- reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=build, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert outcome, "RandomIdentitySampler did not return (infinite loop)"
    return outcome[0]


@pytest.mark.parametrize("batch_size, num_instances", [(0, 4), (8, 0), (-4, 2), (4, -2)])
def test_sampler_rejects_non_positive_sizes(batch_size, num_instances):
    exc = _construct_with_timeout(batch_size, num_instances)
    assert isinstance(exc, ValueError) and "must both be >= 1" in str(exc), exc


def test_sampler_still_builds_valid_batches():
    assert _construct_with_timeout(4, 2) is None


def test_infinite_values_from_yaml_and_a_key_below_a_value(tmp_path):
    from reid_core.config import ConfigError, load_config

    p = tmp_path / "inf.yaml"
    p.write_text("name: x\noptim:\n  lr: .inf\n")
    with pytest.raises(ConfigError, match="optim.lr: expected a finite number"):
        load_config(p)
    p.write_text("name: x\n")
    with pytest.raises(ConfigError, match="name is 'x', not a section"):
        load_config(p, {"name.x": 1})
    with pytest.raises(ConfigError, match="decimal point"):
        load_config(p, {"optim.lr": "1e-3"})


def test_repeated_milestone_is_refused():
    """A milestone given twice would apply gamma twice. (Milestones beyond a shortened
    ``optim.epochs`` stay allowed: ``--set optim.epochs=1`` on a full recipe is common.)"""
    from reid_core.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="each epoch once"):
        config_from_dict({"name": "x", "optim": {"epochs": 4, "milestones": [2, 2]}})
