"""Does torch 0.4.0's BatchNorm init matter? RGA Table 1's smoke rows with the attention
modules' BN weights drawn U(0, 1) (``model.bn_weight_init: uniform``, RGA's code and the smoke
profile) next to the same rows with today's init (weights 1).

Usage::

    python benchmarks/rga_bn_init.py                       # 9 attention rows x seeds 0-2
    python benchmarks/rga_bn_init.py --rows rga_sc --seeds 0

Trains each row of ``configs/papers/rga.yaml`` at the smoke profile with ``model.bn_weight_init``
set to each of ``ones`` and ``uniform`` (records in ``results/runs``; finished runs are
skipped, interrupted ones resume: the ``uniform`` runs are the smoke profile's own), pairs them
by row and seed and writes, per row and metric, the paired difference (uniform − ones) with the
report's interval (paired bootstrap over queries combined with a Student t over seeds, 95%;
``reid_core.results.report.uncertainty``) to ``results/benchmarks/rga_bn_init.md``
(atomically). The baseline has no attention module, so it is not run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from reid_core.app.experiment import run_experiment
from reid_core.app.paper_configs import build_row_config, load_paper_configs
from reid_core.results.identity import config_identity
from reid_core.results.record_types import RUN, record_kind
from reid_core.results.report.cell_values import metric_value
from reid_core.results.report.uncertainty import paired_gain_interval
from reid_core.results.store import load_records
from reid_core.utils.io import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
ROWS = ["rga_s", "rga_s_wo_rel", "rga_s_wo_ori", "rga_c", "rga_c_wo_rel", "rga_c_wo_ori",
        "rga_s_par_c", "rga_cs", "rga_sc"]
METRICS = ("R1", "mAP")
INITS = ("ones", "uniform")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", nargs="+", default=ROWS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=REPO / "results",
                   help="results root (runs/, checkpoints/)")
    p.add_argument("--report", type=Path,
                   default=REPO / "results" / "benchmarks" / "rga_bn_init.md")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    console = Console()

    source, raw = load_paper_configs("rga")
    jobs = [(init, c, s) for init in INITS for c in args.rows for s in args.seeds]
    hashes: dict[str, set[str]] = {init: set() for init in INITS}
    for i, (init, cid, seed) in enumerate(jobs, 1):
        cfg = build_row_config(raw, source, cid, "smoke", seed)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, bn_weight_init=init))
        hashes[init].add(cfg.config_hash())
        console.rule(f"[{i}/{len(jobs)}] {cid} seed {seed}, bn_weight_init {init}")
        run_experiment(cfg, out=args.out, device=args.device, resume=True, console=console,
                       profile="smoke", note_fresh_start=False)

    records = load_records(args.out / "runs")
    by_init = {init: [r for r in records if r.get("config_hash") in hashes[init]]
               for init in INITS}
    lines, table = _compare(args.rows, by_init["uniform"], by_init["ones"])
    console.print(table)
    text = "\n".join([
        "# RGA smoke: torch 0.4.0's BatchNorm init (U(0, 1)) against today's (ones)",
        "",
        "Made by `python benchmarks/rga_bn_init.py`. Each RGA Table 1 row at the smoke profile",
        "(`configs/papers/rga.yaml`: ResNet-18 from the synthetic-pretrained trunk, 64 x 32,",
        "4 epochs, synthetic-small) trained twice: with `model.bn_weight_init: uniform` (every BN",
        "weight of the attention modules drawn from U(0, 1), as under RGA's torch 0.4.0: the",
        "smoke profile's own runs) and with `ones` (today's PyTorch), paired by seed. Δ =",
        "uniform − ones, with the reports' 95% interval (paired bootstrap over queries and",
        "Student t over seeds). The baseline has no attention module to initialise:",
        f"{_baseline_text(records, raw, source)}.",
        "",
        "| row | metric | ones (mean) | uniform (mean) | Δ | 95% interval | seeds | reading |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
        *lines,
        "",
        "*reading*: **differs** when the interval excludes 0; otherwise *no difference "
        "resolved* (the interval's width says how large a difference could hide in it).",
        "",
    ])
    args.report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.report, text)
    console.print(f"report: {args.report}")
    return 0


def _baseline_text(records, raw, source) -> str:
    """The baseline's metrics under each init (it has no attention BN: they should agree)."""
    by_init = {}
    for init in INITS:
        cfg = build_row_config(raw, source, "rga_baseline", "smoke", 0)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, bn_weight_init=init))
        identity = cfg.config_hash()
        by_init[init] = {r["seed"]: (metric_value(r, "R1"), metric_value(r, "mAP"))
                         for r in records if record_kind(r) == RUN
                         and r.get("config_name") == "rga_baseline"
                         and config_identity(r["config"]) == identity}
    seeds = sorted(set(by_init["ones"]) & set(by_init["uniform"]))
    if not seeds:
        return "not run under both inits (python reproduce/table1_rga.py --rows rga_baseline)"
    same = all(by_init["ones"][s] == by_init["uniform"][s] for s in seeds)
    r1 = sum(by_init["uniform"][s][0] for s in seeds) / len(seeds)
    ap = sum(by_init["uniform"][s][1] for s in seeds) / len(seeds)
    return (f"R1 {r1:.1f}, mAP {ap:.1f} over seeds {', '.join(map(str, seeds))}, "
            + ("identical under both inits" if same else "**not identical under both inits**"))


def _mean(records, metric: str) -> float:
    values = [metric_value(r, metric) for r in records]
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else math.nan


def _compare(rows, uniform, ones):
    table = Table(title="uniform − ones (95% interval)")
    for col in ("row", "metric", "ones", "uniform", "Δ", "interval", "reading"):
        table.add_column(col)
    lines = []
    for cid in rows:
        u = [r for r in uniform if r["config_name"] == cid]
        o = [r for r in ones if r["config_name"] == cid]
        for metric in METRICS:
            iv = paired_gain_interval(u, o, metric)
            if iv.exists:
                interval = f"[{iv.low:+.1f}, {iv.high:+.1f}]"
                reading = "**differs**" if iv.low > 0 or iv.high < 0 else "no difference resolved"
            else:
                interval, reading = "—", f"no interval ({iv.note})"
            cells = [cid, metric, f"{_mean(o, metric):.1f}", f"{_mean(u, metric):.1f}",
                     f"{iv.center:+.1f}", interval, str(iv.seeds), reading]
            lines.append("| " + " | ".join(cells) + " |")
            table.add_row(*[c for i, c in enumerate(cells) if i != 6])
    return lines, table


if __name__ == "__main__":
    raise SystemExit(main())
