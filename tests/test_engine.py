"""End to end at tiny scale: determinism, exact resume, NaN stop, records, skip/force, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reid_core.cli import main as cli_main
from reid_core.config import config_from_dict
from reid_core.engine.checkpoint import CheckpointWriter, read_checkpoint
from reid_core.engine.trainer import NonFiniteLossError
from reid_core.app.experiment import RunStateError, load_data, run_experiment, run_id_of
from reid_core.results.store import RunPaths
from reid_core.losses import Objective
from reid_core.models import WeightMismatchError

TINY = {
    "name": "tiny",
    "seed": 3,
    "data": {"dataset": "synthetic-tiny", "height": 64, "width": 32, "batch_size": 16,
             "num_instances": 4},
    "model": {"backbone": "resnet18"},
    "optim": {"epochs": 3, "warmup_epochs": 1, "milestones": [2]},
    "eval": {"every": 2, "ranks": [1, 5]},
}


def tiny_cfg(**over):
    raw = json.loads(json.dumps(TINY))
    for k, v in over.items():
        section, _, key = k.partition(".")
        if key:
            raw[section][key] = v
        else:
            raw[section] = v
    return config_from_dict(raw)


def paths_of(cfg, root, out) -> RunPaths:
    return RunPaths(Path(out), run_id_of(cfg, load_data(cfg, root)))


class Interrupt(Exception):
    pass


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, synthetic_cache, monkeypatch):
    cfg = tiny_cfg()
    full = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path / "a", device="cpu")

    # Same config, killed during epoch 3 (after the epoch-2 checkpoint was written).
    import reid_core.engine.trainer as trainer

    original = trainer._train_one_epoch

    def dying(state, *args, **kwargs):
        if state.epoch == 2:  # epoch index
            raise Interrupt()
        return original(state, *args, **kwargs)

    monkeypatch.setattr(trainer, "_train_one_epoch", dying)
    with pytest.raises(Interrupt):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path / "b", device="cpu")
    paths = paths_of(cfg, synthetic_cache, tmp_path / "b")
    ckpt = paths.checkpoint
    assert read_checkpoint(ckpt)["epoch"] == 2
    assert not paths.record.exists()

    # Without --resume the unfinished run is not silently restarted.
    monkeypatch.setattr(trainer, "_train_one_epoch", original)
    with pytest.raises(RunStateError, match="--resume"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path / "b", device="cpu")

    # Disturb the global RNGs: resume must restore them, not rely on them.
    torch.manual_seed(12345)
    resumed = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path / "b", device="cpu",
                             resume=True)
    assert resumed["resumed_from_epoch"] == 2
    assert resumed["final"] == full["final"]
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("time_s", "images_per_s")} for e in h]
    assert strip(resumed["history"]) == strip(full["history"])
    # The finished attempt's weights are final.pt; last.pt is gone.
    assert not ckpt.exists() and paths.final_checkpoint.is_file()
    a = torch.load(paths_of(cfg, synthetic_cache, tmp_path / "a").final_checkpoint,
                   weights_only=True)
    b = torch.load(paths.final_checkpoint, weights_only=True)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_record_contents_skip_and_force(tmp_path, synthetic_cache):
    cfg = tiny_cfg(**{"optim.epochs": 1})
    rec = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    path = tmp_path / "runs" / f"{rec['run_id']}.json"
    on_disk = json.loads(path.read_text())
    assert on_disk == json.loads(json.dumps(rec))
    for key in ("config", "config_hash", "seed", "versions", "device", "wall_time_s",
                "peak_memory", "history", "final", "dataset"):
        assert key in on_disk, key
    assert on_disk["config_hash"] == cfg.config_hash() and on_disk["seed"] == 3
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["peak_memory"]["host_rss_peak_mb"] > 0
    for feat in ("after_bn", "before_bn"):
        vals = on_disk["final"][feat]
        assert set(vals) == {"R1", "R5", "mAP", "mINP", "CMC", "per_query", "mAP_standard",
                             "mAP_trapezoid"}
        assert vals["mAP"] == vals[f"mAP_{cfg.eval.ap_mode}"]  # the other AP definition too
        assert len(vals["CMC"]) == 50
        per_query = vals["per_query"]  # for the report's paired bootstrap over queries
        assert per_query["queries"] == on_disk["dataset"]["splits"]["query"]["images"]
        assert len(per_query["ap"]) == len(per_query["first_hit"]) == per_query["queries"]
        assert 0 <= vals["R1"] <= vals["R5"] <= 100 and 0 <= vals["mAP"] <= 100
    mtime = path.stat().st_mtime_ns
    again = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    assert again == on_disk and path.stat().st_mtime_ns == mtime  # skipped
    steps = []
    forced = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu",
                            force=True, resume=True, on_step=lambda *a: steps.append(a))
    assert steps, "--force must train again, not resume the finished checkpoint"
    assert forced["resumed_from_epoch"] is None and forced["attempt"] != on_disk["attempt"]
    assert forced["final"] == on_disk["final"]  # deterministic on CPU
    assert path.stat().st_mtime_ns != mtime


def test_different_seed_changes_training(tmp_path, synthetic_cache):
    a = run_experiment(tiny_cfg(**{"optim.epochs": 1}), data_root=synthetic_cache,
                       out=tmp_path, device="cpu")
    b = run_experiment(tiny_cfg(**{"optim.epochs": 1, "seed": 4}), data_root=synthetic_cache,
                       out=tmp_path, device="cpu")
    assert a["history"][0]["loss"] != b["history"][0]["loss"]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, synthetic_cache, monkeypatch):
    cfg = tiny_cfg()
    ckpt = paths_of(cfg, synthetic_cache, tmp_path).checkpoint
    original = Objective.__call__
    calls_after_checkpoint = {"n": 0}
    submitted = []  # the epochs whose checkpoint was handed to the writer
    original_submit = CheckpointWriter.submit

    def counting_submit(self, make_state):
        submitted.append(len(submitted) + 1)
        return original_submit(self, make_state)

    def poisoned(self, out, batch):
        total, parts = original(self, out, batch)
        if submitted:  # epoch 1 is done: diverge on the 2nd iteration of epoch 2
            calls_after_checkpoint["n"] += 1
            if calls_after_checkpoint["n"] == 2:
                return total * float("nan"), parts
        return total, parts

    monkeypatch.setattr(Objective, "__call__", poisoned)
    monkeypatch.setattr(CheckpointWriter, "submit", counting_submit)
    with pytest.raises(NonFiniteLossError) as e:
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    assert "nan" in str(e.value) and str(ckpt) in str(e.value)
    assert "epoch 2, iteration 2" in str(e.value)
    good = read_checkpoint(ckpt)
    assert good["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    assert not paths_of(cfg, synthetic_cache, tmp_path).record.exists()


def test_resume_refuses_checkpoint_of_other_config(tmp_path, synthetic_cache):
    cfg = tiny_cfg(**{"optim.epochs": 1})
    run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    other = tiny_cfg(**{"optim.epochs": 1, "optim.lr": 1e-3})
    target = paths_of(other, synthetic_cache, tmp_path).checkpoint
    target.parent.mkdir(parents=True)
    paths_of(cfg, synthetic_cache, tmp_path).final_checkpoint.rename(target)
    with pytest.raises(WeightMismatchError, match="refusing to resume"):
        run_experiment(other, data_root=synthetic_cache, out=tmp_path, device="cpu", resume=True)


def test_cli_train_and_errors(tmp_path, synthetic_cache, capsys):
    cfg_path = tmp_path / "tiny.yaml"
    raw = json.loads(json.dumps(TINY))
    raw["optim"]["epochs"] = 1
    import yaml

    cfg_path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    assert cli_main(["train", "--config", str(cfg_path), "--data-root", str(synthetic_cache),
                     "--out", str(out), "--device", "cpu"]) == 0
    assert len(list((out / "runs").glob("tiny-seed3-*.json"))) == 1

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\noptim:\n  lrr: 0.1\n")
    assert cli_main(["train", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().out
    assert "lrr" in err and "valid keys" in err and str(bad) in err

    assert cli_main(["train", "--config", str(cfg_path), "--out", str(out),
                     "--set", "data.dataset=market1501", "--data-root",
                     str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().out
    assert "expected layout" in err and "bounding_box_train" in err


def test_test_features_are_fp32_even_when_training_uses_amp(synthetic_cache):
    """Evaluation extracts features outside autocast: with AMP (bf16 here, on the CPU) the
    features are bit for bit those of a full-precision pass, not bf16-quantised ones."""
    import dataclasses

    from reid_core.data import build_dataset
    from reid_core.data.image_dataset import ImageDataset
    from reid_core.data.transforms import build_test_transform
    from reid_core.engine.features import extract_features
    from reid_core.models import build_model
    from reid_core.utils.device import resolve_device

    cfg = tiny_cfg()
    torch.manual_seed(0)
    model = build_model(cfg.model, 12, (cfg.data.height, cfg.data.width))
    items = build_dataset("synthetic-tiny", synthetic_cache).query[:8]
    dataset = ImageDataset(items, build_test_transform(cfg.data))
    fp32 = resolve_device("cpu")
    amp = dataclasses.replace(fp32, amp=True, amp_dtype=torch.bfloat16)
    with amp.autocast():  # the premise: under this autocast the features would be bf16
        probe = model.eval()(dataset[0]["img"][None]).features["after_bn"]
    assert probe.dtype == torch.bfloat16
    full, _, _ = extract_features(model, dataset, device=fp32)
    mixed, _, _ = extract_features(model, dataset, device=amp)
    assert mixed.keys() == full.keys()
    for name in full:
        assert mixed[name].dtype == torch.float32 and torch.equal(mixed[name], full[name]), name
