"""Regression check against recorded expected metrics (``results/expected/*.json``).

An expected file records *what was run* (table, rows, profile, config overrides, seeds) and one
**recording** per environment it was run in: the per-seed results of real runs (final R1 and
mAP, the mean training loss of every epoch) together with the environment that produced them
(torch, torchvision, numpy, python, platform, CPU capability, threads). CPU training is
bit-reproducible *within one environment* only: another torch build or another CPU picks other
kernels, and the float differences grow through training (measured: identical epoch-1 losses to
~1e-4, later epochs up to ~8% apart, metrics anywhere inside the seed-to-seed spread).

The check re-runs the first seed of every row and compares it in one of two modes:

* **exact** -- when a recording's environment equals the running one: every epoch's loss must
  match to ``exact_loss_rtol`` (float noise; any change to a module, loss or data pipeline moves
  it), and the metrics must lie in their seed bands.
* **cross-version** -- otherwise, against the recording whose environment is closest: metrics
  within their seed bands (``max(3 x` the std over the recorded seeds, ``min_band``) and each
  epoch's loss within ``cross_version.epoch_loss_rtol[epoch]``, a band measured by re-running the
  spec in several environments (``bands`` sub-command: the largest relative difference seen
  between two environments, times ``SAFETY``). Epoch 1 is tight (a model change moves it by far
  more than any build does), later epochs loose.

Record the running environment (real runs, a few minutes; other recordings are kept)::

    python -m reid_core.app.regression record results/expected/rga_smoke_ci.json \\
        --table rga_table1 --rows rga_baseline rga_sc --seeds 0 1 2 \\
        --set data.dataset=synthetic-tiny --set optim.epochs=4 ...
    python -m reid_core.app.regression record results/expected/rga_smoke_ci.json   # same spec
    python -m reid_core.app.regression bands results/expected/rga_smoke_ci.json    # re-measure

Check it (what ``tests/test_regression.py`` does)::

    python -m reid_core.app.regression check results/expected/rga_smoke_ci.json [--mode cross]
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from rich.console import Console
from rich.table import Table

from reid_core.config import RunConfig, config_from_dict, nest_overrides, parse_overrides
from reid_core.app.experiment import USER_ERRORS, describe_error, run_experiment
from reid_core.app.reproduce import build_row_config, deep_merge, load_paper_configs
from reid_core.results.paper_tables import load_table
from reid_core.results.records import command_line, software_versions, utc_now
from reid_core.utils.io import atomic_write_json

FORMAT_VERSION = 2
METRICS = ("R1", "mAP")
MIN_BAND = 2.0  # percentage points: never tighter than this, however small the measured spread
EXACT_LOSS_RTOL = 1e-5  # same environment: bit-reproducible, this only absorbs float printing
SAFETY = 3.0  # cross-version loss band = SAFETY x the largest difference measured
MIN_CROSS_RTOL = 1e-4  # ... and never tighter than this
#: What must be equal for the exact comparison to apply. ``platform`` includes the kernel
#: build; ``cpu_capability`` is the instruction set torch dispatches to (AVX2, AVX512, ...).
ENVIRONMENT_KEYS = ("torch", "torchvision", "numpy", "python", "platform", "cpu_capability",
                    "torch_threads")

Mode = Literal["exact", "cross-version"]


def current_environment() -> dict[str, Any]:
    """The running environment, as recordings store it."""
    versions = software_versions()
    return {"torch": versions["torch"], "torchvision": versions["torchvision"],
            "numpy": versions["numpy"], "python": versions["python"],
            "platform": platform.platform(), "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": torch.get_num_threads()}


def environment_label(env: dict[str, Any]) -> str:
    return (f"torch {env.get('torch')} / torchvision {env.get('torchvision')} / numpy "
            f"{env.get('numpy')} on {env.get('platform')} ({env.get('cpu_capability', '?')}, "
            f"{env.get('torch_threads', '?')} threads)")


def same_environment(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ENVIRONMENT_KEYS)


def _config(spec: dict[str, Any], row: str, seed: int) -> RunConfig:
    """The row's config under ``spec["profile"]``, with ``spec["overrides"]`` applied on top."""
    source, raw = load_paper_configs(load_table(spec["table"]).paper)
    base = build_row_config(raw, source, row, spec["profile"], seed).to_dict()
    return config_from_dict(deep_merge(base, spec["overrides"]),
                            f"{source} (variant {row}) + regression overrides")


def run_row(spec: dict[str, Any], row: str, seed: int, out: Path,
            console: Console) -> dict[str, Any]:
    """Train and evaluate one (row, seed) of ``spec`` in ``out``; the values a recording keeps."""
    cfg = _config(spec, row, seed)
    rec = run_experiment(cfg, data_root=out / "data", out=out, device="cpu", console=console)
    final = rec["final"][rec["primary_feature"]]
    return {"seed": seed, "run_id": rec["run_id"], "wall_time_s": rec["wall_time_s"],
            "metrics": {m: final[m] for m in METRICS},
            "loss_per_epoch": [h["loss"] for h in rec["history"]]}


def _bands(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    bands = {}
    for m in METRICS:
        vals = [r["metrics"][m] for r in runs]
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        bands[m] = {"mean": statistics.fmean(vals), "std": std, "band": max(3 * std, MIN_BAND)}
    return bands


def record_environment(path: Path, spec: dict[str, Any] | None = None,
                       console: Console | None = None) -> dict[str, Any]:
    """Run every (row, seed) of the spec here and store it as this environment's recording
    (replacing an earlier recording of the same environment, keeping the others); ``spec``
    (table, rows, seeds, profile, overrides) is required for a new file."""
    console = console or Console()
    expected = load_expected(path) if path.is_file() else None
    if expected is None:
        if spec is None:
            raise ValueError(f"{path} does not exist: give --table, --rows (and --set ...)")
        expected = {"what": "expected metrics of real runs, for the CI regression check "
                            "(reid_core.app.regression, tests/test_regression.py)",
                    "format_version": FORMAT_VERSION, **spec, "exact_loss_rtol": EXACT_LOSS_RTOL,
                    "min_band": MIN_BAND, "recordings": []}
    elif spec is not None and any(expected.get(k) != v for k, v in spec.items()):
        raise ValueError(f"{path} records another spec; record the same spec (omit --table, "
                         f"--rows, --seeds, --set) or write a new file")
    env = current_environment()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for row in expected["rows_run"]:
            runs = [run_row(expected, row, s, Path(tmp), console) for s in expected["seeds"]]
            rows[row] = {"runs": runs, "bands": _bands(runs)}
    recording = {"environment": env, "git_commit": software_versions()["git_commit"],
                 "command": command_line(), "recorded_at": utc_now(), "rows": rows}
    expected["recordings"] = [r for r in expected["recordings"]
                              if not same_environment(r["environment"], env)] + [recording]
    expected["cross_version"] = measure_cross_version_band(expected)
    atomic_write_json(path, expected)
    return expected


def measure_cross_version_band(expected: dict[str, Any]) -> dict[str, Any]:
    """Per epoch, the largest relative loss difference between two recordings of different
    environments (same row, same seed), and the band the cross-version check applies."""
    recs = expected["recordings"]
    epochs = expected["overrides"]["optim"]["epochs"]
    observed = [0.0] * epochs
    pairs = 0
    for a, b in itertools.combinations(recs, 2):
        pairs += 1
        for row in expected["rows_run"]:
            for ra, rb in zip(a["rows"][row]["runs"], b["rows"][row]["runs"]):
                for e, (la, lb) in enumerate(zip(ra["loss_per_epoch"], rb["loss_per_epoch"])):
                    observed[e] = max(observed[e], abs(la - lb) / abs(lb))
    return {"measured_between": [environment_label(r["environment"]) for r in recs],
            "environment_pairs": pairs, "max_observed_rtol": observed, "safety_factor": SAFETY,
            "epoch_loss_rtol": [max(SAFETY * o, MIN_CROSS_RTOL) for o in observed]
            if pairs else None}


def load_expected(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expected-metrics file not found: {path}")
    try:
        exp = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if (not isinstance(exp, dict) or exp.get("format_version") != FORMAT_VERSION
            or not exp.get("recordings")):
        raise ValueError(f"{path}: not an expected-metrics file of format {FORMAT_VERSION} "
                         f"with at least one recording")
    return exp


@dataclass
class Finding:
    row: str
    quantity: str
    expected: float
    got: float
    tolerance: str
    ok: bool


@dataclass
class CheckResult:
    mode: Mode
    reference: dict[str, Any]  #: the recording compared against
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def describe(self) -> str:
        env = environment_label(self.reference["environment"])
        here = current_environment()
        if self.mode == "exact":
            why = "the running environment equals the recording's"
        elif same_environment(self.reference["environment"], here):
            why = "requested with --mode (this environment has a recording)"
        else:
            why = f"the running environment differs ({environment_label(here)})"
        return f"{self.mode} mode against the recording made with {env}: {why}"


def choose_reference(expected: dict[str, Any], env: dict[str, Any],
                     mode: Literal["auto", "exact", "cross-version"] = "auto"
                     ) -> tuple[Mode, dict[str, Any]]:
    """The recording to compare against and the mode: exact when one was made in ``env``;
    otherwise cross-version against the closest (most equal environment keys, then newest)."""
    recs = expected["recordings"]
    same = [r for r in recs if same_environment(r["environment"], env)]
    if mode in ("auto", "exact") and same:
        return "exact", same[-1]
    if mode == "exact":
        raise ValueError("exact mode: no recording was made in the running environment ("
                         + environment_label(env) + "); recorded: "
                         + "; ".join(environment_label(r["environment"]) for r in recs))
    others = [r for r in recs if not same_environment(r["environment"], env)] or recs
    score = lambda r: sum(r["environment"].get(k) == env.get(k) for k in ENVIRONMENT_KEYS)  # noqa: E731
    return "cross-version", max(others, key=lambda r: (score(r), r["recorded_at"]))


def compare(expected: dict[str, Any], reruns: dict[str, dict[str, Any]], mode: Mode,
            reference: dict[str, Any]) -> CheckResult:
    """Compare re-runs (``{row: run_row(...) result}``) with ``reference`` in ``mode``."""
    if mode == "cross-version":
        band = expected.get("cross_version", {}).get("epoch_loss_rtol")
        if not band:
            raise ValueError("cross-version mode needs a measured band: record the spec in at "
                             "least two environments (python -m reid_core.app.regression record)")
    findings = []
    for row, got in reruns.items():
        entry = reference["rows"][row]
        ref = next(r for r in entry["runs"] if r["seed"] == got["seed"])
        for m in METRICS:
            b = entry["bands"][m]["band"]
            e, g = ref["metrics"][m], got["metrics"][m]
            findings.append(Finding(row, m, e, g, f"± {b:.2f} pp (seed band)", abs(g - e) <= b))
        for epoch, (e, g) in enumerate(zip(ref["loss_per_epoch"], got["loss_per_epoch"])):
            rtol = expected["exact_loss_rtol"] if mode == "exact" else band[epoch]
            findings.append(Finding(row, f"loss epoch {epoch + 1}", e, g, f"rel {rtol:.1e}",
                                    abs(g - e) <= rtol * abs(e)))
    return CheckResult(mode, reference, findings)


def rerun(expected: dict[str, Any], out: Path, console: Console | None = None,
          rows: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Re-run the first recorded seed of every row (or of ``rows``)."""
    console = console or Console()
    seed = expected["seeds"][0]
    return {row: run_row(expected, row, seed, out, console)
            for row in (rows or expected["rows_run"])}


def check_expected(path: Path, out: Path, console: Console | None = None,
                   mode: Literal["auto", "exact", "cross-version"] = "auto") -> CheckResult:
    """Re-run seed ``seeds[0]`` of every row of ``path`` and compare (see the module doc)."""
    expected = load_expected(path)
    chosen, reference = choose_reference(expected, current_environment(), mode)
    return compare(expected, rerun(expected, out, console), chosen, reference)


def findings_table(result: CheckResult) -> Table:
    t = Table(title=result.describe(), title_justify="left")
    for col in ("", "row", "quantity", "expected", "got", "tolerance"):
        t.add_column(col)
    for f in result.findings:
        t.add_row("ok" if f.ok else "[bold red]FAIL[/]", f.row, f.quantity, f"{f.expected:.4f}",
                  f"{f.got:.4f}", f.tolerance)
    return t


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reid_core.app.regression")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="record the running environment (real runs)")
    r.add_argument("path", type=Path)
    r.add_argument("--table")
    r.add_argument("--rows", nargs="+")
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    # scratch: random init, so that CI never waits for the synthetic trunk's pretraining.
    r.add_argument("--profile", default="scratch")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b = sub.add_parser("bands", help="re-measure the cross-version band from the recordings")
    b.add_argument("path", type=Path)
    c = sub.add_parser("check", help="re-run and compare")
    c.add_argument("path", type=Path)
    c.add_argument("--mode", choices=("auto", "exact", "cross-version"), default="auto")
    args = p.parse_args(argv)
    console = Console()
    try:
        if args.cmd == "record":
            spec = None
            if bool(args.table) != bool(args.rows):
                raise ValueError("record: a new spec needs both --table and --rows (and --set "
                                 "overrides); to re-record an existing file give neither")
            if args.table:
                load_table(args.table)  # an unknown table id fails before any run
                spec = {"table": args.table, "profile": args.profile, "rows_run": args.rows,
                        "seeds": args.seeds,
                        "overrides": nest_overrides(parse_overrides(args.set))}
            record_environment(args.path, spec, console)
            console.print(f"written {args.path}")
            return 0
        if args.cmd == "bands":
            expected = load_expected(args.path)
            expected["cross_version"] = measure_cross_version_band(expected)
            atomic_write_json(args.path, expected)
            console.print(expected["cross_version"])
            return 0
        with tempfile.TemporaryDirectory() as tmp:
            result = check_expected(args.path, Path(tmp), console, args.mode)
    except USER_ERRORS as e:
        console.print(f"[bold red]error:[/] {describe_error(e)}", highlight=False)
        return 2
    console.print(findings_table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
