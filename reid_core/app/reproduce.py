"""Reproduce one published table: its rows' configs, all runs through the core, one report.

The thin scripts in ``reproduce/`` call :func:`main` with a table id. The table's reproducible
rows come from ``paper_tables/<table>.yaml`` (each names its config id); each config is built
from ``configs/papers/<paper>.yaml``::

    profiles.paper  <-  profiles.<profile> (overrides)  <-  variants.<config id>  <-  ...

(:mod:`reid_core.app.paper_configs`).

Finished runs are skipped and interrupted ones resume from their checkpoint, so re-running a
script finishes what is missing. The report is regenerated from the run records at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reid_core.app.experiment import USER_ERRORS, describe_error
from reid_core.app.paper_configs import (  # noqa: F401 (re-exported: the reproduce API)
    CONFIGS_DIR, PROFILES, build_row_config, deep_merge, load_paper_configs)
from reid_core.app.sweep import SweepOptions, add_sweep_arguments, run_sweep, sweep_options
from reid_core.app.tables import RowRunner, render_for_reproduce, table_kind, train_row
from reid_core.config import ConfigError, RunConfig
from reid_core.data.names import NO_DATASET, smoke_variant
from reid_core.resources import default_results_dir
from reid_core.results.paper_tables import PaperTable, configs_for_table, load_table
from reid_core.results.report.cell_values import eval_setting
from reid_core.results.store import RunStore, load_records, read_record
from reid_core.utils.distributed import require_group_if_launched


def select_rows(table: PaperTable, wanted: Sequence[str] | None) -> list[str]:
    """Config ids of the table's reproducible rows, optionally restricted to ``wanted``
    (row names as printed, or config ids)."""
    ids = configs_for_table(table.table_id)
    if not wanted:
        return ids
    by_name = {r.name: r.config for r in table.rows if r.config}
    chosen = []
    for w in wanted:
        cid = by_name.get(w, w)
        if cid not in ids:
            raise KeyError(f"--rows: {w!r} is not a reproducible row of {table.table_id}; "
                           f"valid: {', '.join(ids)} (or the row names)")
        if cid not in chosen:
            chosen.append(cid)
    return chosen


def build_parser(table_id: str, description: str,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """The flags of a reproduce run (``prog`` defaults to ``reproduce <table_id>``, what the
    scripts in ``reproduce/`` print; ``python -m reid_core reproduce`` passes its own)."""
    p = argparse.ArgumentParser(prog=prog or f"reproduce {table_id}", description=description)
    p.add_argument("--profile", choices=list(PROFILES), default=None,
                   help="; ".join(f"{name}: {prof.help}" for name, prof in PROFILES.items())
                        + ". Default: smoke without --data-root, paper with it")
    p.add_argument("--data-root", default=None, help="root holding the real datasets")
    p.add_argument("--dataset", default=None, help="override the profile's dataset")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default 0)")
    p.add_argument("--rows", nargs="+", default=None, help="subset of rows (names or config ids)")
    p.add_argument("--force", action="store_true", help="re-run finished configurations")
    p.add_argument("--out", default=str(default_results_dir()),
                   help="results root (runs/, checkpoints/, reports/); default: the "
                        "repository's results/, or ./results for an installed package")
    add_sweep_arguments(p)
    return p


ReportWriter = Callable[[str, list[dict[str, Any]], Path], Path]


def main(table_id: str, argv: Sequence[str] | None = None, run_row: RowRunner | None = None,
         report: ReportWriter | None = None, *, prog: str | None = None) -> int:
    """Run every reproducible row of ``table_id`` (x seeds) and write its report.

    The row runner, the report and a fixed profile come from the table's declared kind
    (:data:`reid_core.app.tables.TABLE_KINDS`); ``run_row`` / ``report``
    (``report(table_id, records, reports_dir)``) replace them (tests, other drivers).
    ``prog`` names the command in ``--help`` and usage errors (see :func:`build_parser`)."""
    console = Console()
    table = load_table(table_id)
    if table.kind == "data" and run_row is None:  # dataset statistics: counted, not trained
        from reid_core.app.dataset_stats import main as count_datasets

        return count_datasets(table_id, argv, prog=prog)
    parser = build_parser(table_id, f"{table.paper} Table {table.table}: {table.caption}", prog)
    args, extra = parser.parse_known_args(argv)
    kind = table_kind(table)
    run_row = run_row or kind.run_row
    if kind.profile is not None:  # e.g. parameter counts: always of the paper-size model
        args.profile = kind.profile
    try:
        require_group_if_launched()  # N torchrun processes would each train every row
        if run_row is None:
            raise ValueError(f"{table_id} is a {table.kind} table: its rows are published "
                             f"data, nothing is reproduced")
        try:
            sweep = sweep_options(args, extra)
        except ConfigError as e:
            parser.error(str(e))  # a usage error: argparse's message and exit status 2
        if not sweep.inline and run_row is not train_row:
            raise ValueError(f"--executor {sweep.executor}: {table_id} is a {table.kind} table, "
                             f"measured in seconds here; run it without --executor")
        if args.profile is None:
            args.profile = "paper" if args.data_root else "smoke"
        if PROFILES[args.profile].scale == "smoke" and args.data_root is None:
            console.print(f"[bold yellow]No --data-root given: running the {args.profile} "
                          f"profile on the embedded synthetic dataset: "
                          f"{PROFILES[args.profile].help}. Absolute numbers are not comparable "
                          f"with the paper's; the report judges the claims (gains over the "
                          f"baseline) at this scale.[/]")
        source, raw = load_paper_configs(table.paper)
        ids = select_rows(table, args.rows)
        datasets = {cid: args.dataset or _smoke_protocol_dataset(table, raw, source, cid,
                                                                 args.profile) for cid in ids}
        configs = [build_row_config(raw, source, cid, args.profile, seed, datasets[cid])
                   for cid in ids for seed in args.seeds]
    except USER_ERRORS as e:
        return _stopped(console, e)

    console.print(f"{table.paper} Table {table.table}: {len(configs)} run(s) "
                  f"({len(ids)} row config(s) x {len(args.seeds)} seed(s)), profile {args.profile}")
    t0, started = time.perf_counter(), datetime.now(timezone.utc).replace(microsecond=0)
    done = (_run_inline(configs, run_row, args, console) if sweep.inline
            else _run_as_jobs(table_id, configs, args, sweep, console))
    if isinstance(done, int):  # an exit status: stopped, or jobs left running (--no-wait)
        return done
    # The report covers every record in <out>/runs (earlier invocations, e.g. other seeds, too);
    # the report itself picks the table's configs and sets aside superseded recipes.
    store = RunStore(Path(args.out))
    try:
        _multi_query_evaluations(table, done, store, args, console)
    except (*USER_ERRORS, KeyboardInterrupt) as e:
        return _stopped(console, e)
    records = load_records(store.runs_dir) if store.runs_dir.is_dir() else []
    known = {r["run_id"] for r in records}
    records += [r for r in done if r["run_id"] not in known]
    if store.evaluations_dir.is_dir():
        records += load_records(store.evaluations_dir)
    try:
        path = (render_for_reproduce(table, records, store.reports_dir, args.profile)
                if report is None else report(table_id, records, store.reports_dir))
    except USER_ERRORS as e:  # e.g. EmptyReportError: the existing report is left as it was
        console.print(_summary(table_id, done, time.perf_counter() - t0, started))
        return _stopped(console, e)
    console.print(_summary(table_id, done, time.perf_counter() - t0, started))
    console.print(f"report: {path}")
    return 0


def _run_inline(configs: list[RunConfig], run_row: RowRunner, args: argparse.Namespace,
                console: Console) -> list[dict[str, Any]] | int:
    """Run the rows here, one after the other: their records, or the exit status of a stop."""
    done: list[dict[str, Any]] = []
    for i, cfg in enumerate(configs, 1):
        console.rule(f"[{i}/{len(configs)}] {cfg.name} seed {cfg.seed}")
        try:
            done.append(run_row(cfg, args, console))
        except (*USER_ERRORS, KeyboardInterrupt) as e:
            status = _stopped(console, e)
            console.print(f"{len(done)} of {len(configs)} run(s) finished; fix the cause and "
                          f"re-run the same command to continue (finished runs are skipped, "
                          f"an interrupted one resumes from its last epoch)")
            return status
    return done


def _stopped(console: Console, e: BaseException) -> int:
    """Say why the command stops (a user error in one line, or Ctrl-C); its exit status."""
    if isinstance(e, KeyboardInterrupt):
        console.print("[bold red]interrupted[/]", highlight=False)
        return 130
    console.print(f"[bold red]error:[/] {escape(describe_error(e))}", highlight=False,
                  soft_wrap=True)
    return 2


def _run_as_jobs(table_id: str, configs: list[RunConfig], args: argparse.Namespace,
                 sweep: SweepOptions, console: Console) -> list[dict[str, Any]] | int:
    """Hand the rows to the scheduler (:func:`reid_core.app.sweep.run_sweep`): the records of
    the finished runs, or an exit status (an error, or 0 with ``--no-wait``)."""
    try:
        finished = run_sweep(table_id, configs, args, sweep, console)
    except (*USER_ERRORS, KeyboardInterrupt) as e:
        return _stopped(console, e)
    if not sweep.wait:
        return 0
    store = RunStore(Path(args.out))
    return [read_record(store.record_path(run_id)) for run_id in finished]


def _smoke_protocol_dataset(table: PaperTable, raw: dict[str, Any], source: Path,
                            config_id: str, profile: str) -> str | None:
    """On a smoke-scale profile, the synthetic dataset read under the protocol of the table's
    first dataset when one is declared (a CUHK03-classic table runs on
    ``synthetic-small-cuhk03-classic``); None: the profile's own dataset."""
    if PROFILES[profile].scale != "smoke":
        return None
    first = next((c.dataset for c in table.columns if c.dataset != NO_DATASET), None)
    if first is None:
        return None
    base = build_row_config(raw, source, config_id, profile, 0).data.dataset
    return smoke_variant(base, first)


#: Market-1501 multi-query as SAG's code pools it: the mean feature of the query's ``gt_bbox``
#: images of the same identity and camera (``eval.query_mode``).
MULTI_QUERY_MODE = "multi_mean"


def _multi_query_evaluations(table: PaperTable, runs: list[dict[str, Any]], store: RunStore,
                             args: argparse.Namespace, console: Console) -> None:
    """For a table with multi-query columns: evaluate each finished run of this invocation
    with :data:`MULTI_QUERY_MODE` on its own dataset (an ``evaluation`` record beside it;
    one that exists is kept)."""
    if not any(table.column_query(c) == "multi" for c in table.columns):
        return
    from reid_core.app.cross_eval import evaluate_run_on

    for record in runs:
        if "final" not in record:  # a measurement, not a trained run
            continue
        dataset = record["dataset"]["name"]
        path = store.evaluation_path(record["run_id"], dataset, [MULTI_QUERY_MODE] + (
            ["rerank"] if eval_setting(record, "rerank") else []))
        if path.is_file():
            continue
        console.rule(f"{record['run_id']}: multi-query evaluation ({MULTI_QUERY_MODE})")
        evaluate_run_on(record["run_id"], dataset, data_root=args.data_root,
                        runs_dir=store.runs_dir, query_mode=MULTI_QUERY_MODE,
                        device=args.device, console=console)


def _finished_since(record: dict[str, Any], started: datetime) -> bool:
    """Whether ``record`` was written by this invocation (not one it found and skipped)."""
    try:
        return datetime.fromisoformat(str(record.get("finished_at"))) >= started
    except ValueError:  # no stamp: not known to be older
        return True


def _summary(table_id: str, records: list[dict[str, Any]], seconds: float,
             started: datetime) -> Table:
    new = [_finished_since(r, started) for r in records]
    t = Table(title=f"{table_id}: {len(records)} run(s), {sum(new)} new and "
                    f"{len(records) - sum(new)} found done; {seconds / 60:.1f} min")
    # Measurement records (parameter counts, costs) carry no metrics: show their count instead.
    measured = any("measurements" in r for r in records)
    cols = ("config", "seed", "params (M)") if measured else (
        "config", "seed", "dataset", "R1", "mAP", "wall (s)")
    for col in (*cols, "record"):
        t.add_column(col, justify="right" if col not in ("config", "dataset", "record") else "left")
    for r, is_new in zip(records, new):
        status = "new" if is_new else "found done"
        if measured:
            params = (r.get("measurements") or {}).get("params")
            t.add_row(r["config_name"], str(r["seed"]),
                      f"{params / 1e6:.2f}" if isinstance(params, int) else "-", status)
            continue
        final = r.get("final", {}).get(r.get("primary_feature", ""), {})
        fmt = lambda k: f"{final[k]:.2f}" if k in final else "-"  # noqa: E731
        t.add_row(r["config_name"], str(r["seed"]), r["dataset"]["name"], fmt("R1"), fmt("mAP"),
                  f"{r.get('wall_time_s', 0):.0f}", status)
    return t

