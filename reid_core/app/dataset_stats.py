"""A ``data`` table (dataset statistics, e.g. SAG Table 2): the paper's counts next to the
suite's own counts of the user's copies of the datasets and of the synthetic set.

The counts of a loaded dataset (:func:`dataset_counts`), in the quantities the tables use:

* ``train_ids`` / ``train_images``: the training split;
* ``test_ids``: identities among the queries (id 0 = distractor and -1 = junk left out);
* ``query_images`` / ``gallery_images``: as loaded, distractors and junk included (the papers
  count the raw gallery: Market 19,732);
* ``num_ids`` = train + test identities; ``num_images``: distinct image files over the three
  splits (CUHK03 classic queries and gallery are the same 984 images: counted once);
* ``num_cameras``: distinct camera ids over the three splits.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from reid_core.app.experiment import USER_ERRORS, describe_error
from reid_core.data import ReIDData, build_dataset, resolve_dataset_root
from reid_core.data.names import RECORD_DATASETS, column_of
from reid_core.results.paper_tables import PaperTable, load_table

__all__ = ["QUANTITIES", "dataset_counts", "main"]

#: The quantities a ``data`` table's columns may name that this module counts.
QUANTITIES = ("num_ids", "num_images", "num_cameras", "train_ids", "train_images", "test_ids",
              "query_images", "gallery_images")
#: The synthetic preset the smoke profiles train on, counted next to the real datasets.
SYNTHETIC = "synthetic-small"


def dataset_counts(data: ReIDData) -> dict[str, int]:
    """The :data:`QUANTITIES` of ``data`` (see the module docstring)."""
    test_ids = {pid for _, pid, _ in data.query if pid > 0}
    train_ids = {pid for _, pid, _ in data.train}
    splits = (data.train, data.query, data.gallery)
    return {
        "num_ids": len(train_ids) + len(test_ids),
        "num_images": len({path for split in splits for path, _, _ in split}),
        "num_cameras": len({cam for split in splits for _, _, cam in split}),
        "train_ids": len(train_ids), "train_images": len(data.train),
        "test_ids": len(test_ids),
        "query_images": len(data.query), "gallery_images": len(data.gallery),
    }


def _loader_of(column: str) -> str:
    """The loader of the table dataset ``column``: the record dataset of the same name, else
    the first that fills it (``cuhk03-labeled`` -> ``cuhk03np-labeled``)."""
    names = [n for n in RECORD_DATASETS.names()
             if column_of(n) == column and RECORD_DATASETS.get(n).has_loader]
    if not names:
        raise KeyError(f"no loader reads the table dataset {column!r}")
    return column if column in names else names[0]


def _counts_or_reason(name: str, root: str | Path | None, split: int) -> dict[str, int] | str:
    try:
        return dataset_counts(build_dataset(name, resolve_dataset_root(name, root), split=split))
    except USER_ERRORS as e:
        return f"not counted: {describe_error(e)}"


def main(table_id: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """Print ``table_id``'s published counts next to the suite's (``--data-root``: the real
    datasets; the synthetic set always). Returns the exit code."""
    table: PaperTable = load_table(table_id)
    p = argparse.ArgumentParser(prog=prog or f"reproduce {table_id}",
                                description=f"{table.paper} Table {table.table}: {table.caption}")
    p.add_argument("--data-root", default=None, help="root holding the real datasets")
    p.add_argument("--split", type=int, default=0,
                   help="CUHK03 classic split to count (SAG's code uses split 5; counts are the "
                        "same in every split)")
    args = p.parse_args(argv)
    console = Console()
    if table.kind != "data":
        console.print(f"[bold red]error:[/] {table_id} is a {table.kind} table, not dataset "
                      f"statistics")
        return 2
    columns = [(c.dataset, c.metric) for c in table.columns if c.metric in QUANTITIES]
    datasets = list(dict.fromkeys(d for d, _ in columns))
    ours: dict[str, dict[str, int] | str] = {}
    for dataset in datasets:
        ours[dataset] = ("not counted: no --data-root given" if args.data_root is None else
                         _counts_or_reason(_loader_of(dataset), args.data_root, args.split))
    synthetic = _counts_or_reason(SYNTHETIC, None, 0)
    published = {(c.dataset, c.metric): cell.value
                 for c, cell in zip(table.columns, table.rows[0].cells)}
    for dataset in datasets:
        view = Table(title=f"{table.paper} Table {table.table}: {dataset}")
        for col in ("quantity", "published", "your copy", SYNTHETIC):
            view.add_column(col, justify="left" if col == "quantity" else "right")
        for d, metric in columns:
            if d != dataset:
                continue
            view.add_row(metric, _fmt(published.get((d, metric))), _cell(ours[dataset], metric),
                         _cell(synthetic, metric))
        console.print(view)
        if isinstance(ours[dataset], str):
            console.print(f"{dataset}: {ours[dataset]}", highlight=False, soft_wrap=True)
    if isinstance(synthetic, str):
        console.print(f"{SYNTHETIC}: {synthetic}", highlight=False, soft_wrap=True)
    return 0


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _cell(counts: dict[str, int] | str, metric: str) -> str:
    return "—" if isinstance(counts, str) else f"{counts[metric]:,}"
