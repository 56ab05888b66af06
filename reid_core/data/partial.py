"""Partial-REID and Partial-iLIDS, the partial (occluded) re-ID test sets, as released.

Both are **test-only** sets: a model trained on Market-1501 is evaluated on them as they are
(DAAF, Sec. 4.2.2 and Table 3: "Since there is no training data for Partial-REID and
Partial-iLIDS, we test on these two partial datasets using the model trained on Market-1501").
The loaders therefore return an empty ``train`` split.

Protocol (DAAF Table 3; the same in DSR / fast-reid's partial project):

* **Partial-REID** (Zheng et al., ICCV 2015): 60 identities; per identity 5 *partial* images
  (the visible part of an occluded person, cropped by hand) are the **probe** (query) and
  5 *whole-body* images are the **gallery**. Every probe is searched against all 300 gallery
  images; the gallery holds several true matches per probe (not single-shot). The third
  released directory, ``occluded_body_images`` (the uncropped occluded frames the partial
  images were cut from), is not part of this protocol; when present it is returned in
  ``extras["occluded_query"]`` (same names, same ids, probe camera).
* **Partial-iLIDS** (partial probes cut from i-LIDS, which DAAF cites as Zheng et al.,
  CVPR 2011; the release used by DSR, He et al., CVPR 2018, and later work): 119 identities;
  per identity **one** partial probe image and **one** whole-body gallery image
  (single-shot: exactly one true match per probe).
* Reported metrics: CMC rank-1 and rank-3 (DAAF reports no mAP for these sets).

Cameras: the sets carry no camera labels. Probe images get camid **0** and gallery images
camid **1**, so under the Market-1501 evaluation rule (same id *and* same camera = junk)
**nothing is junk-removed**: every gallery image of the probe's identity is a true match.
(Loaders that read a number from the file name as the camera -- e.g. the image index of
``001_02.jpg`` -- would silently drop true matches that share it.) Person ids are the numbers
in the file names, kept as released (Partial-REID 1..60, Partial-iLIDS 1..119).

Released layouts accepted (the first candidate directory that matches wins)::

    Partial-REID                                    Partial-iLIDS
    <root>/                                         <root>/
      [Partial-REID_Dataset/ | PartialREID/ |         [Partial_iLIDS/ | PartialiLIDS/ |
       Partial_REID/ | Partial-REID/ |                 Partial-iLIDS/ | partial_ilids/ |
       partial_reid/ | partial-reid/]                  partial-ilids/]
        partial_body_images/001_01.jpg ... (probe)      Probe/001.jpg ...      (probe)
        whole_body_images/001_01.jpg ...   (gallery)    Gallery/001.jpg ...    (gallery)
        occluded_body_images/001_01.jpg ... (optional)  or, as repackaged by PVPM:
                                                        partial_body_images/001.jpg (probe)
                                                        whole_body_images/001.jpg   (gallery)

Sources for the layouts and names: the official archive ``Partial-REID_Dataset`` with
``occluded_body_images`` / ``partial_body_images`` / ``whole_body_images`` and names
``<3-digit id>_<2-digit index>.jpg`` (EANet's loader parses the id from the first three
characters; PVPM and fast-reid split on ``_``); Partial-iLIDS with ``Probe`` / ``Gallery`` and
names ``<id>.jpg`` (the reid-strong-baseline fork by DAAF's first author, and DSR-style
loaders), repackaged by PVPM as ``partial_body_images`` / ``whole_body_images``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from reid_core.data.base import (
    DatasetError,
    ImageItem,
    MalformedNameError,
    ReIDData,
    layout_error,
    register_dataset,
)
from reid_core.data.market1501 import find_split_root, layout_problem

PROBE_CAMID, GALLERY_CAMID = 0, 1

# --- Partial-REID ------------------------------------------------------------------------------

PARTIAL_REID_NAME = "partial-reid"
PARTIAL_REID_CANDIDATES = ("", "Partial-REID_Dataset", "PartialREID", "Partial_REID",
                           "Partial-REID", "partial_reid", "partial-reid")
PARTIAL_REID_PROBE, PARTIAL_REID_GALLERY, PARTIAL_REID_OCCLUDED = (
    "partial_body_images", "whole_body_images", "occluded_body_images")
# <id>_<index>.jpg; released with 3-digit ids and 2-digit indices, any width accepted.
PARTIAL_REID_FILE = re.compile(r"^(\d+)_(\d+)\.jpg$", re.ASCII | re.IGNORECASE)
PARTIAL_REID_EXAMPLE = "001_01.jpg"
PARTIAL_REID_LAYOUT = """\
    <root>/                 (or <root>/Partial-REID_Dataset/, PartialREID/, Partial_REID/, ...)
      partial_body_images/001_01.jpg ... 060_05.jpg    (probe: cropped partial bodies)
      whole_body_images/001_01.jpg ... 060_05.jpg      (gallery: whole bodies)
      occluded_body_images/001_01.jpg ...              (optional, not used by the protocol)
"""

# --- Partial-iLIDS -----------------------------------------------------------------------------

PARTIAL_ILIDS_NAME = "partial-ilids"
PARTIAL_ILIDS_CANDIDATES = ("", "Partial_iLIDS", "PartialiLIDS", "Partial-iLIDS",
                            "partial_ilids", "partial-ilids")
# (probe dir, gallery dir): the DSR release, then PVPM's repackaging.
PARTIAL_ILIDS_DIRS = (("Probe", "Gallery"), ("partial_body_images", "whole_body_images"))
PARTIAL_ILIDS_FILE = re.compile(r"^(\d+)\.jpg$", re.ASCII | re.IGNORECASE)
PARTIAL_ILIDS_EXAMPLE = "001.jpg"
PARTIAL_ILIDS_LAYOUT = """\
    <root>/                 (or <root>/Partial_iLIDS/, PartialiLIDS/, partial_ilids/, ...)
      Probe/001.jpg ... 119.jpg       (probe: one partial image per person)
      Gallery/001.jpg ... 119.jpg     (gallery: one whole-body image per person)
    or  partial_body_images/001.jpg + whole_body_images/001.jpg   (PVPM's repackaging)
"""

IMAGE_SUFFIXES = (".jpg",)


def parse_flat_dir(directory: Path, pattern: re.Pattern[str], camid: int, *, dataset: str,
                   example: str) -> list[ImageItem]:
    """``(path, pid, camid)`` for every image in ``directory``; group 1 of ``pattern`` = pid.

    Files with other suffixes (``Thumbs.db``, ``.DS_Store``) are ignored; an image whose name
    does not match raises :class:`MalformedNameError` naming the file and a well-formed name.
    """
    items: list[ImageItem] = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = pattern.match(path.name)
        if m is None:
            raise MalformedNameError(
                f"{dataset}: malformed image name {path} (expected a name like {example})")
        items.append((str(path.resolve()), int(m.group(1)), camid))
    return items


def _read_probe_gallery(dataset: str, root: Path, layout: str, probe_dir: Path,
                        gallery_dir: Path, pattern: re.Pattern[str],
                        example: str) -> tuple[list[ImageItem], list[ImageItem]]:
    """Probe (camid 0) and gallery (camid 1) items; both must hold images, and every probe
    identity a gallery image (else the probe could never be matched: a missing or misnamed
    gallery file, reported by file name)."""
    query = parse_flat_dir(probe_dir, pattern, PROBE_CAMID, dataset=dataset, example=example)
    gallery = parse_flat_dir(gallery_dir, pattern, GALLERY_CAMID, dataset=dataset,
                             example=example)
    for d, items in ((probe_dir, query), (gallery_dir, gallery)):
        if not items:
            raise layout_error(dataset, root, layout, f"no images found in {d.name}/")
    gallery_ids = {pid for _, pid, _ in gallery}
    for path, pid, _ in query:
        if pid not in gallery_ids:
            raise DatasetError(
                f"{dataset}: probe image {path} has person id {pid}, but {gallery_dir} holds "
                f"no image of that person (every probe needs its whole-body gallery image)")
    return query, gallery


def _find(dataset: str, root: Path, candidates: Iterable[str],
          dir_pairs: Iterable[tuple[str, str]], layout: str) -> tuple[Path, str, str]:
    """The first ``root/candidate`` holding one of ``dir_pairs``: (directory, probe, gallery)."""
    candidates, dir_pairs = tuple(candidates), tuple(dir_pairs)
    for pair in dir_pairs:
        d = find_split_root(root, candidates, pair)
        if d is not None:
            return d, pair[0], pair[1]
    problems = {layout_problem(root, candidates, pair) for pair in dir_pairs}
    raise layout_error(dataset, root, layout, "; ".join(sorted(problems)))


def read_partial_reid(dataset_dir: Path, name: str = PARTIAL_REID_NAME) -> ReIDData:
    """Read a Partial-REID directory (the one holding ``partial_body_images/`` etc.).

    Returns ``ReIDData`` with ``train == []``, ``query`` = partial bodies (camid 0),
    ``gallery`` = whole bodies (camid 1) and, if ``occluded_body_images/`` exists,
    ``extras["occluded_query"]`` = the uncropped occluded images (camid 0).
    """
    probe_dir = dataset_dir / PARTIAL_REID_PROBE
    gallery_dir = dataset_dir / PARTIAL_REID_GALLERY

    query, gallery = _read_probe_gallery(name, dataset_dir, PARTIAL_REID_LAYOUT, probe_dir,
                                         gallery_dir, PARTIAL_REID_FILE, PARTIAL_REID_EXAMPLE)
    extras: dict = {"probe_dir": PARTIAL_REID_PROBE, "gallery_dir": PARTIAL_REID_GALLERY}
    occluded_dir = dataset_dir / PARTIAL_REID_OCCLUDED
    if occluded_dir.is_dir():
        extras["occluded_query"] = parse_flat_dir(occluded_dir, PARTIAL_REID_FILE, PROBE_CAMID,
                                                  dataset=name, example=PARTIAL_REID_EXAMPLE)
    return ReIDData(name, dataset_dir, [], query, gallery, extras=extras)


def read_partial_ilids(dataset_dir: Path, name: str = PARTIAL_ILIDS_NAME,
                       dirs: tuple[str, str] | None = None) -> ReIDData:
    """Read a Partial-iLIDS directory (the one holding ``Probe/`` + ``Gallery/``, or PVPM's
    ``partial_body_images/`` + ``whole_body_images/``; ``dirs`` forces one pair).

    Returns ``ReIDData`` with ``train == []``, ``query`` = probes (camid 0), ``gallery`` =
    whole bodies (camid 1).
    """
    if dirs is None:
        dirs = next((pair for pair in PARTIAL_ILIDS_DIRS
                     if all((dataset_dir / p).is_dir() for p in pair)), PARTIAL_ILIDS_DIRS[0])
    probe_dir, gallery_dir = dataset_dir / dirs[0], dataset_dir / dirs[1]
    for d in (probe_dir, gallery_dir):
        if not d.is_dir():
            raise layout_error(name, dataset_dir, PARTIAL_ILIDS_LAYOUT, f"{d.name}/ is missing")

    query, gallery = _read_probe_gallery(name, dataset_dir, PARTIAL_ILIDS_LAYOUT, probe_dir,
                                         gallery_dir, PARTIAL_ILIDS_FILE, PARTIAL_ILIDS_EXAMPLE)
    return ReIDData(name, dataset_dir, [], query, gallery,
                    extras={"probe_dir": dirs[0], "gallery_dir": dirs[1]})


@register_dataset(PARTIAL_REID_NAME)
def load_partial_reid(root: Path) -> ReIDData:
    """Partial-REID: 60 ids, 300 partial probes vs 300 whole-body gallery images (test only)."""
    d, _, _ = _find(PARTIAL_REID_NAME, root, PARTIAL_REID_CANDIDATES,
                    [(PARTIAL_REID_PROBE, PARTIAL_REID_GALLERY)], PARTIAL_REID_LAYOUT)
    return read_partial_reid(d)


@register_dataset(PARTIAL_ILIDS_NAME)
def load_partial_ilids(root: Path) -> ReIDData:
    """Partial-iLIDS: 119 ids, one partial probe and one whole-body gallery image each."""
    d, probe, gallery = _find(PARTIAL_ILIDS_NAME, root, PARTIAL_ILIDS_CANDIDATES,
                              PARTIAL_ILIDS_DIRS, PARTIAL_ILIDS_LAYOUT)
    return read_partial_ilids(d, dirs=(probe, gallery))
