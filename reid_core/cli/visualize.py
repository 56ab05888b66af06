"""``visualize``: CMC curves and ranked-list images (PNG) of finished runs."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from reid_core.cli import options
from reid_core.config.names import declared_features
from reid_core.cli.errors import EXIT_USER_ERROR, print_error

NAME = "visualize"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="CMC curves and ranked-list images of finished runs",
        description="Write OUT/<run_id>_cmc.png and OUT/<run_id>_ranked.png per run (and "
                    "OUT/<combined-name>.png for several runs). Ranked lists need the run's "
                    "checkpoint (<runs>/../checkpoints/<run_id>/final.pt).")
    p.add_argument("runs_given", nargs="+", metavar="RUN",
                   help="run id (or unique prefix, e.g. rga_sc-seed0) or path to a run record")
    options.add_runs_dir(p)
    options.add_out(p, options.results_path("figures"), "directory for the PNG files")
    p.add_argument("--feature", default=None, choices=declared_features(),
                   help="feature to rank with, one of the run's head's (default: each "
                        "record's primary feature)")
    p.add_argument("--top-k", type=options.positive_int, default=10,
                   help="gallery images per ranked list")
    p.add_argument("--queries", type=options.positive_int, default=8,
                   help="queries (rows) per ranked-list image")
    p.add_argument("--select", default="first",
                   choices=("first", "random", "worst", "best", "failures"),
                   help="which queries: first, random (--seed), worst / best AP, failures "
                        "(rank-1 wrong)")
    p.add_argument("--seed", type=int, default=0, help="seed of --select random")
    p.add_argument("--cmc-only", action="store_true",
                   help="only CMC curves (from the record when it holds one: no model load)")
    p.add_argument("--combined-name", default="cmc_combined", type=options.file_name,
                   help="file name (without .png) of the several-runs CMC figure")
    options.add_device(p)
    options.add_data_root(p, help="dataset root (default: the one the run used, if it still "
                                  "exists)")
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    from reid_core.app.experiment import USER_ERRORS
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
            print_error(console, e)
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
            print_error(console, e)
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
    return EXIT_USER_ERROR if failed else 0
