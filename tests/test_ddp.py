"""One run trained by several processes (torchrun DDP, gloo on this CPU machine).

* a 2-process ``torchrun ... -m reid_core train`` run: trains, evaluates, one complete record
  (distributed fields, metrics, per-query data), one checkpoint; its ``final.pt`` evaluated by
  one process gives the record's metrics (BN averaged before it was saved; the sharded,
  gathered evaluation equals a single-process one);
* DDP-averaged gradients of a 2-process step equal the one-process gradients of the global
  batch (BN frozen), and a rank's own gradient does not;
* the sharding of P x K / identity-once / shuffle batches over the ranks;
* a distributed evaluation (features gathered) equals the single-process evaluation;
* errors before compute: SyncBN on CPU, batch not divisible (also under torchrun: one message,
  no hang), resume with another world size, a torchrun launch without a process group;
* an interrupted 2-process run resumed with 2 processes equals the uninterrupted run.

Processes are started with ``OMP_NUM_THREADS=1`` (two ranks on two cores); comparisons with a
one-process computation set this process to one thread too (float results depend on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import yaml
from test_engine import TINY, Interrupt, tiny_cfg
from test_report_integrity import header, record as report_record

from reid_core.app.ddp import check_distributed, distributed_record
from reid_core.app.experiment import (
    RunStateError, build_evaluator, load_data, run_experiment, run_id_of)
from reid_core.config import ConfigError, LossConfig, LossTermConfig, ModelConfig
from reid_core.data.batch import IMG, PID
from reid_core.data.sampler import SAMPLERS, shard_batches
from reid_core.engine.checkpoint import FORMAT_VERSION, LAST
from reid_core.engine.loader import EpochLoader
from reid_core.losses import build_objective
from reid_core.models import build_model
from reid_core.models.weights import WeightMismatchError
from reid_core.results.identity import recipe_key
from reid_core.results.report import render_report
from reid_core.results.report.metrics_header import _BN_MODE_TEXT, _processes_text
from reid_core.utils import distributed
from reid_core.utils.device import resolve_device

REPO = Path(__file__).resolve().parents[1]
CPU = resolve_device("cpu")
#: A 2-process run should take ~20 s here; the limit only turns a hang into a failure.
TIMEOUT_S = 600


def ddp_config(**over: Any) -> dict[str, Any]:
    """The tiny test config (``tests/test_engine.py``), 2 epochs, evaluated after epoch 1 too
    (the evaluation during training is sharded as well)."""
    raw = json.loads(json.dumps(TINY))
    raw["optim"]["epochs"] = 2
    raw["eval"]["every"] = 1
    for key, value in over.items():
        section, _, name = key.partition(".")
        raw[section][name] = value
    return raw


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """This process at one thread, as each rank runs (float results depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torchrun(args: list[str], nproc: int = 2) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc-per-node={nproc}", "-m", "reid_core", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT_S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, fn: Callable[..., None],
               args: tuple[Any, ...]) -> None:
    """A spawned rank: torchrun's environment, one thread, the process group, then ``fn``."""
    os.environ.update(WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with distributed.session("cpu"):
        fn(rank, *args)


def spawn(fn: Callable[..., None], *args: Any, world: int = 2) -> None:
    """Run ``fn(rank, *args)`` on ``world`` gloo ranks (a module-level function: it is
    pickled by reference into the spawned processes)."""
    mp.spawn(_rank_main, args=(world, free_port(), fn, args), nprocs=world, join=True)


# --------------------------------------------------------------------------- torchrun run


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, synthetic_cache) -> dict[str, Any]:
    """One 2-process run of the tiny config through torchrun, and what it left."""
    tmp = tmp_path_factory.mktemp("ddp")
    config = write_config(tmp / "tiny.yaml", ddp_config())
    out = tmp / "out"
    proc = torchrun(["train", "--config", str(config), "--data-root", str(synthetic_cache),
                     "--out", str(out), "--device", "cpu"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = sorted((out / "runs").glob("*.json"))
    return {"proc": proc, "out": out, "config": config, "records": records,
            "record": json.loads(records[0].read_text()) if len(records) == 1 else None}


def test_torchrun_trains_evaluates_and_writes_one_complete_record(ddp_run, synthetic_cache):
    out, rec = ddp_run["out"], ddp_run["record"]
    assert len(ddp_run["records"]) == 1 and rec is not None
    # One checkpoint, the finished one; no temporary files anywhere.
    # (claims/ holds the run's training lock: bookkeeping of rank 0, checked in test_sweep.py)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                   if p.is_file() and p.relative_to(out).parts[0] != "claims")
    assert sorted(p.name for p in (out / "claims").iterdir()) == [f"{rec['run_id']}.lock"]
    assert files == [f"checkpoints/{rec['run_id']}/final.pt", f"runs/{rec['run_id']}.json"]
    assert ddp_run["proc"].stdout.count("record written to") == 1  # rank 0 alone prints

    assert rec["distributed"] == {"world_size": 2, "per_rank_batch": 8, "backend": "gloo",
                                  "bn_mode": "per_rank_bn_averaged"}
    cfg = tiny_cfg(**{"optim.epochs": 2, "eval.every": 1})
    data = load_data(cfg, synthetic_cache)
    assert rec["run_identity"]["world_size"] == "2"
    assert rec["run_id"] == run_id_of(cfg, data, world_size=2) != run_id_of(cfg, data)
    assert [h["epoch"] for h in rec["history"]] == [1, 2]
    assert rec["history"][0]["eval"]["after_bn"]["R1"] >= 0  # evaluated during training
    assert all(h["images_per_s"] > 0 and 0 <= h["train_acc"] <= 1 for h in rec["history"])
    for feature in cfg.eval.features:
        final = rec["final"][feature]
        assert {"R1", "R5", "mAP", "mINP", "CMC"} <= set(final)
        per_query = final["per_query"]
        assert per_query["queries"] == len(data.query) == len(per_query["ap"])
    assert rec["device"]["torch_threads"] == 1


def test_final_checkpoint_evaluated_by_one_process_gives_the_record(ddp_run, synthetic_cache):
    """``final.pt`` holds the BN statistics averaged over the ranks, and the record's metrics
    (features extracted in shards, gathered on rank 0) are those of a one-process
    evaluation of it."""
    from reid_core.app.cross_eval import evaluate_run_on

    rec = ddp_run["record"]
    with one_thread():
        ev = evaluate_run_on(ddp_run["records"][0], "synthetic-tiny",
                             data_root=synthetic_cache, device="cpu")
    assert ev["checkpoint_epoch"] == 2
    assert ev["final"] == rec["final"]


def test_interrupted_run_resumed_with_the_same_world_size_equals_the_unbroken_run(
        ddp_run, synthetic_cache, tmp_path):
    out = tmp_path / "out"
    spawn(_train_until_epoch_2, ddp_run["config"], str(synthetic_cache), str(out))
    run_id = ddp_run["record"]["run_id"]
    assert (out / "checkpoints" / run_id / LAST).is_file()
    assert not list((out / "runs").glob("*.json"))

    proc = torchrun(["train", "--config", str(ddp_run["config"]), "--data-root",
                     str(synthetic_cache), "--out", str(out), "--device", "cpu", "--resume"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resumed = json.loads((out / "runs" / f"{run_id}.json").read_text())
    unbroken = ddp_run["record"]
    assert resumed["resumed_from_epoch"] == 1 and len(resumed["segments"]) == 2

    def without_times(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in h.items() if k not in ("time_s", "images_per_s")}
                for h in history]

    assert without_times(resumed["history"]) == without_times(unbroken["history"])
    assert resumed["final"] == unbroken["final"]


def _train_until_epoch_2(rank: int, config: str, data_root: str, out: str) -> None:
    import reid_core.engine.trainer as trainer
    from reid_core.config import load_config

    original = trainer._train_one_epoch

    def dying(state, *args, **kwargs):
        if state.epoch == 1:
            raise Interrupt()
        return original(state, *args, **kwargs)

    trainer._train_one_epoch = dying
    with contextlib.suppress(Interrupt):
        run_experiment(load_config(config), data_root=data_root, out=out, device="cpu")


def test_a_config_error_stops_every_rank_with_one_message(tmp_path, synthetic_cache):
    """P = 12 / 4 = 3 identities cannot be split over 2 ranks: refused before any data is
    read, on both ranks, printed once, and torchrun returns (no rank left waiting)."""
    config = write_config(tmp_path / "bad.yaml", ddp_config(**{"data.batch_size": 12}))
    proc = torchrun(["train", "--config", str(config), "--data-root", str(synthetic_cache),
                     "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert proc.returncode != 0
    errors = [line for line in proc.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1, proc.stdout
    assert "data.batch_size" in errors[0] and "whole identities" in errors[0]
    assert "Traceback" not in proc.stdout
    assert not (tmp_path / "out" / "runs").exists() or not list(
        (tmp_path / "out" / "runs").iterdir())


# --------------------------------------------------------------------------- gradients


def _frozen_bn_model(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="resnet18"), num_classes, (32, 16))
    model.train()
    for module in model.modules():  # BN frozen: per-sample computations, as in one process
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


def _global_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return {IMG: torch.randn(8, 3, 32, 16, generator=g),
            PID: torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])}


CE_ONLY = LossConfig(terms=[LossTermConfig("ce", 1.0, {"label_smoothing": 0.1})])


def _gradients_worker(rank: int, result: str) -> None:
    model = _frozen_bn_model(4)
    objective = build_objective(CE_ONLY, model)
    forward = distributed.DDPForward(model, CPU)
    batch = _global_batch()
    chunk = {k: v[rank * 4:(rank + 1) * 4] for k, v in batch.items()}  # this rank's 2 ids
    loss, _ = objective(forward(chunk), chunk)
    loss.backward()
    mean_loss = distributed.all_reduce_mean([float(loss)])[0]
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # The same rank's own gradient, without DDP: what the average must not be.
    local = _frozen_bn_model(4)
    local_loss, _ = build_objective(CE_ONLY, local)(local(chunk), chunk)
    local_loss.backward()
    own = {n: p.grad.clone() for n, p in local.named_parameters() if p.grad is not None}
    with open(f"{result}.{rank}", "wb") as f:
        pickle.dump({"grads": grads, "own": own, "loss": mean_loss}, f)


def test_ddp_averaged_gradients_equal_the_single_process_gradients(tmp_path):
    result = str(tmp_path / "grads")
    spawn(_gradients_worker, result)
    with one_thread():
        model = _frozen_bn_model(4)
        batch = _global_batch()
        loss, _ = build_objective(CE_ONLY, model)(model(batch), batch)
        loss.backward()
    reference = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    ranks = [pickle.loads(Path(f"{result}.{r}").read_bytes()) for r in range(2)]
    assert len(reference) > 50 and set(ranks[0]["grads"]) == set(reference)
    for r in ranks:
        assert r["loss"] == pytest.approx(float(loss.detach()), rel=1e-6)
        for name, grad in reference.items():
            torch.testing.assert_close(r["grads"][name], grad, rtol=1e-5, atol=1e-7,
                                       msg=lambda m, n=name: f"{n}: {m}")
    # Both ranks hold the same averaged gradient, and it is not either rank's own.
    assert all(torch.equal(ranks[0]["grads"][n], ranks[1]["grads"][n]) for n in reference)
    differs = [n for n in reference
               if not torch.allclose(ranks[0]["own"][n], reference[n], rtol=1e-3, atol=1e-6)]
    assert len(differs) > len(reference) // 2


# --------------------------------------------------------------------------- sharding


def _items(num_ids: int = 20, per_id: int = 6) -> list[tuple[str, int, int]]:
    return [(f"{pid}_{i}.jpg", pid, i % 2) for pid in range(num_ids) for i in range(per_id)]


class _Indices(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"index": i, PID: self.items[i][1]}


def _epoch(items, world: int, rank: int, sampler: str, epoch: int = 3) -> list[list[int]]:
    loader = EpochLoader(_Indices(items), items, batch_size=16, num_instances=4, seed=7,
                         sampler=sampler, world_size=world, rank=rank)
    return [b["index"].tolist() for b in loader(epoch)]


@pytest.mark.parametrize("sampler", ["pk", "identity_once"])
@pytest.mark.parametrize("world", [2, 4])
def test_identity_batches_are_split_in_whole_identities(sampler, world):
    items = _items()
    single = _epoch(items, 1, 0, sampler)
    shards = [_epoch(items, world, r, sampler) for r in range(world)]
    assert single and all(len(s) == len(single) for s in shards)
    for step, global_batch in enumerate(single):
        chunks = [s[step] for s in shards]
        # The ranks' chunks are the global batch of one process, in order: disjoint, covering.
        assert sum(chunks, []) == global_batch
        pids = [{items[i][1] for i in chunk} for chunk in chunks]
        assert all(len(p) == 4 // world for p in pids)  # P / W identities, K images each
        assert all(not (pids[a] & pids[b]) for a in range(world) for b in range(a + 1, world))
        for chunk in chunks:
            assert all(sum(items[i][1] == pid for i in chunk) == 4
                       for pid in {items[i][1] for i in chunk})


def test_shuffled_batches_are_split_in_contiguous_chunks():
    items = _items()
    single = _epoch(items, 1, 0, "shuffle")
    shards = [_epoch(items, 2, r, "shuffle") for r in range(2)]
    assert [a + b for a, b in zip(*shards)] == single
    assert shard_batches(list(range(10)), 4, 2, 1) == [2, 3, 6, 7]  # the last 2 are dropped


def test_a_rank_draws_the_epoch_of_the_seed_and_epoch():
    items = _items()
    assert _epoch(items, 2, 1, "pk", epoch=3) == _epoch(items, 2, 1, "pk", epoch=3)
    assert _epoch(items, 2, 1, "pk", epoch=3) != _epoch(items, 2, 1, "pk", epoch=4)
    assert SAMPLERS["pk"].groups_identities and not SAMPLERS["shuffle"].groups_identities


# --------------------------------------------------------------------------- evaluation


def _evaluation_worker(rank: int, data_root: str, result: str) -> None:
    data = load_data(tiny_cfg(), data_root)
    out = {}
    for eval_batch in (8, 32):  # 32: one query batch, so one rank has no query image at all
        cfg = tiny_cfg(**{"eval.batch_size": eval_batch})
        evaluator = build_evaluator(data, cfg, CPU)
        torch.manual_seed(5)
        model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
        out[eval_batch] = evaluator(model, per_query=True)
    # gather_rows with a rank without rows (whose feature width is unknown).
    rows = torch.arange(6.0).reshape(3, 2) if rank == 0 else torch.zeros((0, 0))
    out["gathered"] = distributed.gather_rows(rows)
    with open(f"{result}.{rank}", "wb") as f:
        pickle.dump(out, f)


def test_distributed_evaluation_equals_the_single_process_evaluation(tmp_path, synthetic_cache):
    result = str(tmp_path / "eval")
    spawn(_evaluation_worker, str(synthetic_cache), result)
    ranks = [pickle.loads(Path(f"{result}.{r}").read_bytes()) for r in range(2)]
    data = load_data(tiny_cfg(), synthetic_cache)
    for eval_batch in (8, 32):
        cfg = tiny_cfg(**{"eval.batch_size": eval_batch})
        with one_thread():
            torch.manual_seed(5)
            model = build_model(cfg.model, data.num_train_pids,
                                (cfg.data.height, cfg.data.width))
            single = build_evaluator(data, cfg, CPU)(model, per_query=True)
        assert ranks[0][eval_batch] == single  # rank 0 computes the metrics ...
        assert ranks[1][eval_batch] == {}  # ... the others only extract their shard
        assert single["after_bn"]["per_query"]["queries"] == len(data.query)
    for r in ranks:
        assert torch.equal(r["gathered"], torch.arange(6.0).reshape(3, 2))


# --------------------------------------------------------------------------- agreement


def _agreement_worker(rank: int, result: str) -> None:
    outcomes: dict[str, Any] = {}

    def fail_on(bad_rank: int) -> int:
        if distributed.rank() == bad_rank:
            raise ConfigError(f"data.batch_size: bad on rank {bad_rank}")
        return 7

    for name, run in (("agree", lambda: distributed.agree(lambda: fail_on(1))),
                      ("main_first", lambda: distributed.main_first(lambda: fail_on(0))),
                      ("fine", lambda: distributed.agree(lambda: fail_on(5)))):
        try:
            outcomes[name] = ("ok", run())
        except Exception as e:  # noqa: BLE001 -- what each rank raised is the point
            outcomes[name] = (type(e).__name__, str(e),
                              getattr(e, distributed.REPORTED_BY_MAIN, False))
    with open(f"{result}.{rank}", "wb") as f:
        pickle.dump(outcomes, f)


def test_a_failing_rank_makes_every_rank_fail_with_its_message(tmp_path):
    result = str(tmp_path / "agree")
    spawn(_agreement_worker, result)
    r0, r1 = (pickle.loads(Path(f"{result}.{r}").read_bytes()) for r in range(2))
    # Rank 1 fails: it raises its own error (printed by rank 0, so marked), rank 0 the peer's.
    assert r1["agree"] == ("ConfigError", "data.batch_size: bad on rank 1", True)
    assert r0["agree"] == ("PeerFailedError",
                           "ConfigError: data.batch_size: bad on rank 1 (on rank 1)", False)
    # Rank 0 fails first: rank 1 never runs the function and raises rank 0's message.
    assert r0["main_first"] == ("ConfigError", "data.batch_size: bad on rank 0", False)
    assert r1["main_first"][0] == "PeerFailedError" and r1["main_first"][2] is True
    assert r0["fine"] == r1["fine"] == ("ok", 7)


# --------------------------------------------------------------------------- checks


def test_sync_bn_on_cpu_is_a_config_error_before_any_data_is_read(tmp_path):
    cfg = tiny_cfg(model={"backbone": "resnet18", "sync_bn": True},
                   data={**TINY["data"], "dataset": "market1501"})
    with pytest.raises(ConfigError, match=r"model\.sync_bn: SyncBatchNorm needs CUDA.*per rank"):
        run_experiment(cfg, data_root=tmp_path / "nowhere", out=tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("batch", "k", "sampler", "world", "message"), [
    (16, 4, "pk", 3, r"data\.batch_size: 16 cannot be split over 3 processes"),
    (16, 4, "pk", 8, r"data\.batch_size: 16 = 4 identities x K=4 .* e\.g\. data\.batch_size: 32"),
    (24, 4, "identity_once", 4, r"data\.batch_size: 24 = 6 identities .* multiple of 16"),
])
def test_batches_that_cannot_be_split_are_config_errors(batch, k, sampler, world, message):
    cfg = tiny_cfg(data={**TINY["data"], "batch_size": batch, "num_instances": k,
                         "sampler": sampler})
    with pytest.raises(ConfigError, match=message):
        check_distributed(cfg, CPU, world)


def test_batches_that_can_be_split_pass():
    check_distributed(tiny_cfg(), CPU, 1)
    check_distributed(tiny_cfg(), CPU, 4)  # P = 4 over 4 ranks: one identity each
    shuffled = tiny_cfg(data={**TINY["data"], "sampler": "shuffle", "batch_size": 24},
                        loss={"terms": [{"name": "ce"}]})
    check_distributed(shuffled, CPU, 8)  # no identity structure: only the batch must divide


def _fake_checkpoint(path: Path, config_hash: str, world: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format_version": FORMAT_VERSION, "config_hash": config_hash, "epoch": 1,
                "run": {"attempt": "x"}, "distributed": {"world_size": world}}, path)


def test_resume_with_another_world_size_is_refused(tmp_path, synthetic_cache):
    cfg = tiny_cfg()
    data = load_data(cfg, synthetic_cache)
    out = tmp_path / "out"
    # A 2-process run's checkpoint (its own run id); one process asks to resume the run.
    ddp_ckpt = out / "checkpoints" / run_id_of(cfg, data, 2) / LAST
    _fake_checkpoint(ddp_ckpt, cfg.config_hash(), 2)
    with pytest.raises(RunStateError, match=r"written by a run of 2 processes \(world size 2\); "
                                            r"this run has 1 process .*torchrun "
                                            r"--nproc-per-node 2 .*--resume"):
        run_experiment(cfg, data_root=synthetic_cache, out=out, device="cpu", resume=True)
    # A checkpoint under the one-process run id that says it was written by 2 processes.
    own = out / "checkpoints" / run_id_of(cfg, data) / LAST
    _fake_checkpoint(own, cfg.config_hash(), 2)
    with pytest.raises(RunStateError, match=r"world size 2\); this run has 1 process"):
        run_experiment(cfg, data_root=synthetic_cache, out=out, device="cpu", resume=True)
    assert not (out / "runs").exists() or not list((out / "runs").iterdir())


def test_the_checkpointer_refuses_another_world_size(tmp_path):
    from reid_core.engine.checkpoint import RunClock
    from reid_core.engine.hooks import Checkpointer
    from reid_core.engine.trainer import TrainState

    path = tmp_path / LAST
    _fake_checkpoint(path, "abc", 4)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    state = TrainState(model, opt, torch.optim.lr_scheduler.StepLR(opt, 1), CPU.grad_scaler(), 2)
    hook = Checkpointer(path, "abc", RunClock.fresh(), resume=True)
    with pytest.raises(WeightMismatchError, match="4 processes"):
        hook.before_train(state)
    hook.after_train(state)


def test_a_torchrun_launch_without_a_process_group_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(distributed.DistributedLaunchError, match="only `python -m reid_core "
                                                                 "train`"):
        run_experiment(tiny_cfg(), out=tmp_path, device="cpu")


@pytest.mark.parametrize("command", [["evaluate", "some-run", "--dataset", "synthetic-tiny"],
                                     ["visualize", "some-run"], ["datasets"]])
def test_commands_other_than_train_refuse_a_torchrun_launch(command, monkeypatch, capsys):
    """Each of torchrun's processes would evaluate (and write) the same thing: one clear line,
    before anything is read."""
    from reid_core.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(command) == 2
    assert "only `python -m reid_core train` trains one run" in capsys.readouterr().out


def test_a_reproduce_script_refuses_a_torchrun_launch(tmp_path, monkeypatch, capsys):
    from reid_core.app.reproduce import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main("rga_table1", ["--out", str(tmp_path)], run_row=lambda *a: pytest.fail()) == 2
    assert "only `python -m reid_core train` trains one run" in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


# --------------------------------------------------------------------------- identity, report


def test_one_process_identity_and_record_field():
    cfg = tiny_cfg()
    assert distributed.world_size() == 1 and distributed.gather_rows(torch.ones(2)).shape == (2,)
    assert distributed_record(cfg, 1) == {"world_size": 1, "per_rank_batch": 16,
                                          "backend": None, "bn_mode": "single_process"}
    single = {"config": cfg.to_dict(), "dataset": {"identity": {"dataset": "x"}},
              "run_identity": {"dataset": "x"}}
    ddp = {**single, "run_identity": {"dataset": "x", "world_size": "2"}}
    assert recipe_key(single) != recipe_key(ddp)  # another number of processes: another recipe
    assert recipe_key(single) == recipe_key({**single, "run_identity": {"dataset": "x"},
                                             "distributed": {"world_size": 1}})


def test_report_header_says_how_many_processes(tmp_path):
    ddp = {"world_size": 2, "per_rank_batch": 16, "backend": "gloo",
           "bn_mode": "per_rank_bn_averaged"}
    records = [report_record("rga_baseline", 0), report_record("rga_baseline", 1),
               {**report_record("rga_s", 0), "distributed": ddp},
               {**report_record("rga_s", 1), "distributed": {**ddp, "bn_mode": "sync_bn"}}]
    text = header(render_report("rga_table1", records, tmp_path).read_text())
    line = next(line for line in text.splitlines() if line.startswith("- **Processes:**"))
    assert line == ("- **Processes:** 1 process (2 runs), 2 processes (DDP, per-rank batch 16, "
                    "BN averaged before eval) (1 run), 2 processes (DDP, per-rank batch 16, "
                    "SyncBN) (1 run)")
    assert _processes_text({"distributed": {"world_size": 1}}) == "1 process"
    assert set(_BN_MODE_TEXT) == set(distributed.BN_MODES) - {"single_process"}
