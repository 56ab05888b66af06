"""Training at the speed of a bare step: the suite's trainer next to a bare torchvision step.

Usage::

    python benchmarks/trainer_speed.py                        # 3 alternating repeats of each
    python benchmarks/trainer_speed.py --repeats 5 --epochs 6 --threads 2
    python benchmarks/trainer_speed.py --breakdown            # + where a step's time goes
    git archive fb39cea | tar -x -C /tmp/before               # another version of reid_core:
    python benchmarks/trainer_speed.py --compare-tree /tmp/before   # its trainer alongside

Writes ``results/benchmarks/trainer_speed.json`` and ``trainer_speed.md`` (atomically; ``--out``
to choose).

What runs (each measurement in its own fresh subprocess, both with ``torch.set_num_threads(
--threads)``, bare and trainer alternating so that a disturbance by other processes hits both):

* **bare**: a torchvision training step and nothing else. ``torchvision.models.resnet18``
  (random init, last stride 1, ``fc`` removed) -> BNNeck (BatchNorm1d with frozen bias,
  bias-free 512 x 100 linear classifier), 64 x 32 input, batch 32 with P x K = 8 x 4 labels,
  cross-entropy (label smoothing 0.1) + batch-hard triplet (margin 0.3) on the pre-BN feature,
  ``torch.optim.Adam`` (lr 8e-4, weight decay 5e-4), on random tensors made before the clock
  starts; ``zero_grad`` / ``backward`` / ``step``, no logging, no ``float(loss)``. Written here
  from torchvision and torch alone (no ``reid_core`` code), in "epochs" of as many steps as
  the trainer's epoch has, under ``torch.use_deterministic_algorithms(True)`` as the suite
  runs (``--bare-nondeterministic`` to drop it).
* **trainer**: ``reid_core.app.training.train`` -- the loop, per-epoch loader, objective,
  hooks (non-finite guard, progress bar and log line rendered to a terminal console that
  writes to /dev/null, a checkpoint after every epoch, written in the background) -- on the ``rga_baseline`` row of
  ``configs/papers/rga.yaml``, scratch profile (the smoke run from random init;
  ``synthetic-small``: 1,085 train images of 100 ids, ResNet-18 BNNeck, 64 x 32, P x K 8 x 4, RGA augmentation, Adam), seeded and
  deterministic exactly as ``run_experiment`` runs it, for ``--epochs`` epochs (default: the
  profile's 6). Checkpoints go to a temporary directory.

Warm-up: the first epoch of both is excluded (the trainer decodes and caches the images in its
first epoch; both grow the allocator and the thread pools). Reported, over the remaining epochs:

* ``loop``: images / seconds inside the training loop, what the trainer's history reports as
  ``images_per_s`` (data loading, augmentation, collation, forward, loss, backward, step,
  per-step hooks);
* ``cycle`` (trainer only): images / the whole epoch cycle -- the loop plus the epoch's log
  line, its checkpoint's snapshot (the write, atomic and fsync'ed, runs in a background
  thread during the next epoch: its cost shows in the loop) and building the next loader;
* ``cpu/wall``: process CPU time over wall time in the timed epochs; about ``--threads`` when
  the process had its cores to itself, lower when other processes took them.

The ratio is trainer / bare, of the best repeat of each (the least disturbed) and of the
medians. With ``--breakdown`` one more subprocess of each runs with perf_counter timers around
each part of a step (the clock calls cost well under 1 us each; no profiler).
The machine (a shared 2-core VM here) is recorded with the 1-minute load average before and
after every subprocess. Timings are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLE = "rga_table1"
ROW = "rga_baseline"
#: The smoke profile from random init: the same model, data and step as ``smoke`` (weights do
#: not change a step's cost), 6 epochs, and no pretrained trunk to make on a fresh machine.
PROFILE = "scratch"


# ---------------------------------------------------------------------------------------------
# Clocks: wall, this process's CPU, and the whole machine's busy CPU (Linux /proc/stat)
# ---------------------------------------------------------------------------------------------


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all cores; user, nice, system, irq,
    softirq, steal), or None where /proc/stat is unavailable."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def mark() -> tuple[float, float, float | None]:
    """(wall, this process's CPU, machine busy CPU) now, in seconds."""
    return time.perf_counter(), time.process_time(), machine_busy_s()


def interval(start: tuple, end: tuple) -> dict[str, float | None]:
    """Wall and CPU seconds between two marks; ``others_cores``: the cores other processes
    kept busy on average meanwhile (machine busy CPU minus ours, over the wall time)."""
    wall, cpu = end[0] - start[0], end[1] - start[1]
    others = None
    if start[2] is not None and end[2] is not None and wall > 0:
        others = max(end[2] - start[2] - cpu, 0.0) / wall
    return {"wall_s": wall, "cpu_s": cpu, "others_cores": others}


def wait_until_idle(threshold: float, max_wait_s: float, probe_s: float = 3.0) -> float | None:
    """Wait (up to ``max_wait_s``) until other processes keep fewer than ``threshold`` cores
    busy over ``probe_s`` seconds; return the last measured value (None: not measurable)."""
    deadline = time.monotonic() + max_wait_s
    while True:
        start = mark()
        time.sleep(probe_s)
        busy = interval(start, mark())["others_cores"]
        if busy is None or busy < threshold or time.monotonic() >= deadline:
            return busy
        print(f"    waiting: other processes use {busy:.2f} cores", flush=True)


# ---------------------------------------------------------------------------------------------
# The bare step (torch and torchvision only)
# ---------------------------------------------------------------------------------------------


def _bare_model(num_classes: int):
    import torch
    from torch import nn
    from torchvision import models as tvm

    class Bare(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            net = tvm.resnet18(weights=None)
            net.layer4[0].conv1.stride = (1, 1)  # last stride 1, as re-ID models have it
            net.layer4[0].downsample[0].stride = (1, 1)
            net.fc = nn.Identity()
            self.net = net
            self.bn = nn.BatchNorm1d(512)
            self.bn.bias.requires_grad_(False)
            self.classifier = nn.Linear(512, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=0.001)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            feat = self.net(x)  # GAP feature (B, 512)
            return feat, self.classifier(self.bn(feat))

    return Bare()


def _batch_hard(feat, pids, margin: float):
    import torch
    import torch.nn.functional as F

    sq = (feat * feat).sum(1, keepdim=True)
    dist = (sq + sq.t() - 2.0 * (feat @ feat.t())).clamp(min=1e-12).sqrt()
    same = pids[None] == pids[:, None]
    eye = torch.eye(len(pids), dtype=torch.bool)
    d_ap = dist.masked_fill(~(same & ~eye), float("-inf")).amax(1)
    d_an = dist.masked_fill(same, float("inf")).amin(1)
    return F.relu(d_ap - d_an + margin).mean()


def bare_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not args.bare_nondeterministic:
        torch.use_deterministic_algorithms(True)
    p, k, classes = 8, 4, 100
    model = _bare_model(classes)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=8e-4, weight_decay=5e-4)
    steps = args.steps_per_epoch
    images = torch.randn(steps, p * k, 3, args.height, args.width)
    labels = torch.stack([torch.randperm(classes)[:p].repeat_interleave(k) for _ in range(steps)])
    timer = _Timers(args.breakdown)
    model.train()
    epochs = []
    for _ in range(args.epochs):
        start = mark()
        for i in range(steps):
            x, y = images[i], labels[i]
            with timer("forward"):
                feat, logits = model(x)
            with timer("loss"):
                loss = (F.cross_entropy(logits, y, label_smoothing=0.1)
                        + _batch_hard(feat, y, 0.3))
            with timer("backward"):
                opt.zero_grad(set_to_none=True)
                loss.backward()
            with timer("optimizer step"):
                opt.step()
        span = interval(start, mark())
        epochs.append({"images": steps * p * k, "loop_s": span["wall_s"],
                       "cpu_s": span["cpu_s"], "others_cores": span["others_cores"]})
        timer.epoch_done()
    return {"what": "bare", "epochs": epochs, "breakdown": timer.summary(1),
            "deterministic": not args.bare_nondeterministic}


# ---------------------------------------------------------------------------------------------
# The suite's trainer
# ---------------------------------------------------------------------------------------------


def row_config(epochs: int | None):
    """The rga_baseline row's smoke config, as ``reproduce rga_table1`` builds it."""
    import dataclasses

    from reid_core.app.reproduce import build_row_config, load_paper_configs
    from reid_core.results.paper_tables import load_table

    source, raw = load_paper_configs(load_table(TABLE).paper)
    cfg = build_row_config(raw, source, ROW, PROFILE, 0)
    if epochs is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, epochs=epochs))
    return cfg


def trainer_worker(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from rich.console import Console

    torch.set_num_threads(args.threads)
    from reid_core.app.experiment import load_data
    from reid_core.app.training import train
    from reid_core.engine.trainer import Hook
    from reid_core.models import build_model
    from reid_core.utils.device import resolve_device
    from reid_core.utils.seed import make_deterministic, seed_everything

    cfg = row_config(args.epochs)
    data = load_data(cfg, None)
    settings = resolve_device("cpu")
    # The progress bar and log lines are rendered as on a terminal (their cost is counted).
    console = Console(file=open(os.devnull, "w"), force_terminal=True, width=120)
    timer = _Timers(args.breakdown)

    class Clock(Hook):
        """A mark at every epoch start and at the end: the epoch cycles."""

        def __init__(self) -> None:
            self.marks: list[tuple] = []

        def before_epoch(self, state) -> None:
            self.marks.append(mark())

        def after_epoch(self, state) -> None:
            timer.epoch_done()

        def after_train(self, state) -> None:
            self.marks.append(mark())

    clock = Clock()
    seed_everything(cfg.seed)
    make_deterministic()
    model = build_model(cfg.model, data.num_train_pids, (cfg.data.height, cfg.data.width))
    if args.breakdown:
        _instrument_trainer(model, timer)
    with tempfile.TemporaryDirectory(prefix="trainer_speed_") as tmp:
        history = train(model, data.train, cfg, settings, Path(tmp) / "last.pt",
                        console=console, extra_hooks=[clock])
    epochs = []
    for h, start, end in zip(history, clock.marks, clock.marks[1:]):
        span = interval(start, end)
        epochs.append({"images": round(h["images_per_s"] * h["time_s"]),
                       "loop_s": h["time_s"], "history_images_per_s": h["images_per_s"],
                       "cycle_s": span["wall_s"], "cpu_s": span["cpu_s"],
                       "others_cores": span["others_cores"], "loss": h["loss"]})
    import reid_core

    return {"what": "trainer", "epochs": epochs, "breakdown": timer.summary(1),
            "reid_core": str(Path(reid_core.__file__).resolve().parents[1]),
            "train_images": len(data.train), "ids": data.num_train_pids,
            "config": {"table": TABLE, "row": ROW, "profile": PROFILE,
                       "dataset": cfg.data.dataset, "batch_size": cfg.data.batch_size,
                       "num_instances": cfg.data.num_instances, "augment": cfg.data.augment,
                       "size": [cfg.data.height, cfg.data.width], "workers": cfg.data.workers,
                       "backbone": cfg.model.backbone, "epochs": cfg.optim.epochs}}


def _instrument_trainer(model, timer: _Timers) -> None:
    """perf_counter timers around the parts of the trainer's step (this process only)."""
    import torch
    from torch.utils.data import dataloader
    from torch.utils.data._utils import collate

    from reid_core.data.image_dataset import ImageDataset
    from reid_core.engine import hooks, loader
    from reid_core.losses.objective import Objective

    def wrap(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def timed(*a, **kw):
            with timer(label):
                return original(*a, **kw)
        setattr(owner, name, timed)

    wrap(ImageDataset, "__getitem__", "data: sample (augmentation)")
    wrap(collate, "default_collate", "data: collate")
    wrap(loader.EpochLoader, "__call__", "epoch: build loader")
    wrap(dataloader._SingleProcessDataLoaderIter, "_next_data", "data: loader total")
    wrap(model, "forward", "forward")
    wrap(Objective, "__call__", "loss (objective)")
    wrap(torch.Tensor, "backward", "backward")
    wrap(torch.optim.Adam, "step", "optimizer step")
    wrap(torch.optim.Optimizer, "zero_grad", "zero_grad")
    wrap(hooks.ConsoleLog, "after_step", "hook: progress bar")
    wrap(hooks.ConsoleLog, "after_epoch", "epoch: log line")
    wrap(hooks.NonFiniteGuard, "after_loss", "hook: non-finite guard")
    wrap(hooks.Checkpointer, "after_epoch", "epoch: checkpoint snapshot")
    head = model.head
    wrap(head, "accuracy", "train accuracy")


class _Timers:
    """Named wall-clock sums per epoch (no-ops unless enabled)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.current: dict[str, float] = defaultdict(float)
        self.epochs: list[dict[str, float]] = []
        self._stack: list[float] = []

    def __call__(self, label: str):
        return _Section(self, label) if self.enabled else _NULL

    def epoch_done(self) -> None:
        if self.enabled:
            self.epochs.append(dict(self.current))
            self.current.clear()

    def summary(self, skip: int) -> dict[str, float] | None:
        """Mean seconds per epoch of every section, warm-up epochs skipped."""
        if not self.enabled or len(self.epochs) <= skip:
            return None
        kept = self.epochs[skip:]
        return {k: sum(e.get(k, 0.0) for e in kept) / len(kept)
                for k in sorted({k for e in kept for k in e})}


class _Section:
    __slots__ = ("timers", "label", "t0")

    def __init__(self, timers: _Timers, label: str) -> None:
        self.timers, self.label = timers, label

    def __enter__(self) -> None:
        self.t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timers.current[self.label] += time.perf_counter() - self.t0


class _Null:
    def __enter__(self) -> None: ...
    def __exit__(self, *exc: object) -> None: ...


_NULL = _Null()


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def run_worker(what: str, args: argparse.Namespace, steps: int, breakdown: bool = False,
               tree: Path | None = None) -> dict[str, Any]:
    """One measurement in a fresh subprocess (after waiting for the machine to be idle);
    ``tree``: import reid_core from that directory instead."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, __file__, "--worker", what, "--threads", str(args.threads),
           "--epochs", str(args.epochs), "--steps-per-epoch", str(steps)]
    if breakdown:
        cmd.append("--breakdown")
    if args.bare_nondeterministic:
        cmd.append("--bare-nondeterministic")
    others_before = (wait_until_idle(args.idle_below, args.max_wait)
                     if args.idle_below > 0 else None)
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} worker failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    if tree is not None and not res["reid_core"].startswith(str(tree.resolve())):
        raise RuntimeError(f"--compare-tree {tree}: the worker imported {res['reid_core']}")
    res.update(load_before=load_before, load_after=os.getloadavg()[0],
               others_cores_before=others_before)
    return res


def summarise(res: dict[str, Any], warmup: int) -> dict[str, Any]:
    timed = res["epochs"][warmup:]
    images = sum(e["images"] for e in timed)
    loop = sum(e["loop_s"] for e in timed)
    out = {"images": images, "loop_s": loop, "loop_images_per_s": images / loop,
           "epoch_loop_images_per_s": [e["images"] / e["loop_s"] for e in timed]}
    wall = sum(e.get("cycle_s", e["loop_s"]) for e in timed)
    out["cpu_per_wall"] = sum(e["cpu_s"] for e in timed) / wall
    others = [e["others_cores"] for e in timed]
    out["others_cores"] = (None if None in others else
                           sum(o * e.get("cycle_s", e["loop_s"]) for o, e in zip(others, timed))
                           / wall)
    if "cycle_s" in timed[0]:
        out["cycle_s"] = wall
        out["cycle_images_per_s"] = images / wall
    return out


def steps_per_epoch(epochs: int | None) -> int:
    """Batches of the trainer's epoch 0 (the P x K sampler drops incomplete chunks)."""
    from reid_core.app.experiment import load_data
    from reid_core.data.sampler import RandomIdentitySampler
    from reid_core.utils.seed import epoch_generator

    cfg = row_config(epochs)
    data = load_data(cfg, None)
    sampler = RandomIdentitySampler(data.train, cfg.data.batch_size, cfg.data.num_instances,
                                    generator=epoch_generator(cfg.seed, 0))
    return len(sampler) // cfg.data.batch_size


def render(report: dict[str, Any]) -> str:
    h = report["header"]
    c = report["trainer_config"]
    out = io.StringIO()
    out.write("# Trainer speed: the suite's trainer next to a bare torchvision step\n\n")
    out.write(f"Command: `{h['command']}` ({h['date']}, git {h['git_commit']})\n\n")
    out.write(f"Machine: {h['machine']}; torch {h['torch']}, torchvision {h['torchvision']} "
              f"({h['cpu_capability']}), Python {h['python']}; **{h['threads']} torch threads** "
              f"in both. Load: 1-minute load average {h['load_min']:.2f}-{h['load_max']:.2f} "
              f"(before/after each subprocess, ours included); other processes kept "
              f"{_f(h['others_cores_min'], '.2f')}-{_f(h['others_cores_max'], '.2f')} cores "
              f"busy on average during the timed epochs (column *others*; a shared 2-core VM, "
              f"so the best repeat is the least disturbed one).\n\n")
    out.write(f"Both: ResNet-18 BNNeck (last stride 1), {c['size'][0]}x{c['size'][1]}, batch "
              f"{c['batch_size']} = P x K {c['batch_size'] // c['num_instances']} x "
              f"{c['num_instances']}, Adam, CE + batch-hard triplet; {report['steps_per_epoch']} "
              f"steps per epoch, {report['epochs']} epochs per run of which the first is "
              f"warm-up (excluded). **Bare**: random tensors in memory, "
              f"{'deterministic' if report['bare_deterministic'] else 'non-deterministic'} "
              f"algorithms, no logging. **Trainer**: `reid_core.app.training.train` on "
              f"{c['table']} row `{c['row']}`, {c['profile']} profile ({c['dataset']}, "
              f"{c['train_images']} images of {c['ids']} ids, augment `{c['augment']}`, workers "
              f"{c['workers']}), progress bar rendered to a terminal console, checkpoint "
              f"every epoch (written in the background). Each run is its own subprocess; bare "
              f"and trainer alternate.\n\n")
    out.write("| measurement | img/s best | img/s median | per repeat | cpu/wall | others "
              "(cores) |\n| --- | ---: | ---: | --- | --- | --- |\n")
    for row in report["rows"]:
        out.write(f"| {row['name']} | **{row['best']:.1f}** | {row['median']:.1f} | "
                  f"{', '.join(f'{v:.1f}' for v in row['values'])} | "
                  f"{', '.join(f'{v:.2f}' for v in row['cpu_per_wall'])} | "
                  f"{', '.join(_f(v, '.2f') for v in row['others_cores'])} |\n")
    r = report["ratios"]
    out.write(f"\n**Trainer / bare**: training loop **{r['loop_best']:.3f}** (best repeats; "
              f"medians {r['loop_median']:.3f}, paired repeats {r['loop_paired_median']:.3f}); "
              f"whole epoch cycle {r['cycle_best']:.3f} (medians {r['cycle_median']:.3f}). "
              f"Goal: >= 0.95.\n")
    if "compare_loop_best" in r:
        out.write(f"\nThe compared tree's trainer / bare: training loop "
                  f"**{r['compare_loop_best']:.3f}** (best repeats; medians "
                  f"{r['compare_loop_median']:.3f}, paired repeats "
                  f"{r['compare_loop_paired_median']:.3f}); whole epoch cycle "
                  f"{r['compare_cycle_best']:.3f}.\n")
    if report.get("breakdown"):
        bd = report["breakdown"]
        cmp = "compare" in bd
        out.write("\n## Where an epoch goes\n\nOne more run of each with perf_counter timers "
                  "around the parts (seconds per epoch, warm-up excluded; other processes "
                  "kept " + " / ".join(_f(v, ".2f") for v in bd["others_cores"])
                  + " cores busy):\n\n")
        out.write("| part | bare | trainer |" + (" trainer (compared tree) |" if cmp else "")
                  + "\n| --- | ---: | ---: |" + (" ---: |" if cmp else "") + "\n")
        cols = [bd["bare"] or {}, bd["trainer"] or {}] + ([bd["compare"] or {}] if cmp else [])
        keys = sorted({k for col in cols for k in col},
                      key=lambda k: -sum(col.get(k, 0) for col in cols))
        for key in keys:
            out.write(f"| {key} | " + " | ".join(_f(col.get(key)) for col in cols) + " |\n")
        out.write(f"| **training loop** | {_f(bd['bare_loop_s'])} | {_f(bd['trainer_loop_s'])} |"
                  + (f" {_f(bd['compare_loop_s'])} |" if cmp else "")
                  + f"\n| **epoch cycle** |  | {_f(bd['trainer_cycle_s'])} |"
                  + (f" {_f(bd['compare_cycle_s'])} |" if cmp else "") + "\n")
        out.write("\n`data: loader total` is the DataLoader's `next()` and includes `data: "
                  "sample` (dataset `__getitem__`: augmentation) and `data: collate`; the "
                  "`epoch:` rows are outside the training loop, in the cycle.\n")
    for note in report.get("notes", []):
        out.write(f"\n{note}\n")
    return out.getvalue()


def _f(v: float | None, spec: str = ".3f") -> str:
    return "" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each")
    parser.add_argument("--epochs", type=int, default=6, help="per run; the first is warm-up")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of both (default: torch's default here)")
    parser.add_argument("--breakdown", action="store_true",
                        help="one more run of each with timers around the parts of a step")
    parser.add_argument("--bare-nondeterministic", action="store_true",
                        help="run the bare step without torch.use_deterministic_algorithms")
    parser.add_argument("--idle-below", type=float, default=0.3, metavar="CORES",
                        help="before each run, wait until other processes use fewer cores than "
                             "this (0: do not wait)")
    parser.add_argument("--max-wait", type=float, default=600, metavar="S",
                        help="... but at most this long per run")
    parser.add_argument("--compare-tree", type=Path, default=None, metavar="DIR",
                        help="also run the trainer of the reid_core in DIR (e.g. an earlier "
                             "commit, `git archive COMMIT | tar -x -C DIR`), alternating")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks")
    parser.add_argument("--worker", choices=("bare", "trainer"), help=argparse.SUPPRESS)
    parser.add_argument("--steps-per-epoch", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--height", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads is None:
        args.threads = torch.get_num_threads()
    if args.worker:
        fn = bare_worker if args.worker == "bare" else trainer_worker
        print(json.dumps(fn(args)))
        return
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first is warm-up)")

    import torchvision

    from reid_core.results.records import software_versions
    from reid_core.utils.io import atomic_write_json, atomic_write_text

    steps = steps_per_epoch(args.epochs)
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], "trainer": []}
    kinds = [("bare", "bare", None), ("trainer", "trainer", None)]
    if args.compare_tree is not None:
        runs["trainer (compare tree)"] = []
        kinds.append(("trainer (compare tree)", "trainer", args.compare_tree))
    for r in range(args.repeats):
        for name, what, tree in kinds:
            print(f"[{r + 1}/{args.repeats}] {name} ...", flush=True)
            res = run_worker(what, args, steps, tree=tree)
            res["summary"] = summarise(res, 1)
            runs[name].append(res)
            s = res["summary"]
            print(f"    loop {s['loop_images_per_s']:.1f} img/s"
                  + (f", cycle {s['cycle_images_per_s']:.1f} img/s" if "cycle_s" in s else "")
                  + f", cpu/wall {s['cpu_per_wall']:.2f}, others {_f(s['others_cores'], '.2f')}"
                  f" cores, load {res['load_before']:.2f} -> {res['load_after']:.2f}",
                  flush=True)
    breakdown = None
    if args.breakdown:
        print("breakdown runs ...", flush=True)
        b = run_worker("bare", args, steps, breakdown=True)
        t = run_worker("trainer", args, steps, breakdown=True)
        breakdown = {"bare": b["breakdown"], "trainer": t["breakdown"],
                     "bare_loop_s": statistics.fmean(e["loop_s"] for e in b["epochs"][1:]),
                     "trainer_loop_s": statistics.fmean(e["loop_s"] for e in t["epochs"][1:]),
                     "trainer_cycle_s": statistics.fmean(e["cycle_s"] for e in t["epochs"][1:]),
                     "others_cores": [summarise(b, 1)["others_cores"],
                                      summarise(t, 1)["others_cores"]]}
        if args.compare_tree is not None:
            c = run_worker("trainer", args, steps, breakdown=True, tree=args.compare_tree)
            breakdown.update(
                compare=c["breakdown"],
                compare_loop_s=statistics.fmean(e["loop_s"] for e in c["epochs"][1:]),
                compare_cycle_s=statistics.fmean(e["cycle_s"] for e in c["epochs"][1:]))
            breakdown["others_cores"].append(summarise(c, 1)["others_cores"])

    def row(name: str, what: str, key: str) -> dict[str, Any]:
        values = [res["summary"][key] for res in runs[what]]
        return {"name": name, "what": what, "key": key, "values": values,
                "best": max(values), "median": statistics.median(values),
                "cpu_per_wall": [res["summary"]["cpu_per_wall"] for res in runs[what]],
                "others_cores": [res["summary"]["others_cores"] for res in runs[what]]}

    rows = [row("bare torchvision step", "bare", "loop_images_per_s"),
            row("trainer: training loop (the history's `images_per_s`)", "trainer",
                "loop_images_per_s"),
            row("trainer: whole epoch cycle (+ log line, checkpoint, next loader)", "trainer",
                "cycle_images_per_s")]
    bare, loop, cycle = rows
    if args.compare_tree is not None:
        rows += [row(f"trainer of `{args.compare_tree}`: training loop",
                     "trainer (compare tree)", "loop_images_per_s"),
                 row(f"trainer of `{args.compare_tree}`: whole epoch cycle",
                     "trainer (compare tree)", "cycle_images_per_s")]
    loads = [x for group in runs.values() for res in group
             for x in (res["load_before"], res["load_after"])]
    others = [v for rw in rows for v in rw["others_cores"] if v is not None]
    versions = software_versions()
    report = {
        "what": "trainer speed vs a bare torchvision step (benchmarks/trainer_speed.py)",
        "header": {"command": "python benchmarks/trainer_speed.py " + " ".join(sys.argv[1:]),
                   "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                              f"{platform.platform()}",
                   "torch": torch.__version__, "torchvision": torchvision.__version__,
                   "python": platform.python_version(),
                   "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                   "threads": args.threads, "git_commit": versions["git_commit"],
                   "date": time.strftime("%Y-%m-%d %H:%M"),
                   "load_min": min(loads), "load_max": max(loads),
                   "others_cores_min": min(others, default=None),
                   "others_cores_max": max(others, default=None)},
        "steps_per_epoch": steps, "epochs": args.epochs, "warmup_epochs": 1,
        "bare_deterministic": not args.bare_nondeterministic,
        "trainer_config": {**runs["trainer"][0]["config"],
                           "train_images": runs["trainer"][0]["train_images"],
                           "ids": runs["trainer"][0]["ids"]},
        "rows": rows,
        "ratios": {"loop_best": loop["best"] / bare["best"],
                   "cycle_best": cycle["best"] / bare["best"],
                   "loop_median": loop["median"] / bare["median"],
                   "cycle_median": cycle["median"] / bare["median"],
                   "loop_paired_median": statistics.median(
                       t / b for t, b in zip(loop["values"], bare["values"]))},
        "breakdown": breakdown,
        "runs": runs,
    }
    if args.compare_tree is not None:
        other_loop, other_cycle = rows[3], rows[4]
        report["ratios"].update(
            compare_loop_best=other_loop["best"] / bare["best"],
            compare_cycle_best=other_cycle["best"] / bare["best"],
            compare_loop_median=other_loop["median"] / bare["median"],
            compare_loop_paired_median=statistics.median(
                t / b for t, b in zip(other_loop["values"], bare["values"])))
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "trainer_speed.json", report)
    text = render(report)
    atomic_write_text(args.out / "trainer_speed.md", text)
    print(text)


if __name__ == "__main__":
    main()
