"""``model.pretrained: synthetic``: the pretraining corpus (identities disjoint from every
evaluation preset), the trunk's cache (full specification, atomic, locked, resumed, reused),
strict loading through the backbone, and what run ids and records say about it.

The fast tests pretrain on a tiny corpus with a tiny recipe (a second or two each); the full
first-use pretraining is behind ``-m slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_engine import tiny_cfg

import reid_core.app.pretrain as pretrain
import reid_core.engine.trainer as trainer
from reid_core.app.experiment import check_buildable, load_data, run_experiment, run_id_of
from reid_core.config import ConfigError
from reid_core.data import build_dataset
from reid_core.data.synthetic import (
    PRESETS, PRETRAIN_PRESETS, PRETRAIN_SEED, SyntheticSpec, plan, sample_cameras)
from reid_core.data.synthetic_render import STREAM_IDENTITY, sample_identity
from reid_core.models import WeightMismatchError, build_backbone
from reid_core.models.weights import read_state_file

REPO = Path(__file__).resolve().parents[1]

TINY_CORPUS = SyntheticSpec(num_train_ids=6, num_test_ids=3, num_distractors=0, num_junk=0,
                            cams_per_id=(2, 2), images_per_track=(2, 2), seed=PRETRAIN_SEED + 1,
                            gt_bbox_per_track=(0, 0), partial_reid_ids=0, partial_ilids_ids=0)
TINY_RECIPE = {"data": {"height": 32, "width": 16, "batch_size": 16, "pad": 2},
               "optim": {"epochs": 2, "warmup_epochs": 0, "milestones": [1]},
               "eval": {"ranks": [1]}}


def make(cache, **kwargs):
    kwargs = {"corpus": TINY_CORPUS, "recipe": TINY_RECIPE, "cache_root": cache,
              "progress": False, "device": "cpu", **kwargs}
    return pretrain.pretrain_trunk("resnet18", **kwargs)


@pytest.fixture
def tiny_source(tmp_path, monkeypatch):
    """``model.pretrained: synthetic`` resolves to a tiny trunk cached under ``tmp_path``."""
    monkeypatch.setattr(pretrain.SOURCE, "corpus", TINY_CORPUS)
    monkeypatch.setattr(pretrain.SOURCE, "recipe", TINY_RECIPE)
    monkeypatch.setattr(pretrain.SOURCE, "cache_root", tmp_path / "cache")
    monkeypatch.setattr(pretrain.SOURCE, "device", "cpu")
    return pretrain.SOURCE


# --------------------------------------------------------------------------- the corpus


def _people(spec: SyntheticSpec) -> list:
    n = spec.num_train_ids + spec.num_test_ids + spec.num_distractors
    return [sample_identity(np.random.default_rng([spec.seed, STREAM_IDENTITY, k]))
            for k in range(n)]


def test_pretraining_corpus_identities_are_disjoint_from_every_evaluation_preset():
    corpus = PRESETS["pretrain"]
    assert corpus.num_train_ids >= 1000
    evaluation = {name: spec for name, spec in PRESETS.items() if name not in PRETRAIN_PRESETS}
    assert {"tiny", "small", "default"} <= set(evaluation)
    # Person k of a dataset is drawn from the stream (seed, STREAM_IDENTITY, k): another seed
    # means no person's stream is any evaluation person's stream, whatever the counts.
    assert corpus.seed == PRETRAIN_SEED
    assert all(spec.seed != PRETRAIN_SEED for spec in evaluation.values())
    # ... and so no identity's parameters coincide (compared in full, not by name or index).
    theirs = {p for spec in evaluation.values() for p in _people(spec)}
    ours = _people(corpus)
    assert len(set(ours)) == len(ours) and not set(ours) & theirs
    # The plan renders exactly those people (train and held-out alike)...
    assert {job.identity for job in (it.job for it in plan(corpus))} <= set(ours)
    # ... seen by other cameras.
    assert not set(sample_cameras(corpus.seed, corpus.num_cameras, corpus.camera_strength)) & {
        c for spec in evaluation.values()
        for c in sample_cameras(spec.seed, spec.num_cameras, spec.camera_strength)}


def test_the_corpus_is_a_registered_training_set(tmp_path, monkeypatch):
    # Registered like the other synthetic sets (its own name in records, never a table's).
    from reid_core.data import available_datasets
    from reid_core.data.names import is_smoke

    assert "synthetic-pretrain" in available_datasets() and is_smoke("synthetic-pretrain")
    monkeypatch.setitem(PRESETS, "pretrain", TINY_CORPUS)  # its loader reads the preset
    data = build_dataset("synthetic-pretrain", tmp_path)
    assert data.num_train_pids == TINY_CORPUS.num_train_ids and data.query and data.gallery
    assert data.identity()["fingerprint"] == f"synthetic-spec:{TINY_CORPUS.digest()}"


# --------------------------------------------------------------------------- the cache


def test_trunk_is_made_once_and_reused_under_the_cache_root(tmp_path, monkeypatch):
    path = make(tmp_path)
    assert path.parent == tmp_path / "pretrained"
    assert path.name == f"synthetic-resnet18-{pretrain.trunk_key('resnet18', TINY_CORPUS, TINY_RECIPE)}.pt"
    assert (tmp_path / "synthetic").is_dir()  # the corpus, where the synthetic data lives
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["corpus"]["digest"] == TINY_CORPUS.digest() and meta["sha256"]
    assert meta["corpus"]["train_ids"] == TINY_CORPUS.num_train_ids
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, path.with_suffix(".json").name, f".{path.name}.lock"])  # no temp, no work
    stamp = path.stat().st_mtime_ns
    monkeypatch.setattr(pretrain, "_make_trunk", lambda *a, **k: pytest.fail("made again"))
    assert make(tmp_path) == path and path.stat().st_mtime_ns == stamp
    # The default root is the synthetic data's: $REID_BENCH_CACHE.
    monkeypatch.setenv("REID_BENCH_CACHE", str(tmp_path))
    assert pretrain.trunk_path("resnet18", TINY_CORPUS, TINY_RECIPE) == path


def test_the_key_covers_the_full_specification(monkeypatch):
    key = pretrain.trunk_key("resnet18", TINY_CORPUS, TINY_RECIPE)
    other_corpus = SyntheticSpec(**{**TINY_CORPUS.__dict__, "camera_strength": 0.6})
    longer = {**TINY_RECIPE, "optim": {**TINY_RECIPE["optim"], "epochs": 3}}
    others = {pretrain.trunk_key("resnet34", TINY_CORPUS, TINY_RECIPE),
              pretrain.trunk_key("resnet18", other_corpus, TINY_RECIPE),
              pretrain.trunk_key("resnet18", TINY_CORPUS, longer),
              pretrain.trunk_key("resnet18", TINY_CORPUS, {**TINY_RECIPE, "seed": 1})}
    monkeypatch.setattr(pretrain, "RECIPE_VERSION", pretrain.RECIPE_VERSION + 1)
    others.add(pretrain.trunk_key("resnet18", TINY_CORPUS, TINY_RECIPE))
    assert key not in others and len(others) == 5
    # The default specification is the recipe's; its key does not depend on the cache.
    assert pretrain.trunk_key("resnet18") == pretrain.SyntheticTrunks().key("resnet18")


def test_interrupted_pretraining_leaves_no_trunk_and_resumes_exactly(tmp_path, monkeypatch):
    reference = read_state_file(make(tmp_path / "a"))
    original = trainer._train_one_epoch

    def dying(state, *args, **kwargs):
        if state.epoch == 1:
            raise KeyboardInterrupt
        return original(state, *args, **kwargs)

    monkeypatch.setattr(trainer, "_train_one_epoch", dying)
    with pytest.raises(KeyboardInterrupt):
        make(tmp_path / "b")
    root = tmp_path / "b" / "pretrained"
    assert not list(root.glob("*.pt")) and not list(root.glob(".*.tmp"))
    (work,) = root.glob(".*.work")
    assert (work / "last.pt").is_file()  # after epoch 1
    monkeypatch.setattr(trainer, "_train_one_epoch", original)
    resumed = read_state_file(make(tmp_path / "b"))
    assert not work.exists()
    assert reference.keys() == resumed.keys()
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_damaged_trunk_file_is_made_again(tmp_path):
    path = make(tmp_path)
    good = read_state_file(path)
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    assert make(tmp_path) == path
    again = read_state_file(path)
    assert all(torch.equal(good[k], again[k]) for k in good)  # deterministic on CPU


_WAITER = """
    import sys
    from reid_core.app import pretrain
    from reid_core.data.synthetic import SyntheticSpec
    spec = SyntheticSpec(**{corpus!r})
    print(pretrain.pretrain_trunk("resnet18", corpus=spec, recipe={recipe!r},
                                  cache_root={cache!r}, progress=True, device="cpu"))
"""


def test_a_second_first_user_waits_and_reuses_the_trunk(tmp_path):
    from filelock import FileLock

    cache = tmp_path / "cache"
    final = pretrain.trunk_path("resnet18", TINY_CORPUS, TINY_RECIPE, cache)
    final.parent.mkdir(parents=True)
    lock = FileLock(str(final.parent / f".{final.name}.lock"))
    lock.acquire()
    err_path = tmp_path / "stderr.txt"
    code = textwrap.dedent(_WAITER.format(corpus=TINY_CORPUS.__dict__, recipe=TINY_RECIPE,
                                          cache=str(cache)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    with err_path.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=err, text=True, env=env)
        try:
            deadline = time.monotonic() + 120
            while "waiting for another process" not in err_path.read_text():
                assert proc.poll() is None, err_path.read_text()
                assert time.monotonic() < deadline, "never said it was waiting"
                time.sleep(0.05)
            # Meanwhile "the other process" makes the trunk (here, in this process: the lock is
            # ours, so it is made in another cache and moved into place).
            os.replace(make(tmp_path / "elsewhere"), final)
        finally:
            lock.release()
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, err_path.read_text()
    assert Path(out.strip().splitlines()[-1]) == final
    assert "pretraining" not in err_path.read_text()  # reused, not trained again


# --------------------------------------------------------------------------- loading


def test_the_trunk_is_the_backbone_without_classifier_and_loads_strictly(tmp_path, tiny_source):
    path = make(tiny_source.cache_root)
    state = read_state_file(path)
    assert set(state) == set(build_backbone("resnet18").state_dict())  # no fc, no head
    for name in ("synthetic", "synthetic-resnet18"):
        bb = build_backbone("resnet18", pretrained=name)
        assert all(torch.equal(v, state[k]) for k, v in bb.state_dict().items())
    # Strict, as for an ImageNet file: a missing key is an error naming it.
    broken = tmp_path / "broken.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.1.")}, broken)
    with pytest.raises(WeightMismatchError, match="missing keys"):
        build_backbone("resnet18", pretrained=str(broken))
    # The ImageNet path is untouched.
    assert build_backbone("resnet18", pretrained=None).conv1.weight.shape == (64, 3, 7, 7)


def test_global_rng_is_the_same_whether_the_trunk_is_made_or_reused(tiny_source):
    def draw_after_build() -> torch.Tensor:
        torch.manual_seed(7)
        np.random.seed(7)
        build_backbone("resnet18", pretrained="synthetic")
        return torch.cat([torch.rand(5), torch.from_numpy(np.random.rand(5)).float()])

    made = draw_after_build()  # first use: pretrains inside
    assert tiny_source.path("resnet18").is_file()
    assert torch.equal(made, draw_after_build())  # reused


def test_a_trunk_of_another_backbone_is_refused_before_any_data(tiny_source, monkeypatch):
    import reid_core.app.experiment as experiment

    monkeypatch.setattr(experiment, "load_data", lambda *a, **k: pytest.fail("data read"))
    with pytest.raises(ConfigError, match="trunk of resnet50.*'synthetic-resnet18'"):
        check_buildable(tiny_cfg(**{"model.pretrained": "synthetic-resnet50"}))
    with pytest.raises(FileNotFoundError, match="named weights: imagenet, synthetic"):
        check_buildable(tiny_cfg(**{"model.pretrained": "synthetc"}))
    check_buildable(tiny_cfg(**{"model.pretrained": "synthetic"}))  # nothing made yet
    assert not tiny_source.path("resnet18").exists()


def test_the_pretrain_command_makes_and_describes_the_trunk(tiny_source, capsys):
    from reid_core.cli import main

    assert main(["pretrain", "--backbone", "resnet18", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert str(tiny_source.path("resnet18")) in out and "pretraining" in out
    assert "initialised from the synthetic-pretrained ResNet-18" in out
    assert main(["pretrain"]) == 0  # reused
    assert "pretraining" not in capsys.readouterr().out
    assert main(["pretrain", "--backbone", "resnet5O"]) == 2
    assert "unknown backbone 'resnet5O'; valid:" in capsys.readouterr().out


# --------------------------------------------------------------------------- records


def test_records_name_the_trunk(tmp_path, tiny_source, synthetic_cache, monkeypatch):
    cfg = tiny_cfg(**{"model.pretrained": "synthetic", "optim": {
        "epochs": 1, "warmup_epochs": 0, "milestones": []}, "eval": {"every": 0, "ranks": [1]}})
    data = load_data(cfg, synthetic_cache)
    # The run id knows the trunk without making it ...
    with monkeypatch.context() as m:
        m.setattr(pretrain, "_make_trunk", lambda *a, **k: pytest.fail("made"))
        run_id = run_id_of(cfg, data)
        # ... and another trunk (another recipe) is another run.
        m.setattr(tiny_source, "recipe", {**TINY_RECIPE, "seed": 1})
        assert run_id_of(cfg, data) != run_id
    assert not tiny_source.path("resnet18").exists()

    record = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path / "out", device="cpu")
    key = tiny_source.key("resnet18")
    assert record["run_id"] == run_id
    assert record["run_identity"]["weights"] == f"synthetic-resnet18:{key}"
    assert record["pretrained"] == "synthetic"
    text = record["pretrained_description"]
    assert text.startswith(f"initialised from the synthetic-pretrained ResNet-18 {key} "
                           f"(weights sha256:")
    assert f"trained on {TINY_CORPUS.num_train_ids:,} disjoint identities" in text
    # A random-init record has no description (as before).
    plain = run_experiment(tiny_cfg(**{"optim": {"epochs": 1, "warmup_epochs": 0,
                                                 "milestones": []}, "eval": {"every": 0}}),
                           data_root=synthetic_cache, out=tmp_path / "out", device="cpu")
    assert "pretrained_description" not in plain and plain["pretrained"] is None
    # The report header prints the description.
    from reid_core.results.report.metrics_header import _init_text

    assert text in _init_text([record]) and "random initialisation" in _init_text([plain, record])


# --------------------------------------------------------------------------- the real thing


@pytest.mark.slow
def test_first_use_pretraining_fits_the_budget_and_helps(tmp_path, monkeypatch):
    """The default trunk (ResNet-18, 1,000 identities) made from an empty cache, corpus
    included, then the rga_baseline smoke row fine-tuned from it vs from random init at the
    same budget. ~6 minutes on 2 idle CPU cores (far longer when others load them)."""
    from reid_core.app.reproduce import build_row_config, load_paper_configs

    monkeypatch.setenv("REID_BENCH_CACHE", str(tmp_path / "cache"))
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    path = pretrain.SOURCE.weights_file("synthetic", "resnet18")
    minutes = (time.perf_counter() - t0) / 60
    load = os.getloadavg()
    meta = pretrain.read_trunk_meta(path)
    assert path.parent == tmp_path / "cache" / "pretrained"
    assert meta["corpus"]["train_ids"] >= 1000
    print(f"first-use pretraining: {minutes:.1f} min; load average before {load_before:.2f}, "
          f"after (1/5/15 min) {load}")
    # The budget (10 minutes on 2 CPU cores, corpus included; 4.5 measured) holds on an
    # otherwise idle machine: the pretraining's own two threads make a load of about 2. On a
    # shared machine, other processes' load slows it several times over: not a failure.
    if load_before < 1.0 and load[1] < 2.5:
        assert minutes <= 10, f"{minutes:.1f} min on an idle machine (load {load})"
    assert meta["held_out"]["R1"] > 50  # held-out corpus identities (chance 1%): 87.5 measured

    source, raw = load_paper_configs("rga")
    final = {}
    for init in (None, "synthetic"):
        cfg = build_row_config(raw, source, "rga_baseline", "smoke", 0)
        cfg.model.pretrained = init
        record = run_experiment(cfg, out=tmp_path / "out", device="cpu")
        final[init] = record["final"][record["primary_feature"]]
    # Measured: R1 / mAP 79.2 / 70.7 from the trunk, 34.1 / 31.3 from random init (6 epochs);
    # the smoke profile's 4 epochs: 75.1 / 66.7 from the trunk.
    assert final["synthetic"]["mAP"] > final[None]["mAP"] + 15, final


def test_the_weights_digest_ignores_what_else_a_file_holds(tmp_path):
    """A trunk made again has the same weights but another meta (creation time, commit): the
    description's digest is of the weights, so it is the same; other weights differ."""
    import torch

    from reid_core.models.weights import state_dict_digest

    weights = {"a.weight": torch.arange(6.0).reshape(2, 3), "a.num_batches": torch.tensor(3)}
    for name, meta in (("one.pt", {"created_at": "then"}), ("two.pt", {"created_at": "now"})):
        torch.save({"state_dict": weights, "meta": meta}, tmp_path / name)
    one, two = (torch.load(tmp_path / n, weights_only=True)["state_dict"]
                for n in ("one.pt", "two.pt"))
    assert state_dict_digest(one) == state_dict_digest(two)
    changed = dict(weights, **{"a.weight": weights["a.weight"] + 1e-6})
    assert state_dict_digest(changed) != state_dict_digest(one)
    assert state_dict_digest({"b.weight": weights["a.weight"]}) != state_dict_digest(
        {"a.weight": weights["a.weight"]})
