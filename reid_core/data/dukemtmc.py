"""DukeMTMC-reID (Zheng et al., ICCV 2017) in its released Market-style layout.

Accepted roots (the first that matches wins)::

    <root>/bounding_box_train, bounding_box_test, query          (the DukeMTMC-reID directory)
    <root>/DukeMTMC-reID/...                                     (the unzipped archive)
    <root>/dukemtmc-reid/DukeMTMC-reID/...                       (torchreid's / BoT's layout)

File names: ``0001_c2_f0046182.jpg`` = person 0001, camera 2 (of 8), frame 0046182.
Unlike Market-1501 there are no junk (``-1``) images; the gallery holds distractor identities
that never appear as queries, and they are kept as negatives like every gallery image.

Real sizes: train 16,522 images of 702 ids; query 2,228 images (702 ids); gallery 17,661
images (1,110 ids, 408 of them distractors).
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

NAME = "dukemtmcreid"
NUM_CAMS = 8
# Exactly the released scheme: 4-digit id, c1..c8 (range checked by parse_dir), f + 7 digits.
DUKE_NAME = re.compile(r"^(\d{4})_c(\d)_f(\d{7})\.jpg$", re.ASCII)
DUKE_EXAMPLE = "0001_c2_f0046182.jpg"
ROOT_CANDIDATES = ("", "DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID")
DUKE_LAYOUT = """\
    <root>/                      (or <root>/DukeMTMC-reID/, <root>/dukemtmc-reid/DukeMTMC-reID/)
      bounding_box_train/0001_c2_f0046182.jpg ...
      bounding_box_test/0002_c1_f0044158.jpg ...
      query/0005_c2_f0046985.jpg ...
"""


@register_dataset(NAME)
def load_dukemtmcreid(root: Path) -> ReIDData:
    """DukeMTMC-reID: 702 train ids (16,522 images), 2,228 queries, 17,661 gallery images."""
    root = Path(root)
    d = find_split_root(root, ROOT_CANDIDATES, SPLIT_DIRS)
    if d is None:
        raise layout_error(NAME, root, DUKE_LAYOUT,
                           layout_problem(root, ROOT_CANDIDATES, SPLIT_DIRS))
    return read_market_style(d, NAME, DUKE_NAME, NUM_CAMS, layout=DUKE_LAYOUT,
                             example=DUKE_EXAMPLE)
