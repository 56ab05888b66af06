"""Nothing fake, nothing lost: run identity, ``--force``, finished vs unfinished checkpoints,
checks before compute, full disks, corrupt checkpoints, stale temporary files, resumed wall time.

Each test reproduces a defect observed on a fresh machine (issue 10) and fails without its fix.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from fixtures_layouts import build_market
from test_engine import Interrupt, paths_of, tiny_cfg

import reid_core.engine.trainer as trainer
from reid_core.cli import main as cli_main
from reid_core.app.cross_eval import evaluate_run_on
from reid_core.data import build_dataset
from reid_core.engine.checkpoint import StaleCheckpointError, read_checkpoint
from reid_core.app.experiment import OutputDirError, load_data, run_experiment, run_id_of
from reid_core.models.weights import UnreadableWeightsError, read_state_file
from reid_core.utils.device import DeviceError, resolve_device
from reid_core.utils.io import OutputWriteError


def _die_in_epoch(monkeypatch, epoch_index: int) -> None:
    original = trainer._train_one_epoch

    def dying(state, *args, **kwargs):
        if state.epoch == epoch_index:
            raise Interrupt()
        return original(state, *args, **kwargs)

    monkeypatch.setattr(trainer, "_train_one_epoch", dying)


# --- run identity -------------------------------------------------------------------------


def test_run_id_includes_what_the_run_ran_on(tmp_path):
    cfg = tiny_cfg(data={"dataset": "market1501", "height": 64, "width": 32,
                         "batch_size": 16, "num_instances": 4})
    a = build_market(tmp_path / "a" / "Market-1501-v15.09.15")
    b = build_market(tmp_path / "b" / "Market-1501-v15.09.15")
    same_a, same_b = load_data(cfg, a.parent), load_data(cfg, b.parent)
    # The same files at another path are the same data: the identity is content, not path.
    assert run_id_of(cfg, same_a) == run_id_of(cfg, same_b)
    # Another tree (one more gallery image) is another run: never a reused record.
    extra = b / "bounding_box_test" / "0003_c3s1_000999_01.jpg"
    shutil.copy(b / "bounding_box_test" / "0003_c1s1_000151_01.jpg", extra)
    other = load_data(cfg, b.parent)
    assert run_id_of(cfg, other) != run_id_of(cfg, same_a)
    # ... and so is a changed file (a re-encoded copy has another size).
    with open(next((a / "query").glob("*.jpg")), "ab") as f:
        f.write(b"\0" * 7)
    assert run_id_of(cfg, load_data(cfg, a.parent)) != run_id_of(cfg, same_b)


def test_synthetic_identity_is_the_generator_spec(synthetic_cache):
    data = build_dataset("synthetic-tiny", synthetic_cache)
    identity = data.identity()
    assert identity["dataset"] == "synthetic-tiny"
    assert identity["fingerprint"].startswith("synthetic-spec:")
    # The generated directory itself (what records store as the root) gives the same identity.
    own_dir = next(synthetic_cache.glob("synthetic-tiny-*"))
    assert build_dataset("synthetic-tiny", own_dir).identity() == identity


def test_record_carries_its_data_identity(tmp_path, synthetic_cache):
    rec = run_experiment(tiny_cfg(**{"optim.epochs": 1}), data_root=synthetic_cache,
                         out=tmp_path, device="cpu")
    assert rec["dataset"]["identity"]["fingerprint"].startswith("synthetic-spec:")
    assert rec["run_id"].startswith("tiny-seed3-") and rec["attempt"]


# --- --force and finished checkpoints --------------------------------------------------------


def test_interrupted_force_rerun_keeps_the_finished_run(tmp_path, synthetic_cache, monkeypatch):
    cfg = tiny_cfg(**{"optim.epochs": 2, "eval.every": 0})
    first = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    paths = paths_of(cfg, synthetic_cache, tmp_path)
    assert paths.final_checkpoint.is_file() and not paths.checkpoint.exists()

    _die_in_epoch(monkeypatch, 1)  # the --force re-run dies after its epoch-1 checkpoint
    with pytest.raises(Interrupt):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu", force=True)
    half = read_checkpoint(paths.checkpoint)
    assert half["epoch"] == 1 and half["run"]["attempt"] != first["attempt"]
    assert json.loads(paths.record.read_text())["attempt"] == first["attempt"]

    # evaluate uses the weights the record was made with, not the half-trained ones ...
    ev = evaluate_run_on(paths.record, "synthetic-tiny", data_root=synthetic_cache,
                         device="cpu")
    assert ev["checkpoint_epoch"] == 2 and ev["final"] == first["final"]
    # ... and refuses when only the unfinished re-run's checkpoint is left.
    paths.final_checkpoint.unlink()
    with pytest.raises(StaleCheckpointError, match="unfinished re-run"):
        evaluate_run_on(paths.record, "synthetic-tiny", data_root=synthetic_cache,
                        device="cpu")

    # Re-running the reproduce way (resume) completes the forced attempt.
    monkeypatch.undo()
    done = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu",
                          resume=True)
    assert done["attempt"] == half["run"]["attempt"] and done["resumed_from_epoch"] == 1
    assert paths.final_checkpoint.is_file() and not paths.checkpoint.exists()


def test_resumed_record_reports_the_wall_time_of_all_segments(tmp_path, synthetic_cache,
                                                              monkeypatch):
    cfg = tiny_cfg(**{"optim.epochs": 2, "eval.every": 0})
    _die_in_epoch(monkeypatch, 1)
    with pytest.raises(Interrupt):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    first_segment = read_checkpoint(paths_of(cfg, synthetic_cache, tmp_path).checkpoint)
    monkeypatch.undo()
    rec = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu",
                         resume=True)
    segments = rec["segments"]
    assert [(s["from_epoch"], s["to_epoch"]) for s in segments] == [(0, 1), (1, 2)]
    assert rec["wall_time_s"] >= first_segment["run"]["elapsed_s"] + segments[1]["wall_time_s"] - 0.05


# --- before compute ---------------------------------------------------------------------------


def test_bad_device_names_and_missing_cuda():
    with pytest.raises(DeviceError, match="not a device name"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA device"):
            resolve_device("cuda")


def test_output_dir_that_is_a_file_fails_before_training(tmp_path, synthetic_cache, monkeypatch):
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    out = tmp_path / "out"
    out.write_text("not a directory")
    with pytest.raises(OutputDirError, match="is a file"):
        run_experiment(tiny_cfg(), data_root=synthetic_cache, out=out, device="cpu")


def test_rerank_neighbourhood_larger_than_the_dataset_fails_before_training(
        tmp_path, synthetic_cache, capsys):
    cfg = tiny_cfg(**{"eval.rerank": True, "eval.rerank_k1": 100000})
    with pytest.raises(ValueError, match="rerank_k1 = 100000"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_unreadable_image_fails_before_training(tmp_path, synthetic_cache):
    copy = tmp_path / "cache"
    shutil.copytree(synthetic_cache, copy)
    victim = next(copy.glob("synthetic-tiny-*/query/*.jpg"))
    victim.write_bytes(b"this is not a jpeg")
    with pytest.raises(ValueError, match=f"cannot be opened.*{victim.name}.*delete.*--check"):
        run_experiment(tiny_cfg(), data_root=copy, out=tmp_path / "out", device="cpu")


def test_evaluate_with_rank_zero_is_refused(capsys):
    assert cli_main(["evaluate", "anything", "--dataset", "synthetic-tiny", "--ranks", "0"]) == 2
    assert "--ranks" in capsys.readouterr().out


# --- full disk, corrupt files, leftovers -------------------------------------------------------


def test_full_disk_mid_run_is_one_line_and_keeps_the_last_checkpoint(tmp_path, synthetic_cache,
                                                                     monkeypatch):
    cfg = tiny_cfg(**{"optim.epochs": 3, "eval.every": 0})
    import reid_core.engine.checkpoint as checkpoint

    real_save = torch.save
    calls = {"n": 0}

    def full_disk(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the epoch-2 checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OutputWriteError) as e:
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("no space left on device writing")
    assert "last good checkpoint (after epoch 1)" in msg and "--resume" in msg
    ckpt = paths_of(cfg, synthetic_cache, tmp_path).checkpoint
    monkeypatch.setattr(checkpoint.torch, "save", real_save)
    assert read_checkpoint(ckpt)["epoch"] == 1
    assert not [p for p in ckpt.parent.iterdir() if p.name.endswith(".tmp")]


def test_truncated_checkpoint_is_a_clear_error(tmp_path, synthetic_cache, monkeypatch):
    cfg = tiny_cfg(**{"optim.epochs": 2, "eval.every": 0})
    _die_in_epoch(monkeypatch, 1)
    with pytest.raises(Interrupt):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    ckpt = paths_of(cfg, synthetic_cache, tmp_path).checkpoint
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    monkeypatch.undo()
    with pytest.raises(UnreadableWeightsError, match=f"{ckpt}.*truncated or corrupt.*--force"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu", resume=True)
    # --force starts over instead of reading it.
    rec = run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu", force=True)
    assert rec["resumed_from_epoch"] is None


@pytest.mark.parametrize("content", [b"", b"hello, not torch", b"PK\x03\x04broken zip"])
def test_non_torch_weights_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / "weights.pth"
    path.write_bytes(content)
    with pytest.raises(UnreadableWeightsError, match=str(path)):
        read_state_file(path)


def test_unsafe_pickle_is_refused_with_an_explanation(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Path("x")}, path)
    with pytest.raises(UnreadableWeightsError, match="weights_only=True"):
        read_state_file(path)


def test_stale_temp_files_are_removed_on_the_next_start(tmp_path, synthetic_cache):
    cfg = tiny_cfg(**{"optim.epochs": 1})
    runs = tmp_path / "runs"
    runs.mkdir(parents=True)
    dead = runs / ".x.json.999999999.abcdefgh.tmp"  # a pid that cannot be running
    dead.write_text("{half")
    mine = runs / f".y.json.{os.getpid()}.abcdefgh.tmp"  # a live writer's: left alone
    mine.write_text("{half")
    run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    assert not dead.exists() and mine.exists()


def test_damaged_record_is_one_line_naming_the_file(tmp_path, synthetic_cache, capsys):
    rec = run_experiment(tiny_cfg(**{"optim.epochs": 1}), data_root=synthetic_cache,
                         out=tmp_path, device="cpu")
    path = tmp_path / "runs" / f"{rec['run_id']}.json"
    path.write_text(path.read_text()[:100])  # cut by hand
    assert cli_main(["visualize", str(path), "--cmc-only", "--out", str(tmp_path / "fig")]) == 2
    out = capsys.readouterr().out
    assert str(path) in out.replace("\n", "") and "Traceback" not in out


# --- found by probing as a new user ------------------------------------------------------------


def test_other_weights_at_the_same_path_are_another_run(tmp_path, synthetic_cache):
    from reid_core.models import build_backbone

    weights = tmp_path / "w.pt"
    torch.save(build_backbone("resnet18").state_dict(), weights)
    cfg = tiny_cfg(**{"model.pretrained": str(weights)})
    data = load_data(cfg, synthetic_cache)
    first = run_id_of(cfg, data)
    torch.manual_seed(99)
    torch.save(build_backbone("resnet18").state_dict(), weights)
    assert run_id_of(cfg, data) != first


def test_a_file_that_is_not_a_record_is_never_a_finished_run(tmp_path, synthetic_cache):
    cfg = tiny_cfg(**{"optim.epochs": 1})
    paths = paths_of(cfg, synthetic_cache, tmp_path)
    paths.record.parent.mkdir(parents=True)
    paths.record.write_text("{}")
    with pytest.raises(ValueError, match="not the finished record"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")


def test_ranks_beyond_the_gallery_are_refused_before_training(tmp_path, synthetic_cache,
                                                               monkeypatch):
    monkeypatch.setattr(trainer, "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match="only 70 gallery images"):
        run_experiment(tiny_cfg(**{"eval.ranks": [1, 1000]}), data_root=synthetic_cache,
                       out=tmp_path, device="cpu")


def test_registry_typos_fail_before_the_dataset_is_read(tmp_path, monkeypatch):
    import reid_core.app.experiment as experiment

    monkeypatch.setattr(experiment, "load_data", lambda *a, **k: pytest.fail("data read"))
    for key, value in (("model.backbone", "resnet5O"), ("data.augment", "bott")):
        with pytest.raises(KeyError, match="resnet5O|bott"):
            run_experiment(tiny_cfg(**{key: value}), out=tmp_path, device="cpu")
    with pytest.raises(FileNotFoundError, match="model.pretrained"):
        run_experiment(tiny_cfg(**{"model.pretrained": str(tmp_path / "missing.pt")}),
                       out=tmp_path, device="cpu")


def test_test_only_dataset_and_file_as_root_are_clear_errors(tmp_path, synthetic_cache):
    from reid_core.data import DatasetError, DatasetLayoutError

    cfg = tiny_cfg(**{"data.dataset": "synthetic-tiny-partial-reid"})
    with pytest.raises(DatasetError, match="no training images"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    a_file = tmp_path / "afile"
    a_file.write_text("x")
    with pytest.raises(DatasetLayoutError, match="is a file"):
        run_experiment(tiny_cfg(), data_root=a_file, out=tmp_path, device="cpu")


def test_tampered_checkpoint_epoch_is_refused(tmp_path, synthetic_cache, monkeypatch):
    cfg = tiny_cfg(**{"optim.epochs": 2, "eval.every": 0})
    _die_in_epoch(monkeypatch, 1)
    with pytest.raises(Interrupt):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu")
    monkeypatch.undo()
    ckpt = paths_of(cfg, synthetic_cache, tmp_path).checkpoint
    state = torch.load(ckpt, weights_only=True)
    state["epoch"] = 999
    torch.save(state, ckpt)
    from reid_core.models import WeightMismatchError

    with pytest.raises(WeightMismatchError, match="after epoch 999"):
        run_experiment(cfg, data_root=synthetic_cache, out=tmp_path, device="cpu", resume=True)


def test_ctrl_c_during_a_write_is_held_until_the_file_is_complete(tmp_path):
    import signal

    from reid_core.utils.io import atomic_open

    target = tmp_path / "x.bin"
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_open(target) as f:
                f.write(b"a" * 1000)
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-write
                f.write(b"b" * 1000)
        assert target.read_bytes() == b"a" * 1000 + b"b" * 1000
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # Where SIGINT is ignored (nohup, some CI runners) it stays ignored.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with atomic_open(target) as f:
            os.kill(os.getpid(), signal.SIGINT)
            f.write(b"c")
        assert target.read_bytes() == b"c"
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_ctrl_c_is_one_line_not_a_traceback(monkeypatch, capsys):
    import reid_core.cli as cli
    import reid_core.cli.datasets as datasets_command

    def interrupted(args, console):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets_command, "run", interrupted)
    assert cli.main(["datasets"]) == 130
    out = capsys.readouterr().out
    assert "interrupted" in out and "--resume" in out and "Traceback" not in out


def test_combined_figure_name_cannot_leave_the_output_dir(capsys):
    with pytest.raises(SystemExit) as e:
        cli_main(["visualize", "a", "b", "--combined-name", "../../evil"])
    assert e.value.code == 2 and "file name" in capsys.readouterr().err


def test_regression_record_without_rows_is_refused(tmp_path, capsys):
    from reid_core.app.regression import main as regression_main

    assert regression_main(["record", str(tmp_path / "new.json"), "--table", "rga_table1"]) == 2
    assert "--rows" in capsys.readouterr().out


def test_damaged_synthetic_cache_does_not_pass_as_the_dataset(tmp_path, synthetic_cache):
    from reid_core.data import DatasetError

    copy = tmp_path / "cache"
    shutil.copytree(synthetic_cache, copy)
    for victim in sorted(copy.glob("synthetic-tiny-*/bounding_box_train/*.jpg"))[:2]:
        victim.unlink()
    with pytest.raises(DatasetError, match="bounding_box_train: 100 images, 102 generated"):
        build_dataset("synthetic-tiny", copy)


def test_a_prefix_of_one_rerun_row_means_its_newest_record(tmp_path):
    from reid_core.app.inspect_run import RunNotFoundError, resolve_run

    runs = tmp_path / "runs"
    runs.mkdir()
    for run_id, name, seed, when in (("a-seed0-111", "a", 0, "2026-01-01"),
                                     ("a-seed0-222", "a", 0, "2026-02-01"),
                                     ("a-seed1-333", "a", 1, "2026-03-01")):
        (runs / f"{run_id}.json").write_text(json.dumps(
            {"run_id": run_id, "config_name": name, "seed": seed, "finished_at": when}))
    assert resolve_run("a-seed0", runs).name == "a-seed0-222.json"
    with pytest.raises(RunNotFoundError, match="ambiguous"):
        resolve_run("a", runs)  # two seeds: a real ambiguity


def test_evaluations_on_another_copy_of_the_data_do_not_overwrite(tmp_path, synthetic_cache):
    rec = run_experiment(tiny_cfg(**{"optim.epochs": 1}), data_root=synthetic_cache,
                         out=tmp_path, device="cpu")
    record = tmp_path / "runs" / f"{rec['run_id']}.json"
    first = evaluate_run_on(record, "synthetic-tiny", data_root=synthetic_cache, device="cpu")
    (evaluation,) = (tmp_path / "evaluations").glob("*.json")
    assert first["dataset"]["identity"]["fingerprint"].startswith("synthetic-spec:")
    # Pretend the existing evaluation was made on another copy of the dataset.
    stored = json.loads(evaluation.read_text())
    stored["dataset"]["identity"] = {**stored["dataset"]["identity"], "fingerprint": "other"}
    evaluation.write_text(json.dumps(stored))
    evaluate_run_on(record, "synthetic-tiny", data_root=synthetic_cache, device="cpu")
    names = sorted(p.name for p in (tmp_path / "evaluations").glob("*.json"))
    assert len(names) == 2 and any("--data-" in n for n in names), names
    assert json.loads(evaluation.read_text()) == stored  # the other one is untouched
