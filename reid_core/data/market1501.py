"""Market-1501 (Zheng et al., ICCV 2015) in its released directory layout.

Accepted roots (the first that matches wins)::

    <root>/bounding_box_train, bounding_box_test, query          (the dataset directory itself)
    <root>/Market-1501-v15.09.15/...                             (the unzipped archive)
    <root>/market1501/Market-1501-v15.09.15/...                  (torchreid's layout)
    <root>/market1501/...

File names: ``0002_c1s1_000451_03.jpg`` = person 0002, camera 1, sequence 1, frame 000451,
detection 03. Person ``-1`` is junk (dropped); ``0000`` is a distractor (kept in the gallery).

Multi-query: the release also holds ``gt_bbox/`` (25,259 hand-drawn boxes of train and test
persons, named like the others, detection ``00`` like the query images). The official
multi-query code (Market-1501 baseline ``baseline_evaluation_*.m``: ``gt_files = dir([gt_dir
img_name(1:7) '*.jpg'])``) pools, for each query, the features of every gt_bbox image with the
query's person id and camera; layumi's ``evaluate.py`` does the same from
``pytorch/multi-query`` built by ``prepare.py``. When ``gt_bbox/`` exists its images are
returned as ``extras["gt_bbox"]`` (``(path, pid, camid)``, junk ``-1`` dropped); without it
the key is absent. The pooling is ``reid_core.metrics.multi_query.pool_multi_query``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from reid_core.data.base import (
    ImageItem,
    MalformedNameError,
    ReIDData,
    layout_error,
    register_dataset,
    relabel_train,
)

SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
GT_BBOX_DIR = "gt_bbox"  # optional: Market-1501's hand-drawn boxes, used by multi-query
MARKET_NAME = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$", re.ASCII)
MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
MARKET_LAYOUT = """\
    <root>/                      (or <root>/Market-1501-v15.09.15/, <root>/market1501/...)
      bounding_box_train/0002_c1s1_000451_03.jpg ...
      bounding_box_test/0000_c1s1_000151_01.jpg, -1_c1s1_000401_03.jpg ...
      query/0001_c1s1_001051_00.jpg ...
      gt_bbox/0001_c1s1_001051_00.jpg ...   (optional: hand-drawn boxes for multi-query)
"""


def find_split_root(root: Path, candidates: Iterable[str], required: Iterable[str]) -> Path | None:
    """Return the first ``root/candidate`` that holds every directory in ``required``."""
    required = list(required)
    for cand in candidates:
        d = root / cand if cand else root
        if all((d / r).is_dir() for r in required):
            return d
    return None


def layout_problem(root: Path, candidates: Iterable[str], required: Iterable[str]) -> str:
    """Say why :func:`find_split_root` found nothing, for a :func:`layout_error` message.

    Names the candidate directory that came closest (holds the most of ``required``) and the
    directories it lacks, so "query/ is missing" is not reported as a vague layout mismatch.
    """
    if not root.exists():
        return "root does not exist"
    if not root.is_dir():
        return "root is not a directory"
    required = list(required)
    best: tuple[int, Path, list[str]] | None = None
    for cand in candidates:
        d = root / cand if cand else root
        if not d.is_dir():
            continue
        missing = [r for r in required if not (d / r).is_dir()]
        found = len(required) - len(missing)
        if found and (best is None or found > best[0]):
            best = (found, d, missing)
    if best is None:
        return "split directories not found"
    _, d, missing = best
    return f"split directories not found: {d} lacks " + ", ".join(f"{m}/" for m in missing)


def parse_dir(
    directory: Path,
    pattern: re.Pattern[str],
    *,
    dataset: str,
    num_cams: int,
    suffixes: tuple[str, ...] = (".jpg",),
    example: str | None = None,
) -> list[ImageItem]:
    """Parse every image in ``directory`` whose name must match ``pattern``.

    ``pattern`` group 1 is the person id, group 2 the 1-based camera. Junk (id -1) is dropped.
    Files with other suffixes (e.g. ``Thumbs.db``) are ignored; an image whose name does not
    match raises :class:`MalformedNameError` naming the file (and ``example``, a well-formed
    name, when given).
    """
    items: list[ImageItem] = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        m = pattern.match(path.name)
        if m is None:
            raise MalformedNameError(
                f"{dataset}: malformed image name {path} (expected a name like "
                f"{example or MARKET_EXAMPLE})"
            )
        pid, cam = int(m.group(1)), int(m.group(2))
        if not 1 <= cam <= num_cams:
            raise MalformedNameError(
                f"{dataset}: camera c{cam} out of range 1..{num_cams} in file {path}"
            )
        if pid == -1:
            continue
        items.append((str(path.resolve()), pid, cam - 1))
    return items


def read_market_style(
    dataset_dir: Path,
    name: str,
    pattern: re.Pattern[str] = MARKET_NAME,
    num_cams: int = 6,
    suffixes: tuple[str, ...] = (".jpg",),
    *,
    layout: str = MARKET_LAYOUT,
    example: str | None = None,
) -> ReIDData:
    """Read a directory holding ``bounding_box_train``, ``query``, ``bounding_box_test``.

    Shared by Market-1501, DukeMTMC-reID, CUHK03-NP and the synthetic dataset. ``layout`` is
    the ASCII tree shown when a split directory holds no images; ``example`` a well-formed
    file name quoted in :class:`MalformedNameError` messages.

    An optional ``gt_bbox/`` directory beside the splits (Market-1501's multi-query boxes) is
    parsed with the same name scheme into ``extras["gt_bbox"]``; an existing but empty one is
    a layout error (an interrupted copy would otherwise silently disable multi-query).
    """

    def parse(split: str) -> list[ImageItem]:
        return parse_dir(dataset_dir / split, pattern, dataset=name, num_cams=num_cams,
                         suffixes=suffixes, example=example)

    train, query, gallery = parse("bounding_box_train"), parse("query"), parse("bounding_box_test")
    for split, items in (("bounding_box_train", train), ("query", query),
                         ("bounding_box_test", gallery)):
        if not items:
            raise layout_error(name, dataset_dir, layout, f"no images found in {split}/")
    train, mapping = relabel_train(train)
    extras: dict = {"train_pid_to_label": mapping}
    if (dataset_dir / GT_BBOX_DIR).is_dir():
        gt_bbox = parse(GT_BBOX_DIR)
        if not gt_bbox:
            raise layout_error(name, dataset_dir, layout,
                               f"{GT_BBOX_DIR}/ exists but holds no images (remove it, or "
                               f"restore its images for multi-query evaluation)")
        extras[GT_BBOX_DIR] = gt_bbox
    return ReIDData(name, dataset_dir, train, query, gallery, extras=extras)


@register_dataset("market1501")
def load_market1501(root: Path) -> ReIDData:
    """Market-1501: 751 train ids (12,936 images), 3,368 queries, 15,913 gallery images."""
    candidates = ("", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "market1501")
    d = find_split_root(root, candidates, SPLIT_DIRS)
    if d is None:
        raise layout_error("market1501", root, MARKET_LAYOUT,
                           layout_problem(root, candidates, SPLIT_DIRS))
    return read_market_style(d, "market1501")
