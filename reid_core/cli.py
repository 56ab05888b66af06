"""Command line: ``python -m reid_core <command> ...``.

Commands:
    train     train + evaluate one config, write its run record
    datasets  list the registered datasets, or summarise one (``--name X --data-root DIR``)
    report    published vs reproduced report of one paper table, from the run records
    visualize CMC curves and ranked-list images (PNG) of finished runs
    evaluate  evaluate a finished run on another dataset (e.g. Market -> Partial-REID)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from reid_core.config import load_config, parse_overrides


#: What survives a Ctrl-C (checkpoints and records are written atomically, interrupts deferred
#: until a write completes).
INTERRUPTED = ("nothing half-written was left; a training run keeps its checkpoint of the last "
               "finished epoch: continue it with --resume (reproduce scripts: re-run the same "
               "command)")


def _train(args: argparse.Namespace, console: Console) -> int:
    from reid_core.app.experiment import run_experiment

    overrides = parse_overrides(args.set or [])
    if args.seed is not None:
        overrides["seed"] = args.seed
    cfg = load_config(args.config, overrides)
    run_experiment(cfg, data_root=args.data_root, out=args.out, device=args.device,
                   resume=args.resume, force=args.force, console=console)
    return 0


def _datasets(args: argparse.Namespace, console: Console) -> int:
    from reid_core.data import available_datasets, build_dataset, resolve_dataset_root

    if args.name is None:
        console.print("\n".join(available_datasets()))
        return 0
    data = build_dataset(args.name, resolve_dataset_root(args.name, args.data_root))
    console.print(f"{data.name} at {data.root}")
    for split, counts in data.summary().items():
        console.print(f"  {split:8s} " + "  ".join(f"{k} {v}" for k, v in counts.items()))
    if not args.check:
        return 0
    from reid_core.data.check import check_dataset

    return 2 if check_dataset(data, console) else 0  # 2: bad files, as for user errors


def _report(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from rich.markup import escape
    from rich.table import Table

    from reid_core.app.experiment import describe_error
    from reid_core.results.cost_report import cost_environment, is_cost_table, render_cost_report
    from reid_core.results.paper_tables import load_table
    from reid_core.results.report import (
        EmptyReportError, compare, load_records, row_summary, write_report)

    def fail(e: Exception) -> int:  # one unwrapped line (it may name a path), exit 2
        console.print(f"[bold red]error:[/] {escape(describe_error(e))}", highlight=False,
                      soft_wrap=True)
        return 2

    paper_table = load_table(args.table_id)
    with warnings.catch_warnings(record=True) as skipped:  # unreadable records: one note each
        warnings.simplefilter("always", UserWarning)
        records = load_records(Path(args.runs))
    for w in skipped:
        console.print(f"[yellow]note[/]: {escape(str(w.message))}", highlight=False,
                      soft_wrap=True)
    # A memory / FPS table (CSA Table 6) has its own report, written to the same file: the
    # metrics report would replace it with an all-"not run" table.
    cost = is_cost_table(paper_table)
    if cost and (args.dataset or args.profile or args.compare_to):
        return fail(ValueError(f"{args.table_id} is a cost table (memory / FPS measurements): "
                               f"--dataset, --profile and --compare-to do not apply"))
    comp = None if cost else compare(paper_table, records, dataset=args.dataset,
                                     profile=args.profile, compare_to=args.compare_to)
    try:
        path = (render_cost_report(args.table_id, records, Path(args.out)) if comp is None
                else write_report(comp, Path(args.out)))
    except EmptyReportError as e:
        return fail(e)
    if comp is not None:
        table = Table(title=f"{args.table_id} ({comp.selection.profile} profile, "
                            f"{len(comp.selection.records)} records)")
        table.add_column("row")
        table.add_column("n", justify="right")
        table.add_column("verdict")
        for row, n, verdict in row_summary(comp):
            table.add_row(row, str(n), verdict)
        console.print(table)
    environment = (cost_environment(paper_table, records) if comp is None
                   else comp.environment)
    for warning in environment.warnings():  # the report header lists rows per version
        console.print(warning, style="bold yellow", markup=False, highlight=False,
                      soft_wrap=True)
    console.print(f"report written to {path}", highlight=False, soft_wrap=True)
    return 0


def _visualize(args: argparse.Namespace, console: Console) -> int:
    from pathlib import Path

    from reid_core.app.experiment import USER_ERRORS, describe_error
    from reid_core.app.inspect_run import load_run, resolve_run
    from reid_core.results.visualize import plot_cmc, ranked_list_grid

    out = Path(args.out)

    # soft_wrap: printed paths stay on one line (copy-pasteable), whatever the terminal width.
    def say(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    # Resolve every run first: a mistyped id fails before any model is loaded.
    records = [resolve_run(run, args.runs) for run in args.runs_given]
    failed = 0
    combined: dict[tuple[str, str], list[float]] = {}
    for record_path in records:
        try:
            view = load_run(record_path, feature=args.feature, ranked=not args.cmc_only,
                            device=args.device, data_root=args.data_root)
        except USER_ERRORS as e:  # this run cannot be loaded; the others still can
            say(f"[bold red]error:[/] {describe_error(e)}")
            failed += 1
            continue
        for note in view.notes:
            say(f"[yellow]note[/] {view.run_id}: {note}")
        try:  # the CMC needs only the record (or the checkpoint), so it is drawn first
            combined[(view.run_id, view.feature)] = view.require_cmc()
            # One figure per run: every feature with a curve, the selected one first.
            curves = {f: view.cmc[f] for f in dict.fromkeys([view.feature, *view.cmc])}
            path = plot_cmc(curves, out / f"{view.run_id}_cmc.png",
                            title=f"{view.run_id} (CMC from {view.cmc_source})")
            say(f"CMC curve written to {path}")
            if not args.cmc_only:
                r = view.require_retrieval()
                grid = ranked_list_grid(
                    r.query, r.gallery, r.distmat, r.q_pids, r.g_pids, r.q_camids, r.g_camids,
                    out / f"{view.run_id}_ranked.png", top_k=args.top_k,
                    num_queries=args.queries, select=args.select, seed=args.seed,
                    ap_mode=r.ap_mode, title=f"{view.run_id} · {r.feature} · {r.ap_mode} AP")
                say(f"ranked lists written to {grid.path}")
        except USER_ERRORS as e:
            say(f"[bold red]error:[/] {describe_error(e)}")
            failed += 1
    if len(combined) > 1:
        features = sorted({feat for _, feat in combined})
        # Name the feature per curve only when the runs' primary features differ.
        labels = {key: key[0] if len(features) == 1 else f"{key[0]} · {key[1]}"
                  for key in combined}
        path = plot_cmc({labels[k]: c for k, c in combined.items()},
                        out / f"{args.combined_name}.png",
                        title=f"CMC ({', '.join(features)}), {len(combined)} runs")
        say(f"combined CMC curve written to {path}")
    return 2 if failed else 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _file_name(text: str) -> str:
    """A plain file-name component (no path: outputs stay inside --out)."""
    from reid_core.config import ConfigError, check_name

    try:
        return check_name(text, "file name")
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reid_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train and evaluate one config")
    t.add_argument("--config", required=True, help="YAML config file")
    t.add_argument("--data-root", default=None, help="dataset root (default: synthetic cache)")
    t.add_argument("--out", default="results",
                   help="output root: records in OUT/runs, checkpoints in OUT/checkpoints")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run")
    t.add_argument("--force", action="store_true", help="re-run even if a record exists")
    t.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    t.add_argument("--seed", type=int, default=None, help="override the config's seed")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key, e.g. --set optim.epochs=2 (repeatable)")
    t.set_defaults(func=_train)

    d = sub.add_parser("datasets", help="list datasets or summarise one")
    d.add_argument("--name", default=None)
    d.add_argument("--data-root", default=None)
    d.add_argument("--check", action="store_true",
                   help="decode every image (all splits and extras such as gt_bbox); exit 2 "
                        "and list the bad files if any fails")
    d.set_defaults(func=_datasets)

    r = sub.add_parser("report", help="published vs reproduced report of one paper table")
    r.add_argument("table_id", metavar="table-id", help="paper table id, e.g. rga_table1")
    r.add_argument("--runs", default="results/runs", help="directory of run records")
    r.add_argument("--out", default="results/reports", help="directory for the report")
    r.add_argument("--dataset", default=None,
                   help="only use records on this dataset (e.g. cuhk03np-labeled, synthetic)")
    r.add_argument("--profile", default=None, choices=("smoke", "paper"),
                   help="smoke (synthetic runs) or paper (real datasets); default: inferred")
    r.add_argument("--compare-to", default=None, metavar="DATASET",
                   help="smoke profile: published dataset to line synthetic runs up with "
                        "(default: the table's first)")
    r.set_defaults(func=_report)

    v = sub.add_parser("visualize", help="CMC curves and ranked-list images of finished runs",
                       description="Write OUT/<run_id>_cmc.png and OUT/<run_id>_ranked.png per "
                                   "run (and OUT/<combined-name>.png for several runs). Ranked "
                                   "lists need the run's checkpoint "
                                   "(<runs>/../checkpoints/<run_id>/last.pt).")
    v.add_argument("runs_given", nargs="+", metavar="RUN",
                   help="run id (or unique prefix, e.g. rga_sc-seed0) or path to a run record")
    v.add_argument("--runs", default="results/runs", help="directory of run records")
    v.add_argument("--out", default="results/figures", help="directory for the PNG files")
    v.add_argument("--feature", default=None, choices=("after_bn", "before_bn"),
                   help="feature to rank with (default: each record's primary feature)")
    v.add_argument("--top-k", type=_positive_int, default=10,
                   help="gallery images per ranked list")
    v.add_argument("--queries", type=_positive_int, default=8,
                   help="queries (rows) per ranked-list image")
    v.add_argument("--select", default="first",
                   choices=("first", "random", "worst", "best", "failures"),
                   help="which queries: first, random (--seed), worst / best AP, failures "
                        "(rank-1 wrong)")
    v.add_argument("--seed", type=int, default=0, help="seed of --select random")
    v.add_argument("--cmc-only", action="store_true",
                   help="only CMC curves (from the record when it holds one: no model load)")
    v.add_argument("--combined-name", default="cmc_combined", type=_file_name,
                   help="file name (without .png) of the several-runs CMC figure")
    v.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    v.add_argument("--data-root", default=None,
                   help="dataset root (default: the one the run used, if it still exists)")
    v.set_defaults(func=_visualize)

    e = sub.add_parser("evaluate", help="evaluate a finished run on another dataset",
                       description="Load RUN's checkpoint and evaluate it on --dataset with the "
                                   "run's eval settings; writes <runs>/../evaluations/"
                                   "<run_id>--on--<dataset>.json (e.g. DAAF Table 3: a Market "
                                   "model on partial-reid / partial-ilids, ranks 1 and 3).")
    e.add_argument("run", metavar="RUN", help="run id (or unique prefix) or run record path")
    e.add_argument("--dataset", required=True, help="target dataset (registry name)")
    e.add_argument("--data-root", default=None, help="target dataset root")
    e.add_argument("--runs", default="results/runs", help="directory of run records")
    e.add_argument("--ranks", type=int, nargs="+", default=None,
                   help="CMC ranks to report (default: the run's eval.ranks)")
    e.add_argument("--query-mode", default=None, choices=("single", "multi_mean", "multi_max"),
                   help="override eval.query_mode (multi-query needs the dataset's gt_bbox/)")
    e.add_argument("--rerank", action=argparse.BooleanOptionalAction, default=None,
                   help="k-reciprocal re-ranking on / off (default: as the run)")
    e.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    e.set_defaults(func=_evaluate)
    return parser


def _evaluate(args: argparse.Namespace, console: Console) -> int:
    from reid_core.app.cross_eval import evaluate_run_on

    evaluate_run_on(args.run, args.dataset, data_root=args.data_root, runs_dir=args.runs,
                    ranks=args.ranks, query_mode=args.query_mode, rerank=args.rerank,
                    device=args.device, console=console)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    from reid_core.app.experiment import USER_ERRORS, describe_error

    try:
        return args.func(args, console)
    except USER_ERRORS as e:  # user-fixable: one clear message, no traceback
        console.print(f"[bold red]error:[/] {escape(describe_error(e))}", highlight=False,
                      soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.print(f"[bold red]interrupted[/]: {INTERRUPTED}", highlight=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
