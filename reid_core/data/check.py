"""Verify that every image of a dataset decodes (``python -m reid_core datasets --check``).

Training reads each image only when a batch needs it, so one truncated file from an
interrupted extraction stops a run hours in, and only the first bad file is ever named. This
decodes every image of every split once, up front, and lists all the bad ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.table import Table

from reid_core.data.base import ReIDData
from reid_core.data.image_dataset import CorruptImageError, image_problem

#: Bad files printed by :func:`check_dataset` before "... and N more".
MAX_LISTED = 20

ImageRef = str | Path | Sequence[Any]  # a path, or an item whose first element is the path


def check_images(items: Iterable[ImageRef], progress: bool = True, *,
                 description: str = "checking images",
                 console: Console | None = None) -> list[tuple[str, str]]:
    """Decode every image of ``items``; return ``(path, problem)`` of those that fail.

    Args:
        items: ``(path, pid, camid)`` items or plain paths; a path met twice is decoded once.
        progress: show a rich progress bar.
        description: the progress bar's label.
        console: where the progress bar is drawn (default: rich's).

    Returns:
        The bad files in the order given, with what is wrong (``"file not found"``,
        ``"truncated: ..."``, ``"not an image file PIL can read"``, ...). Empty if all decode.
    """
    paths = list(dict.fromkeys(_path_of(it) for it in items))
    bad = []
    for path in _progress(paths, progress, description, console):
        problem = image_problem(path)
        if problem is not None:
            bad.append((path, problem))
    return bad


def check_openable(data: ReIDData) -> None:
    """Fail fast (before training) if any train/query/gallery image is missing or does not
    start like an image file: PIL reads each header only, a fraction of a full decode.

    Raises:
        CorruptImageError: naming the first bad files and the full check's command.
    """
    bad = []
    for group in ("train", "query", "gallery"):
        for path, _, _ in getattr(data, group):
            try:
                with Image.open(path):
                    pass
            except (OSError, UnidentifiedImageError) as e:
                bad.append(f"{path} ({type(e).__name__}: {e})")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        synthetic = str(data.extras.get("fingerprint", "")).startswith("synthetic-spec:")
        fix = (f"delete {data.root} to have it regenerated" if synthetic
               else "re-extract the dataset")
        raise CorruptImageError(
            f"{data.name} at {data.root}: {len(bad)} image(s) cannot be opened: "
            + "; ".join(bad[:5]) + more + f". Fix: {fix}; `python -m reid_core "
            f"datasets --name {data.name} --check` decodes every image and lists the bad ones")


def dataset_image_groups(data: ReIDData) -> dict[str, list[Any]]:
    """The image lists of ``data``: train, query, gallery, then every entry of ``extras`` that
    is a non-empty list of items (e.g. ``gt_bbox``, ``occluded_query``)."""
    groups: dict[str, list[Any]] = {"train": data.train, "query": data.query,
                                    "gallery": data.gallery}
    for key, value in data.extras.items():
        if _is_item_list(value):
            groups[str(key)] = list(value)
    return groups


def check_dataset(data: ReIDData, console: Console, *,
                  progress: bool = True) -> list[tuple[str, str]]:
    """Check every image of ``data``, print a summary table (images / bad per group) and the
    bad files (the first :data:`MAX_LISTED`, then a count); return all bad files, each once
    (a file in two groups, like Market's query copies in ``gt_bbox``, is decoded twice)."""
    rows: list[tuple[str, int, int]] = []
    bad_all: dict[str, str] = {}
    for group, items in dataset_image_groups(data).items():
        bad = check_images(items, progress, description=f"checking {group}", console=console)
        rows.append((group, len({_path_of(it) for it in items}), len(bad)))
        for path, problem in bad:
            bad_all.setdefault(path, problem)
    console.print(f"image check of {data.name} at {data.root}:", highlight=False,
                  soft_wrap=True)
    console.print(_summary_table(rows))
    bad_list = list(bad_all.items())
    _print_bad(console, data, bad_list)
    return bad_list


def _summary_table(rows: list[tuple[str, int, int]]) -> Table:
    table = Table()
    table.add_column("set")
    table.add_column("images", justify="right")
    table.add_column("bad", justify="right")
    for group, num, num_bad in rows:
        table.add_row(group, str(num), f"[red]{num_bad}[/]" if num_bad else "0")
    return table


def _print_bad(console: Console, data: ReIDData, bad: list[tuple[str, str]]) -> None:
    if not bad:
        console.print("all images decode")
        return
    console.print(f"[bold red]{len(bad)} bad image file(s):[/]", highlight=False)
    for path, problem in bad[:MAX_LISTED]:
        console.print(f"  {path}: {problem}", highlight=False, markup=False, soft_wrap=True)
    if len(bad) > MAX_LISTED:
        console.print(f"  ... and {len(bad) - MAX_LISTED} more", highlight=False)
    console.print(f"re-extract the dataset {data.name!r} (synthetic datasets: delete the cache "
                  f"directory to regenerate it), then run the check again", highlight=False,
                  soft_wrap=True)


def _path_of(item: ImageRef) -> str:
    if isinstance(item, (str, Path)):
        return str(item)
    return str(item[0])


def _is_item_list(value: Any) -> bool:
    """A non-empty list of ``(path, ...)`` items (extras also hold dicts and names)."""
    if not isinstance(value, (list, tuple)) or not value:
        return False
    first = value[0]
    return (isinstance(first, (tuple, list)) and len(first) >= 1
            and isinstance(first[0], (str, Path)))


def _progress(paths: list[str], enabled: bool, description: str,
              console: Console | None) -> Iterator[str]:
    if not enabled:
        yield from paths
        return
    from rich.progress import track

    yield from track(paths, total=len(paths), description=description, console=console)
