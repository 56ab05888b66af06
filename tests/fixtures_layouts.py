"""Tiny on-disk copies of the real dataset layouts, for the loader tests.

Every tree uses the real directory names and real-form file names (and, for MSMT17, real list
files), holding real 16x8 images. The builders are written independently of the loaders: they
only know the published layouts, never call ``reid_core`` code, and the expected counts, ids
and cameras live hard-coded in the tests.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from PIL import Image

# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


@cache
def _encoded(fmt: str) -> bytes:
    # Encode once and copy the bytes: every file is still a valid image, at a fraction of the
    # cost of re-encoding (the suite shares 2 CPU cores).
    buf = io.BytesIO()
    Image.new("RGB", (8, 16), (120, 60, 30)).save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path) -> None:
    """Write a 16x8 (h x w) image at ``path``; JPEG or PNG according to the suffix."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[path.suffix.lower()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_encoded(fmt))


def write_tree(base: Path, files: dict[str, list[str]]) -> Path:
    """Create ``base/<subdir>/<name>`` images for every entry of ``files``; return ``base``."""
    for subdir, names in files.items():
        (base / subdir).mkdir(parents=True, exist_ok=True)
        for name in names:
            write_image(base / subdir / name)
    return base


# ---------------------------------------------------------------------------------------------
# Market-1501: <dir>/{bounding_box_train,query,bounding_box_test}
# ---------------------------------------------------------------------------------------------

MARKET_FILES: dict[str, list[str]] = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000801_01.jpg",
        "0007_c3s1_001201_02.jpg",
        "0010_c6s4_002202_01.jpg",
        "0010_c5s3_015240_04.jpg",
    ],
    "query": [
        "0001_c1s1_001051_00.jpg",
        "0003_c4s2_010101_00.jpg",
    ],
    "bounding_box_test": [
        "0001_c2s1_000301_01.jpg",
        "0003_c1s1_000151_01.jpg",
        "0000_c1s1_000151_01.jpg",  # distractor
        "0000_c6s2_000300_02.jpg",  # distractor
        "-1_c1s1_000401_03.jpg",  # junk
        "-1_c3s1_000551_02.jpg",  # junk
    ],
}


def build_market(base: Path) -> Path:
    """Market-1501 tree at ``base`` (the dataset directory itself), plus a Thumbs.db."""
    write_tree(base, MARKET_FILES)
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0" * 16)
    return base


# ---------------------------------------------------------------------------------------------
# DukeMTMC-reID: DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}
# ---------------------------------------------------------------------------------------------

DUKE_FILES: dict[str, list[str]] = {
    "bounding_box_train": [
        "0001_c2_f0046182.jpg",
        "0001_c5_f0051341.jpg",
        "0003_c8_f0011111.jpg",
        "0004_c1_f0000001.jpg",
    ],
    "query": [
        "0005_c2_f0046985.jpg",
        "0008_c7_f0100000.jpg",
    ],
    "bounding_box_test": [
        "0005_c1_f0044158.jpg",
        "0008_c3_f0100100.jpg",
        "0009_c4_f0200000.jpg",  # a distractor identity: never queried
    ],
}


def build_duke(base: Path) -> Path:
    """DukeMTMC-reID tree at ``base`` (the DukeMTMC-reID directory itself)."""
    return write_tree(base, DUKE_FILES)


# ---------------------------------------------------------------------------------------------
# CUHK03-NP: cuhk03-np/{labeled,detected}/{bounding_box_train,query,bounding_box_test}
# ---------------------------------------------------------------------------------------------

CUHK03NP_FILES: dict[str, dict[str, list[str]]] = {
    "labeled": {
        "bounding_box_train": [
            "0001_c1_1.png",
            "0001_c1_2.png",
            "0001_c2_6.png",
            "0002_c1_11.png",
            "0002_c2_16.png",
        ],
        "query": ["0003_c1_22.png", "0003_c2_27.png", "0004_c1_31.png", "0004_c2_36.png"],
        "bounding_box_test": [
            "0003_c1_21.png",
            "0003_c1_23.png",
            "0003_c2_28.png",
            "0004_c2_37.png",
        ],
    },
    # Deliberately different counts, so a test can tell which half was loaded.
    "detected": {
        "bounding_box_train": ["0001_c1_1.png", "0001_c2_7.png", "0002_c1_12.png"],
        "query": ["0003_c1_21.png", "0003_c2_26.png"],
        "bounding_box_test": ["0003_c2_27.png", "0003_c1_24.png", "0004_c1_31.png"],
    },
}


def build_cuhk03np(base: Path) -> Path:
    """CUHK03-NP tree with ``base`` as the ``cuhk03-np`` directory (holding both halves)."""
    for box_type, files in CUHK03NP_FILES.items():
        write_tree(base / box_type, files)
    return base


# ---------------------------------------------------------------------------------------------
# MSMT17: MSMT17_V1/{train,test} or MSMT17_V2/{mask_train_v2,mask_test_v2} + list_*.txt
# ---------------------------------------------------------------------------------------------

MSMT_DIRS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}

# list file -> lines "<pid_folder>/<file name> <pid>", paths relative to train/ or test/.
MSMT_LISTS: dict[str, list[str]] = {
    "list_train.txt": [
        "0000/0000_000_01_0303morning_0008_0.jpg 0",
        "0000/0000_001_01_0303morning_0009_0.jpg 0",
        "0003/0003_000_15_0303noon_1000_0.jpg 3",
        "0007/0007_000_12_0304afternoon_0101_0.jpg 7",
    ],
    "list_val.txt": [
        "0000/0000_002_03_0303morning_0045_1.jpg 0",
        "0003/0003_001_07_0303noon_1001_2.jpg 3",
    ],
    "list_query.txt": [
        "0000/0000_000_02_0303morning_0101_0.jpg 0",
        "0001/0001_000_10_0304morning_0200_1.jpg 1",
    ],
    "list_gallery.txt": [
        "0000/0000_001_05_0303noon_0102_0.jpg 0",
        "0001/0001_001_11_0304morning_0201_0.jpg 1",
        "0002/0002_000_13_0304noon_0300_0.jpg 2",
    ],
}


def msmt_dirname(version: str) -> str:
    return f"MSMT17_{version}"


def build_msmt17(base: Path, version: str = "V1") -> Path:
    """MSMT17 tree with ``base`` as the ``MSMT17_V1`` / ``MSMT17_V2`` directory."""
    train_dir, test_dir = MSMT_DIRS[version]
    for list_name, lines in MSMT_LISTS.items():
        image_dir = base / (train_dir if list_name in ("list_train.txt", "list_val.txt")
                            else test_dir)
        for line in lines:
            write_image(image_dir / line.split()[0])
        # The real lists end with a newline; one extra blank line checks it is tolerated.
        (base / list_name).write_text("\n".join(lines) + "\n\n")
    return base


def set_list_line(base: Path, list_name: str, lineno: int, line: str) -> None:
    """Replace (1-based) line ``lineno`` of ``base/list_name`` with ``line``."""
    path = base / list_name
    lines = path.read_text().splitlines()
    lines[lineno - 1] = line
    path.write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------------------------------------
# Market-1501 with gt_bbox/ (the hand-drawn boxes of the multi-query protocol)
# ---------------------------------------------------------------------------------------------

# Detection 00 = hand-drawn. The query images are gt_bbox images too (taken to be so in the
# release), each (id, camera) has several, and train identities have them as well.
MARKET_GT_BBOX_FILES: list[str] = [
    "0001_c1s1_001051_00.jpg",  # = query/0001_c1s1_001051_00.jpg
    "0001_c1s1_001101_00.jpg",
    "0001_c1s2_002301_00.jpg",  # same id and camera, another sequence: pooled too
    "0001_c2s1_000301_00.jpg",  # same id, other camera: not pooled for the c1 query
    "0003_c4s2_010101_00.jpg",  # = query/0003_c4s2_010101_00.jpg
    "0003_c4s2_010151_00.jpg",
    "0002_c1s1_000451_00.jpg",  # a train identity
]


def build_market_with_gt_bbox(base: Path) -> Path:
    """:func:`build_market` plus ``gt_bbox/`` (and a Thumbs.db in it)."""
    build_market(base)
    write_tree(base, {"gt_bbox": MARKET_GT_BBOX_FILES})
    (base / "gt_bbox" / "Thumbs.db").write_bytes(b"\0" * 16)
    return base


# ---------------------------------------------------------------------------------------------
# Partial-REID: Partial-REID_Dataset/{partial_body_images,whole_body_images,occluded_body_images}
# ---------------------------------------------------------------------------------------------

# <3-digit id>_<2-digit index>.jpg; the partial images are crops of the occluded ones (same
# names). Identity 002 has a single partial image; 007 has more gallery than probe images.
PARTIAL_REID_FILES: dict[str, list[str]] = {
    "partial_body_images": ["001_01.jpg", "001_02.jpg", "002_01.jpg", "007_01.jpg"],
    "whole_body_images": ["001_01.jpg", "001_02.jpg", "002_01.jpg", "007_01.jpg",
                          "007_02.jpg", "007_03.jpg"],
    "occluded_body_images": ["001_01.jpg", "001_02.jpg", "002_01.jpg", "007_01.jpg"],
}


def build_partial_reid(base: Path, occluded: bool = True) -> Path:
    """Partial-REID tree with ``base`` as the ``Partial-REID_Dataset`` directory."""
    files = {k: v for k, v in PARTIAL_REID_FILES.items()
             if occluded or k != "occluded_body_images"}
    write_tree(base, files)
    (base / "whole_body_images" / ".DS_Store").write_bytes(b"\0" * 8)
    return base


# ---------------------------------------------------------------------------------------------
# Partial-iLIDS: Partial_iLIDS/{Probe,Gallery} (DSR release) or
# Partial_iLIDS/{partial_body_images,whole_body_images} (PVPM's repackaging)
# ---------------------------------------------------------------------------------------------

PARTIAL_ILIDS_IDS: list[str] = ["001.jpg", "002.jpg", "045.jpg", "119.jpg"]
PARTIAL_ILIDS_DIRS = {"dsr": ("Probe", "Gallery"),
                      "pvpm": ("partial_body_images", "whole_body_images")}


def build_partial_ilids(base: Path, layout: str = "dsr") -> Path:
    """Partial-iLIDS tree with ``base`` as the ``Partial_iLIDS`` directory: one probe and one
    gallery image per identity, named ``<id>.jpg``."""
    probe, gallery = PARTIAL_ILIDS_DIRS[layout]
    return write_tree(base, {probe: PARTIAL_ILIDS_IDS, gallery: PARTIAL_ILIDS_IDS})
