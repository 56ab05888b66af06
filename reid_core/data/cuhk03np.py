"""CUHK03-NP: CUHK03 under the new protocol of Zhong et al. (CVPR 2017), Market-style release.

This is the folder release (``cuhk03-np.zip``) of the 767 / 700 identity split, not the
``cuhk-03.mat`` file with the classic 20 splits (that protocol is not handled here)::

    cuhk03-np/
      labeled/                   manually drawn boxes
        bounding_box_train/  query/  bounding_box_test/
      detected/                  DPM-detected boxes
        bounding_box_train/  query/  bounding_box_test/

Accepted roots for box type ``T`` (``labeled`` or ``detected``), first match wins::

    <root>/T/...                 (root = the cuhk03-np directory)
    <root>/cuhk03-np/T/...
    <root>/...                   (root = the T directory itself)

File names: ``0001_c1_1.png`` = person 0001, camera 1 (of the pair's 2 views), image 1; the
last field is an unpadded running image number (``0003_c2_27.png``). Images are PNG. There
is no junk (``-1``) and no distractor (``0000``) id.

Real sizes (767 train ids, 700 test ids; query = one image per camera per test id):

* labeled: train 7,368, query 1,400, gallery 5,328;
* detected: train 7,365, query 1,400, gallery 5,332.
"""

from __future__ import annotations

import re
from pathlib import Path

from reid_core.data.base import ReIDData, layout_error, register_dataset
from reid_core.data.market1501 import (
    SPLIT_DIRS,
    find_split_root,
    layout_problem,
    read_market_style,
)

BOX_TYPES = ("labeled", "detected")
NUM_CAMS = 2
# c(\d) rather than c([12]) so that a c3 reaches parse_dir's "camera out of range" message.
CUHK03NP_NAME = re.compile(r"^(\d{4})_c(\d)_(\d+)\.png$", re.ASCII)
CUHK03NP_EXAMPLE = "0001_c1_1.png"
SUFFIXES = (".png",)


def cuhk03np_layout(box_type: str) -> str:
    """The expected tree for one box type, shown in layout errors."""
    return f"""\
    <root>/                      (root = cuhk03-np/, its parent, or cuhk03-np/{box_type}/)
      {box_type}/
        bounding_box_train/0001_c1_1.png ...
        bounding_box_test/0003_c1_21.png ...
        query/0003_c1_22.png, 0003_c2_27.png ...
"""


def load_cuhk03np(root: Path, box_type: str) -> ReIDData:
    """Load the ``labeled`` or ``detected`` half of CUHK03-NP (see the module docstring)."""
    if box_type not in BOX_TYPES:
        raise ValueError(f"box_type must be one of {BOX_TYPES}, got {box_type!r}")
    root = Path(root)
    name = f"cuhk03np-{box_type}"
    layout = cuhk03np_layout(box_type)
    candidates = (box_type, f"cuhk03-np/{box_type}", "")
    d = find_split_root(root, candidates, SPLIT_DIRS)
    if d is None:
        raise layout_error(name, root, layout, layout_problem(root, candidates, SPLIT_DIRS))
    (other,) = (t for t in BOX_TYPES if t != box_type)
    if d.name.lower() == other:
        # root = the *other* box type's directory matches the "" candidate; loading it would
        # silently report detected numbers as labeled (or vice versa).
        raise layout_error(name, root, layout,
                           f"{d} is the {other!r} half; use cuhk03np-{other} or pass its parent")
    return read_market_style(d, name, CUHK03NP_NAME, NUM_CAMS, SUFFIXES, layout=layout,
                             example=CUHK03NP_EXAMPLE)


@register_dataset("cuhk03np-labeled")
def load_cuhk03np_labeled(root: Path) -> ReIDData:
    """CUHK03-NP labeled: 767 train ids (7,368 images), 1,400 queries, 5,328 gallery images."""
    return load_cuhk03np(root, "labeled")


@register_dataset("cuhk03np-detected")
def load_cuhk03np_detected(root: Path) -> ReIDData:
    """CUHK03-NP detected: 767 train ids (7,365 images), 1,400 queries, 5,332 gallery images."""
    return load_cuhk03np(root, "detected")
