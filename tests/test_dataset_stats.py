"""SAG Table 2's counts (``reid_core.app.dataset_stats``) on a fixture tree in the real
DukeMTMC-reID layout and on the synthetic set, and the script as a user runs it."""

from __future__ import annotations

from pathlib import Path

from fixtures_layouts import build_duke

from reid_core.app.dataset_stats import dataset_counts, main
from reid_core.data import build_dataset


def test_counts_of_a_duke_tree(tmp_path: Path) -> None:
    root = build_duke(tmp_path / "DukeMTMC-reID")
    counts = dataset_counts(build_dataset("dukemtmcreid", root))
    # 4 train images of 3 ids; 2 queries of 2 ids; 3 gallery images (one distractor id);
    # cameras 2, 5, 8, 1 (train), 2, 7 (query), 1, 3, 4 (gallery).
    assert counts == {"num_ids": 5, "num_images": 9, "num_cameras": 7, "train_ids": 3,
                      "train_images": 4, "test_ids": 2, "query_images": 2, "gallery_images": 3}


def test_table2_prints_published_and_own_counts(tmp_path: Path, capsys) -> None:
    build_duke(tmp_path / "DukeMTMC-reID")
    assert main("sag_table2", ["--data-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    duke = out.split("SAG Table 2: dukemtmcreid")[1]
    train_images = next(line for line in duke.splitlines() if "train_images" in line)
    assert "16,522" in train_images and "│         4 │" in train_images  # published | yours
    assert "market1501: not counted:" in out  # no Market copy under the root: said, not 0
