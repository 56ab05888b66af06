"""Regression check against recorded expected metrics (``results/expected/*.json``).

An expected file records *what was run* (table, rows, profile, config overrides, seeds), the
per-seed results of those real runs, and the tolerance bands derived from them. The check
re-runs the first seed of every row and compares:

* **metrics** (R1, mAP of the primary feature): must lie within ``band`` percentage points of
  the recorded seed-0 value; ``band`` = max(3 x the sample std over the recorded seeds,
  ``min_band``), i.e. seed-to-seed spread stands in for what another machine's floating point
  may change;
* **loss trajectory** (mean training loss of every epoch): CPU training is deterministic, so a
  re-run with the same code reproduces it to float noise; ``loss_rtol`` is tight and catches
  any change to a module, loss or data pipeline even when the metrics stay inside their band.

Record a file (real runs, a few minutes)::

    python -m reid_core.regression record results/expected/rga_smoke_ci.json \\
        --table rga_table1 --rows rga_baseline rga_sc --seeds 0 1 2 \\
        --set data.dataset=synthetic-tiny --set optim.epochs=4 ...

Check it (what ``tests/test_regression.py`` does)::

    python -m reid_core.regression check results/expected/rga_smoke_ci.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from reid_core.config import RunConfig, config_from_dict, nest_overrides, parse_overrides
from reid_core.experiment import run_experiment
from reid_core.reproduce import build_row_config, deep_merge, load_paper_configs
from reid_core.results.paper_tables import load_table
from reid_core.results.records import command_line, software_versions, utc_now
from reid_core.utils.io import atomic_write_json

METRICS = ("R1", "mAP")
MIN_BAND = 2.0  # percentage points: never tighter than this, however small the measured spread
LOSS_RTOL = 2e-3  # relative, per epoch


def _config(spec: dict[str, Any], row: str, seed: int) -> RunConfig:
    """The row's config under ``spec["profile"]``, with ``spec["overrides"]`` applied on top."""
    source, raw = load_paper_configs(load_table(spec["table"]).paper)
    base = build_row_config(raw, source, row, spec["profile"], seed).to_dict()
    return config_from_dict(deep_merge(base, spec["overrides"]),
                            f"{source} (variant {row}) + regression overrides")


def _run(spec: dict[str, Any], row: str, seed: int, out: Path, console: Console) -> dict[str, Any]:
    cfg = _config(spec, row, seed)
    rec = run_experiment(cfg, data_root=out / "data", out=out, device="cpu", console=console)
    final = rec["final"][rec["primary_feature"]]
    return {"seed": seed, "run_id": rec["run_id"], "wall_time_s": rec["wall_time_s"],
            "metrics": {m: final[m] for m in METRICS},
            "loss_per_epoch": [h["loss"] for h in rec["history"]]}


def record_expected(path: Path, table: str, rows: Sequence[str], seeds: Sequence[int],
                    overrides: dict[str, Any], profile: str = "smoke",
                    console: Console | None = None) -> dict[str, Any]:
    console = console or Console()
    spec = {"table": table, "profile": profile, "overrides": overrides}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in rows:
            runs = [_run(spec, row, s, Path(tmp), console) for s in seeds]
            bands = {}
            for m in METRICS:
                vals = [r["metrics"][m] for r in runs]
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                bands[m] = {"mean": statistics.fmean(vals), "std": std,
                            "band": max(3 * std, MIN_BAND)}
            results[row] = {"runs": runs, "bands": bands}
    expected = {
        "what": "expected metrics of real runs, for the CI regression check "
                "(reid_core.regression, tests/test_regression.py)",
        "command": command_line(), "recorded_at": utc_now(), "versions": software_versions(),
        **spec, "seeds": list(seeds), "loss_rtol": LOSS_RTOL, "min_band": MIN_BAND,
        "rows": results,
    }
    atomic_write_json(path, expected)
    return expected


@dataclass
class Finding:
    row: str
    quantity: str
    expected: float
    got: float
    tolerance: str
    ok: bool


def check_expected(path: Path, out: Path, console: Console | None = None) -> list[Finding]:
    """Re-run seed ``seeds[0]`` of every row of ``path``; compare with the recorded values."""
    console = console or Console()
    exp = json.loads(Path(path).read_text())
    findings: list[Finding] = []
    for row, entry in exp["rows"].items():
        ref = entry["runs"][0]
        got = _run(exp, row, ref["seed"], out, console)
        for m in METRICS:
            band = entry["bands"][m]["band"]
            e, g = ref["metrics"][m], got["metrics"][m]
            findings.append(Finding(row, m, e, g, f"± {band:.2f} pp", abs(g - e) <= band))
        for epoch, (e, g) in enumerate(zip(ref["loss_per_epoch"], got["loss_per_epoch"]), 1):
            ok = abs(g - e) <= exp["loss_rtol"] * abs(e)
            findings.append(Finding(row, f"loss epoch {epoch}", e, g,
                                    f"rel {exp['loss_rtol']:g}", ok))
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reid_core.regression")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("path", type=Path)
    r.add_argument("--table", required=True)
    r.add_argument("--rows", nargs="+", required=True)
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--profile", default="smoke")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    c = sub.add_parser("check")
    c.add_argument("path", type=Path)
    args = p.parse_args(argv)
    console = Console()
    if args.cmd == "record":
        record_expected(args.path, args.table, args.rows, args.seeds,
                        nest_overrides(parse_overrides(args.set)), args.profile, console)
        console.print(f"written {args.path}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        findings = check_expected(args.path, Path(tmp), console)
    for f in findings:
        console.print(f"{'ok ' if f.ok else 'FAIL'} {f.row:14s} {f.quantity:14s} expected "
                      f"{f.expected:.4f} got {f.got:.4f} ({f.tolerance})")
    return 0 if all(f.ok for f in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
