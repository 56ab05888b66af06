"""Table sweeps through submitit's local executor: the same records as in-process runs, bounded
concurrency, requeue on preemption, resubmission of a killed job, claims between sweeps."""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from test_engine import tiny_cfg

from reid_core.app.experiment import run_experiment
from reid_core.app.sweep import (
    SweepOptions, add_sweep_arguments, plan_runs, submit_sweep, sweep_options, wait_for)
from reid_core.config import ConfigError
from reid_core.engine.checkpoint import read_checkpoint
from reid_core.results.claims import (
    RunBusyError, RunLock, SweepClaim, live_claim, write_claim)
from reid_core.results.store import RunStore

pytest.importorskip("submitit")


def cfg_of(name: str = "tiny_a", seed: int = 0, epochs: int = 2, **data: Any):
    """test_engine's tiny config, without evaluations during training."""
    return tiny_cfg(name=name, seed=seed, **{"optim.epochs": epochs, "eval.every": 0},
                    **{f"data.{key}": value for key, value in data.items()})


#: Two rows (the second with open-reid's identity-once sampler) x two seeds.
def table_configs() -> list[Any]:
    return [cfg_of(name, seed, **extra) for name, extra in
            (("tiny_a", {}), ("tiny_b", {"sampler": "identity_once"})) for seed in (0, 1)]


def namespace(out: Path, root: Path, force: bool = False) -> argparse.Namespace:
    return argparse.Namespace(out=str(out), data_root=str(root), device="cpu", profile="smoke",
                              force=force)


def options(**over: Any) -> SweepOptions:
    base = dict(executor="local", timeout_min=10, local_parallel=2, threads_per_job=1,
                poll_s=0.5)
    return SweepOptions(**{**base, **over})


def same_run(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two records of one run: same id, same metrics, same losses epoch by epoch."""
    assert a["run_id"] == b["run_id"]
    assert a["final"] == b["final"]
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("time_s", "images_per_s")}
                       for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, synthetic_cache) -> dict[str, dict[str, Any]]:
    """The table's runs trained in this process, plus the 3-epoch run the interruption tests
    use: run id -> record."""
    import torch

    out = tmp_path_factory.mktemp("in-process")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the jobs (--threads-per-job 1): CPU sums depend on it
    try:
        records = [run_experiment(c, data_root=synthetic_cache, out=out, device="cpu")
                   for c in [*table_configs(), cfg_of("tiny_a", 5, epochs=3)]]
    finally:
        torch.set_num_threads(threads)
    return {r["run_id"]: r for r in records}


def test_a_local_sweep_makes_the_records_of_in_process_runs(tmp_path, synthetic_cache,
                                                             in_process) -> None:
    out = tmp_path / "results"
    args = namespace(out, synthetic_cache)
    sub = submit_sweep("tiny_table", table_configs(), args, options(), Console())
    assert [p.status for p in sub.plan] == ["submit"] * 4 and len(sub.jobs) == 4
    # Every job got an explicit limit, and the local ones are bounded by two slots.
    assert all(len(spec.slots) == 2 and spec.threads == 1 for spec in sub.specs)
    # A second sweep of the same table while the jobs run submits nothing.
    again = plan_runs(table_configs(), out, args.data_root, force=False)
    assert all(p.status.startswith(("claimed by local job", "being trained", "done"))
               for p in again), [p.status for p in again]
    finished = wait_for(sub, options(), Console())
    assert sorted(finished) == sorted(p.run_id for p in sub.plan)
    store = RunStore(out)
    for run_id in finished:
        same_run(json.loads(store.record_path(run_id).read_text()), in_process[run_id])
    # Finished: a third sweep finds every run done.
    assert [p.status for p in plan_runs(table_configs(), out, args.data_root, False)] == \
        ["done"] * 4


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), nearest first."""
    parent_of = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parent_of.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _job_process(controller: int) -> int:
    """The job's Python process (``submitit.core._submit``; the local executor runs it under
    a shell when the job has setup lines)."""
    for pid in _descendants(controller):
        try:
            if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise AssertionError(f"no submitit job process under controller {controller}")


def _wait_for_checkpoint(out: Path, run_id: str, epoch: int, timeout_s: float = 120) -> None:
    path = RunStore(out).run(run_id).checkpoint
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        if path.is_file():
            try:
                if read_checkpoint(path, mmap=True)["epoch"] >= epoch:
                    return
            except Exception:  # noqa: BLE001 (being replaced: look again)
                pass
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint of epoch {epoch} at {path} after {timeout_s} s")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the job's process in /proc")
@pytest.mark.parametrize("how", ["preempted", "killed"])
def test_an_interrupted_job_finishes_its_run_exactly(tmp_path, synthetic_cache, in_process,
                                                     how: str) -> None:
    """Preempted (SIGUSR2, what Slurm sends before a time limit): submitit's checkpoint
    protocol requeues the job. Killed (SIGKILL, no chance to checkpoint): the waiting sweep
    resubmits it. Either way the run resumes from its last epoch checkpoint and its record is
    the uninterrupted run's."""
    out = tmp_path / "results"
    cfg = cfg_of("tiny_a", 5, epochs=3)
    sub = submit_sweep("tiny_table", [cfg], namespace(out, synthetic_cache), options(),
                       Console())
    run_id = sub.todo[0].run_id
    _wait_for_checkpoint(out, run_id, epoch=1)
    controller = int(sub.jobs[0].job_id)
    task = _job_process(controller)
    if how == "preempted":
        os.kill(task, signal.SIGUSR2)
    else:  # the whole job, as a lost node would: nothing can checkpoint
        for pid in [controller, *_descendants(controller)]:
            os.kill(pid, signal.SIGKILL)
    finished = wait_for(sub, options(), Console())
    assert finished == [run_id]
    record = json.loads(RunStore(out).record_path(run_id).read_text())
    assert record["resumed_from_epoch"] >= 1
    same_run(record, in_process[run_id])


def test_a_run_being_trained_is_not_taken_twice(tmp_path) -> None:
    with RunLock(tmp_path, "r-seed0-abc"):
        with pytest.raises(RunBusyError, match=r"r-seed0-abc is being trained by another "
                                               r"process \(host .*, pid \d+"):
            with RunLock(tmp_path, "r-seed0-abc"):
                pass
        assert live_claim(tmp_path, "r-seed0-abc").startswith("being trained (host")
    assert live_claim(tmp_path, "r-seed0-abc") is None  # released


def test_a_sweep_claim_stands_until_its_job_ends_or_expires(tmp_path) -> None:
    import socket

    now = time.time()

    def claim(**over: Any) -> SweepClaim:
        base = dict(run_id="r", executor="slurm", job_id="123_4", folder=str(tmp_path),
                    host=socket.gethostname(), submitted_at=now, expires_at=now + 60)
        return SweepClaim(**{**base, **over})

    write_claim(tmp_path, claim())
    assert live_claim(tmp_path, "r").startswith("claimed by slurm job 123_4")
    assert live_claim(tmp_path, "r", now=now + 61) is None  # expired
    (tmp_path / "123_4_0_result.pkl").write_bytes(b"")  # the job ended
    assert live_claim(tmp_path, "r") is None
    write_claim(tmp_path, claim(executor="local", job_id=str(os.getpid())))
    assert live_claim(tmp_path, "r") is not None  # a live local controller
    dead = max(int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()) + 10_000
    write_claim(tmp_path, claim(executor="local", job_id=str(dead)))
    assert live_claim(tmp_path, "r") is None  # its process is gone


def _parse(argv: list[str]) -> SweepOptions:
    p = argparse.ArgumentParser()
    add_sweep_arguments(p)
    args, extra = p.parse_known_args(argv)
    return sweep_options(args, extra)


def test_scheduler_flags() -> None:
    o = _parse(["--executor", "slurm", "--partition", "gpu", "--gpus-per-job", "2",
                "--timeout-min", "90", "--slurm-qos", "high", "--slurm-account=proj",
                "--array-parallelism", "8", "--no-wait"])
    assert (o.executor, o.partition, o.gpus_per_job, o.timeout_min, o.array_parallelism,
            o.wait) == ("slurm", "gpu", 2, 90, 8, False)
    assert o.slurm_extra == {"slurm_qos": "high", "slurm_account": "proj"}
    assert _parse([]).inline and _parse(["--executor", "local"]).local_parallel >= 1
    with pytest.raises(ConfigError, match="--slurm-qos: Slurm options need --executor slurm"):
        _parse(["--executor", "local", "--slurm-qos", "high"])
    with pytest.raises(ConfigError, match="unrecognized arguments: --bogus 1"):
        _parse(["--bogus", "1"])
    with pytest.raises(ConfigError, match="--slurm-qos needs a value"):
        _parse(["--executor", "slurm", "--slurm-qos"])
    with pytest.raises(ConfigError, match="--timeout-min must be positive"):
        _parse(["--executor", "local", "--timeout-min", "0"])


def test_reproduce_scripts_take_the_scheduler_flags(capsys) -> None:
    from reid_core.app.reproduce import main

    # A parameter-count table is measured in seconds here: no scheduler.
    assert main("rga_table3", ["--executor", "local"]) == 2
    assert "--executor local: rga_table3 is a parameters table" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # a usage error, as argparse reports one
        main("rga_table1", ["--executor", "local", "--slurm-qos", "high"])
    assert exit_info.value.code == 2
    assert "Slurm options need --executor slurm" in capsys.readouterr().err


def test_a_job_of_several_processes_trains_its_run_with_ddp(tmp_path, synthetic_cache) -> None:
    """--gpus-per-job 2 on this CPU machine: submitit starts 2 tasks, the job exports the
    torchrun variables and the run trains as one 2-process DDP run (gloo), its own run id."""
    out = tmp_path / "results"
    cfg = cfg_of("tiny_a", 0, epochs=1)
    opts = options(gpus_per_job=2, local_parallel=1)
    sub = submit_sweep("tiny_table", [cfg], namespace(out, synthetic_cache), opts, Console())
    (run_id,) = wait_for(sub, opts, Console())
    record = json.loads(RunStore(out).record_path(run_id).read_text())
    assert record["distributed"]["world_size"] == 2
    assert record["distributed"]["backend"] == "gloo"
    single = plan_runs([cfg], out, str(synthetic_cache), force=False)[0].run_id
    assert single != run_id  # one process would be another run


def test_job_states_are_read_by_their_first_word() -> None:
    from reid_core.app.sweep import _FINISHED, _state

    class Job:
        def __init__(self, state: str) -> None:
            self.state = state

    assert _state(Job("CANCELLED by 1234")) in _FINISHED
    # submitit's local job without a process: over, not a state to wait on forever.
    assert _state(Job("NO PROCESS AND NO RESULT")) in _FINISHED
    assert _state(Job("running")) == "RUNNING" and _state(Job("")) == "UNKNOWN"
