"""A table's runs as scheduler jobs through submitit: one job per (row, seed) not yet finished.

``python reproduce/<table>.py --executor slurm|local [...]`` (and ``python -m reid_core
reproduce <table> --executor ...``) hands the table's runs to a scheduler instead of training
them in this process (``--executor inline``, the default):

1. **plan**: each row config × seed gets its run id (config and data identity, as a run computes
   it); runs with a record are done, runs claimed by another sweep or being trained elsewhere
   are left to it (:mod:`reid_core.results.claims`), the rest are submitted;
2. **submit**: one submitit job per run, one job array (Slurm: ``sbatch --array`` with
   ``--array-parallelism``); each job is a :class:`RunJob`, ``submitit``'s checkpoint protocol:
   on preemption or at its time limit the job is requeued and the run resumes from its last
   epoch checkpoint, exactly (the core's resume). A claim is written per submitted run;
3. **wait** (default) with a live view of the jobs (queued / running / done / failed, each
   failure's log), resubmitting a job that died without a result (killed, node lost) up to
   ``--max-retries`` times; or return at once (``--no-wait``) and gather the records later with
   ``python -m reid_core report <table>`` or by running the same command again.

The **local executor** (submitit's, for this machine and for tests) starts every job at once
and hides the GPUs unless asked; here each job also takes one of ``--local-parallel`` slots (a
file lock in the sweep folder) before it trains, so at most that many train at a time, each with
``--threads-per-job`` threads (``OMP_NUM_THREADS``), and every job gets an explicit time limit.

Layering: application layer (uses the core's ``run_experiment`` and the results store).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from reid_core.config import ConfigError, RunConfig, config_from_dict
from reid_core.results.claims import SweepClaim, live_claim, write_claim
from reid_core.results.store import RunStore

__all__ = ["EXECUTORS", "RunJob", "Submission", "SweepOptions", "add_sweep_arguments",
           "plan_runs", "run_sweep", "submit_sweep", "sweep_options", "wait_for"]

#: ``--executor``: ``inline`` trains in this process (no scheduler); the others go through
#: submitit's executor of that name.
EXECUTORS: Final[tuple[str, ...]] = ("inline", "local", "slurm")
#: Job states submitit reports that mean the job is over (Slurm's and the local executor's).
_FINISHED: Final[frozenset[str]] = frozenset({
    "COMPLETED", "FINISHED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE", "INTERRUPTED", "NO PROCESS AND NO RESULT"})
_QUEUED: Final[frozenset[str]] = frozenset({"PENDING", "REQUEUED", "CONFIGURING", "UNKNOWN"})
#: How long a claim outlives its job's time limit (scheduling delays, requeue gaps).
CLAIM_GRACE_S: Final[float] = 3600.0
#: Requeues submitit grants a checkpointable job on preemption / timeout (its default).
MAX_REQUEUES: Final[int] = 3


@dataclass(frozen=True)
class SweepOptions:
    """How a table's runs are handed to a scheduler (the ``--executor`` flags)."""

    executor: str = "inline"
    #: submitit's folder (job pickles, logs, results); default ``<out>/sweeps/<table>``.
    folder: Path | None = None
    timeout_min: int = 24 * 60
    partition: str | None = None
    gpus_per_job: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    array_parallelism: int = 256
    #: ``--slurm-<key> value`` passed on as submitit's ``slurm_<key>`` (e.g. ``slurm_qos``).
    slurm_extra: dict[str, str] = field(default_factory=dict)
    wait: bool = True
    #: Local executor: jobs training at once, threads each.
    local_parallel: int = 1
    threads_per_job: int | None = None
    #: Resubmissions of a job that ended without a result (killed, lost), while waiting.
    max_retries: int = 2
    #: Seconds between two looks at the jobs while waiting.
    poll_s: float = 5.0

    @property
    def inline(self) -> bool:
        return self.executor == "inline"

    @property
    def job_threads(self) -> int | None:
        """Threads of each job: ``threads_per_job``; else 1 on the local executor (which starts
        every job at once), else None (as the scheduler's allocation sets them)."""
        return self.threads_per_job or (1 if self.executor == "local" else None)


# --------------------------------------------------------------------------- CLI


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    """The scheduler flags of the reproduce scripts (``--slurm-*`` come through
    :func:`sweep_options`' ``extra``)."""
    g = p.add_argument_group("running the table's runs as scheduler jobs (submitit)")
    g.add_argument("--executor", choices=EXECUTORS, default="inline",
                   help="inline: train here, one run after the other (default); local: "
                        "submitit jobs on this machine; slurm: one Slurm job array")
    g.add_argument("--no-wait", action="store_true",
                   help="submit and return; gather the records later with `python -m "
                        "reid_core report <table>` or by running the same command again")
    g.add_argument("--timeout-min", type=int, default=24 * 60,
                   help="time limit of each job in minutes (default 1440); a job reaching it "
                        "checkpoints and is requeued")
    g.add_argument("--partition", default=None, help="Slurm partition")
    g.add_argument("--gpus-per-job", type=int, default=0,
                   help="GPUs per job (> 1: one DDP process per GPU)")
    g.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per job process")
    g.add_argument("--mem-gb", type=float, default=None, help="memory per job (GB)")
    g.add_argument("--array-parallelism", type=int, default=256,
                   help="Slurm: jobs of the array running at once (default 256)")
    g.add_argument("--local-parallel", type=int, default=None,
                   help="local executor: jobs training at once (default: CPU cores / "
                        "--threads-per-job, at least 1)")
    g.add_argument("--threads-per-job", type=int, default=None,
                   help="local executor: OMP / torch threads per job (default 1)")
    g.add_argument("--max-retries", type=int, default=2,
                   help="while waiting: resubmit a job that died without a result this many "
                        "times (default 2)")
    g.add_argument("--sweep-folder", default=None,
                   help="submitit folder (default <out>/sweeps/<table-id>)")


def sweep_options(args: argparse.Namespace, extra: Sequence[str]) -> SweepOptions:
    """The options of ``args``; ``extra``: the unparsed ``--slurm-<key> <value>`` pairs.

    Raises:
        ConfigError: a malformed ``--slurm-*`` pair, or a bad number.
    """
    slurm: dict[str, str] = {}
    unknown: list[str] = []
    items = list(extra)
    while items:
        flag = items.pop(0)
        key, eq, value = flag.partition("=")
        if not key.startswith("--slurm-") or len(key) == len("--slurm-"):
            unknown.append(flag)
            continue
        if not eq:
            if not items or items[0].startswith("--"):
                raise ConfigError(f"{key} needs a value (--slurm-<key> <value>)")
            value = items.pop(0)
        slurm["slurm_" + key.removeprefix("--slurm-").replace("-", "_")] = value
    if unknown:
        raise ConfigError(f"unrecognized arguments: {' '.join(unknown)} (other Slurm options "
                          f"go through as --slurm-<key> <value>)")
    for name in ("timeout_min", "array_parallelism", "max_retries"):
        if getattr(args, name) < (1 if name != "max_retries" else 0):
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got "
                              f"{getattr(args, name)}")
    threads = args.threads_per_job or 1
    parallel = args.local_parallel or max(1, (os.cpu_count() or 1) // threads)
    if parallel < 1 or threads < 1:
        raise ConfigError("--local-parallel and --threads-per-job must be >= 1")
    if slurm and args.executor != "slurm":
        raise ConfigError(f"{', '.join('--' + k.replace('_', '-') for k in slurm)}: Slurm "
                          f"options need --executor slurm")
    return SweepOptions(
        executor=args.executor, folder=Path(args.sweep_folder) if args.sweep_folder else None,
        timeout_min=args.timeout_min, partition=args.partition, gpus_per_job=args.gpus_per_job,
        cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
        array_parallelism=args.array_parallelism, slurm_extra=slurm, wait=not args.no_wait,
        local_parallel=parallel, threads_per_job=args.threads_per_job,
        max_retries=args.max_retries)


# --------------------------------------------------------------------------- the job


@dataclass(frozen=True)
class JobSpec:
    """What one job needs (paths and plain data: submitit pickles one per job)."""

    run_id: str
    config: dict[str, Any]
    out: str
    data_root: str | None
    device: str
    profile: str
    force: bool
    threads: int | None = None
    #: Local executor: the slot files of the sweep (one is held while training).
    slots: tuple[str, ...] = ()


class RunJob:
    """One run as a submitit job: hold the run's lock (and a local slot), train or resume it.

    Requeue-safe through submitit's checkpoint protocol (:meth:`checkpoint`): the resubmitted
    call resumes the run from its last epoch checkpoint, as any interrupted run does."""

    def __call__(self, spec: JobSpec) -> str:
        if spec.threads:
            import torch

            torch.set_num_threads(spec.threads)
        from reid_core.app.experiment import run_experiment
        from reid_core.utils import distributed

        cfg = config_from_dict(spec.config, f"sweep job of {spec.run_id}")
        rank = _export_distributed_env()
        # One DDP job is one run: its first process takes the local slot (and, inside
        # run_experiment, the run's lock); the others join it in the process group.
        with _LocalSlot(spec.slots if rank == 0 else ()), distributed.session(spec.device):
            run_experiment(cfg, data_root=spec.data_root, out=spec.out, device=spec.device,
                           resume=True, force=spec.force, profile=spec.profile,
                           note_fresh_start=False)
        return spec.run_id

    def checkpoint(self, spec: JobSpec) -> Any:
        """Preempted or at the time limit: requeue the same call (which resumes the run)."""
        import submitit

        # A --force run that was already started continues its attempt instead of restarting.
        return submitit.helpers.DelayedSubmission(RunJob(), dataclasses.replace(spec, force=False))


def _export_distributed_env() -> int:
    """In a job of several tasks (``--gpus-per-job N``: one process per GPU), export the
    torchrun variables (``MASTER_ADDR``, ``RANK``, ``WORLD_SIZE``, ...) from submitit's job
    environment, so the run's DDP starts from ``env://``; return this process's rank (0 for a
    single-task job)."""
    import submitit

    try:
        env = submitit.JobEnvironment()
    except RuntimeError:  # not inside a submitit job (called directly, e.g. in a test)
        return 0
    if env.num_tasks <= 1:
        return 0
    submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return env.global_rank


class _LocalSlot:
    """Hold one of the sweep's slot locks (``filelock``), waiting until one is free; no slots:
    nothing to hold. Bounds the local executor, which starts every job at once."""

    def __init__(self, slots: Sequence[str]) -> None:
        self.slots, self._lock = list(slots), None

    def __enter__(self) -> _LocalSlot:
        from filelock import FileLock, Timeout

        while self.slots:
            for path in self.slots:
                lock = FileLock(path)
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                self._lock = lock
                return self
            time.sleep(1.0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedRun:
    cfg: RunConfig
    run_id: str
    #: ``submit``, ``done`` (a record exists) or why it is left alone (claimed elsewhere).
    status: str

    @property
    def label(self) -> str:
        return f"{self.cfg.name} seed {self.cfg.seed}"


def plan_runs(configs: Sequence[RunConfig], out: Path, data_root: str | None,
              force: bool, world_size: int = 1) -> list[PlannedRun]:
    """Each config's run id (trained by ``world_size`` processes) and whether to submit it
    (see the module docstring).

    Each dataset is loaded once (its identity is part of the run id)."""
    from reid_core.app.experiment import check_buildable, load_data, run_id_of

    store, datasets, checked, plan = RunStore(out), {}, set(), []
    for cfg in configs:
        recipe = dataclasses.replace(cfg, seed=0).config_hash()  # the seeds of a row: one check
        if recipe not in checked:
            check_buildable(cfg)
            checked.add(recipe)
        key = (cfg.data.dataset, cfg.data.root, cfg.data.split)
        if key not in datasets:
            datasets[key] = load_data(cfg, data_root)
        run_id = run_id_of(cfg, datasets[key], world_size)
        claim = live_claim(out, run_id)
        if claim is not None:
            status = claim
        elif store.record_path(run_id).is_file() and not force:
            status = "done"
        else:
            status = "submit"
        plan.append(PlannedRun(cfg, run_id, status))
    return plan


# --------------------------------------------------------------------------- submitting


def _executor(options: SweepOptions, folder: Path) -> Any:
    """The submitit executor with the options' parameters."""
    import submitit

    if options.executor == "slurm":
        ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
        params: dict[str, Any] = {"timeout_min": options.timeout_min,
                                  "slurm_array_parallelism": options.array_parallelism,
                                  "name": "reid-bench"}
        if options.partition:
            params["slurm_partition"] = options.partition
        ex.update_parameters(**params, **options.slurm_extra)
    else:
        ex = submitit.AutoExecutor(folder=folder, cluster="local")
        ex.update_parameters(timeout_min=options.timeout_min, name="reid-bench",
                             local_setup=[f"export OMP_NUM_THREADS={options.job_threads}"])
    if options.gpus_per_job:
        ex.update_parameters(gpus_per_node=options.gpus_per_job,
                             tasks_per_node=options.gpus_per_job)
    for key, value in (("cpus_per_task", options.cpus_per_task), ("mem_gb", options.mem_gb)):
        if value is not None:
            ex.update_parameters(**{key: value})
    return ex


def _specs(plan: Sequence[PlannedRun], args: argparse.Namespace, options: SweepOptions,
           folder: Path) -> list[JobSpec]:
    slots: tuple[str, ...] = ()
    if options.executor == "local":
        slot_dir = folder / "slots"
        slot_dir.mkdir(parents=True, exist_ok=True)
        slots = tuple(str(slot_dir / f"slot-{i}.lock") for i in range(options.local_parallel))
    return [JobSpec(run_id=p.run_id, config=p.cfg.to_dict(), out=str(Path(args.out).resolve()),
                    data_root=args.data_root, device=args.device, profile=args.profile,
                    force=args.force, threads=options.job_threads, slots=slots)
            for p in plan]


def _submit(ex: Any, specs: Sequence[JobSpec], options: SweepOptions, folder: Path,
            out: Path) -> list[Any]:
    """Submit ``specs`` as one job array and write a claim per run."""
    jobs = ex.map_array(RunJob(), list(specs))
    now = time.time()
    limit = options.timeout_min * 60 * (MAX_REQUEUES + 1) + CLAIM_GRACE_S
    for spec, job in zip(specs, jobs):
        write_claim(out, SweepClaim(run_id=spec.run_id, executor=options.executor,
                                    job_id=str(job.job_id), folder=str(folder),
                                    host=socket.gethostname(), submitted_at=now,
                                    expires_at=now + limit))
    return list(jobs)


@dataclass
class Submission:
    """The jobs of one sweep: the runs submitted, their job specs and submitit jobs."""

    table_id: str
    plan: list[PlannedRun]
    todo: list[PlannedRun]
    specs: list[JobSpec]
    jobs: list[Any]
    executor: Any
    folder: Path
    out: Path


def submit_sweep(table_id: str, configs: Sequence[RunConfig], args: argparse.Namespace,
                 options: SweepOptions, console: Console) -> Submission:
    """Plan the runs of ``configs`` and submit those to do (one job array, one claim each)."""
    out = Path(args.out)
    folder = (options.folder or out / "sweeps" / table_id).resolve()
    # --gpus-per-job N > 1 trains each run with N DDP processes: another run id.
    plan = plan_runs(configs, out, args.data_root, args.force, max(1, options.gpus_per_job))
    console.print(_plan_table(table_id, plan))
    todo = [p for p in plan if p.status == "submit"]
    if not todo:
        console.print("nothing to submit")
        return Submission(table_id, plan, [], [], [], None, folder, out)
    ex = _executor(options, folder)
    specs = _specs(todo, args, options, folder)
    jobs = _submit(ex, specs, options, folder, out)
    console.print(f"submitted {len(jobs)} {options.executor} job(s) "
                  f"({', '.join(str(j.job_id) for j in jobs[:3])}{' ...' if len(jobs) > 3 else ''}"
                  f"); logs in {folder}")
    return Submission(table_id, plan, todo, specs, jobs, ex, folder, out)


def run_sweep(table_id: str, configs: Sequence[RunConfig], args: argparse.Namespace,
              options: SweepOptions, console: Console) -> list[str]:
    """Plan, submit and (unless ``--no-wait``) wait for the runs of ``configs``; return the
    run ids whose records exist when it returns."""
    sub = submit_sweep(table_id, configs, args, options, console)
    done = [p.run_id for p in sub.plan if p.status == "done"]
    if not sub.jobs:
        return done
    if not options.wait:
        console.print(f"not waiting (--no-wait): `python -m reid_core report {table_id}` "
                      f"gathers the records, or run the same command again to see or finish "
                      f"what is missing")
        return done
    return done + wait_for(sub, options, console)


def wait_for(sub: Submission, options: SweepOptions, console: Console) -> list[str]:
    """Watch the jobs until all are over, resubmitting those that died without a result (up
    to ``max_retries`` each); return the run ids that have records, and name the failures."""
    todo, jobs = sub.todo, sub.jobs
    retries = [0] * len(jobs)
    store = RunStore(sub.out)
    with Live(console=console, refresh_per_second=1) as live:
        while True:
            states = [_state(j) for j in jobs]
            recorded = [store.record_path(p.run_id).is_file() for p in todo]
            for i, (job, state) in enumerate(zip(jobs, states)):
                if (state in _FINISHED and not recorded[i]
                        and not job.paths.result_pickle.exists()
                        and retries[i] < options.max_retries):
                    retries[i] += 1  # died without a result: killed, or its node was lost
                    jobs[i] = _submit(sub.executor, [sub.specs[i]], options, sub.folder,
                                      sub.out)[0]
                    states[i] = _state(jobs[i])
            live.update(_jobs_table(todo, jobs, states, recorded, retries))
            if all(state in _FINISHED for state in states):
                break
            time.sleep(options.poll_s)
    ok = []
    for plan, job in zip(todo, jobs):
        if store.record_path(plan.run_id).is_file():
            ok.append(plan.run_id)
        else:
            error = _last_error(job)
            console.print(f"[bold red]failed[/] {escape(plan.label)} ({plan.run_id}), job "
                          f"{job.job_id}: log {job.paths.stderr}"
                          + (f"\n  {escape(error)}" if error else ""))
    return ok


def _state(job: Any) -> str:
    """The job's state: a known state as it is (the local executor's ``NO PROCESS AND NO
    RESULT``), else its first word (Slurm says ``CANCELLED by 1234``)."""
    try:
        state = " ".join(str(job.state).upper().split())
    except Exception:  # noqa: BLE001 (a scheduler that cannot be asked: keep looking)
        return "UNKNOWN"
    if state in _FINISHED or state in _QUEUED:
        return state
    return state.split(" ", 1)[0] or "UNKNOWN"


def _last_error(job: Any) -> str:
    """The last line of a failed job's stderr (its exception), if any."""
    try:
        text = job.stderr() or ""
    except Exception:  # noqa: BLE001
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _plan_table(table_id: str, plan: Sequence[PlannedRun]) -> Table:
    t = Table(title=f"{table_id}: {len(plan)} run(s)")
    for col in ("row config", "seed", "run id", "status"):
        t.add_column(col)
    for p in plan:
        t.add_row(p.cfg.name, str(p.cfg.seed), p.run_id, p.status)
    return t


def _jobs_table(todo: Sequence[PlannedRun], jobs: Sequence[Any], states: Sequence[str],
                recorded: Sequence[bool], retries: Sequence[int]) -> Table:
    """One line per job (its scheduler ``states`` and whether its run has a record, read once
    per look), counts as the title."""
    counts: dict[str, int] = {}
    t = Table()
    for col in ("run", "job", "state", "log"):
        t.add_column(col)
    for i, (plan, job, state) in enumerate(zip(todo, jobs, states)):
        if recorded[i]:
            shown = "done"
        elif state in _FINISHED:
            shown = "failed"
        elif state in _QUEUED:
            shown = "queued"
        else:
            shown = "running"
        counts[shown] = counts.get(shown, 0) + 1
        again = f" (resubmitted {retries[i]}x)" if retries[i] else ""
        t.add_row(plan.label, str(job.job_id), shown + again,
                  str(job.paths.stderr) if shown == "failed" else "")
    t.title = " · ".join(f"{k} {counts.get(k, 0)}"
                         for k in ("queued", "running", "done", "failed"))
    return t
