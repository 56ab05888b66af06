"""Market-1501 multi-query (gt_bbox) and the partial sets (Partial-REID, Partial-iLIDS).

* loaders on tiny trees in the real layouts (``fixtures_layouts``), checked against names, ids
  and cameras hard-coded here;
* multi-query pooling against by-hand arithmetic;
* the synthetic dataset's new ``gt_bbox/`` and partial sets, and the byte-identity of its
  original splits with the files the committed results were measured on.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_layouts import (
    PARTIAL_ILIDS_DIRS,
    build_market,
    build_market_with_gt_bbox,
    build_partial_ilids,
    build_partial_reid,
    write_image,
)
from PIL import Image

from reid_core.data import (
    DatasetError,
    DatasetLayoutError,
    MalformedNameError,
    available_datasets,
    build_dataset,
)
from reid_core.data.market1501 import MARKET_NAME
from reid_core.data.synthetic import PRESETS, SyntheticSpec, generate_synthetic
from reid_core.metrics.multi_query import MultiQueryError, pool_multi_query, require_gt_bbox


def by_name(items) -> dict[str, tuple[int, int]]:
    return {Path(p).name: (pid, cam) for p, pid, cam in items}


def assert_real_files(items) -> None:
    for path, _, _ in items:
        assert os.path.isabs(path) and os.path.isfile(path)


def market_rule(q: tuple[str, int, int], gallery) -> tuple[list[int], list[int]]:
    """(true matches, junk) gallery indices of query ``q`` under the Market-1501 rule: junk =
    pid -1 or same pid and same camera; true match = same pid, other camera. Spelled out here
    so that these tests do not depend on the evaluator's implementation."""
    _, qpid, qcam = q
    junk = [j for j, (_, p, c) in enumerate(gallery) if p == -1 or (p == qpid and c == qcam)]
    good = [j for j, (_, p, c) in enumerate(gallery) if p == qpid and c != qcam]
    return good, junk


def first_hit_rank(dist: np.ndarray, q, gallery) -> int:
    """1-based rank of the first true match among non-junk items (ties: lower index first)."""
    good, junk = market_rule(q, gallery)
    order = [j for j in np.argsort(dist, kind="stable") if j not in junk]
    return min(order.index(j) for j in good) + 1


# ---------------------------------------------------------------------------------------------
# Market-1501 gt_bbox
# ---------------------------------------------------------------------------------------------


def test_market_gt_bbox_loaded(tmp_path: Path) -> None:
    build_market_with_gt_bbox(tmp_path / "Market-1501-v15.09.15")
    data = build_dataset("market1501", tmp_path)
    assert (len(data.train), len(data.query), len(data.gallery)) == (5, 2, 4)  # unchanged
    gt = data.extras["gt_bbox"]
    assert_real_files(gt)
    assert by_name(gt) == {  # pid as written, camera 0-based; Thumbs.db ignored
        "0001_c1s1_001051_00.jpg": (1, 0),
        "0001_c1s1_001101_00.jpg": (1, 0),
        "0001_c1s2_002301_00.jpg": (1, 0),
        "0001_c2s1_000301_00.jpg": (1, 1),
        "0003_c4s2_010101_00.jpg": (3, 3),
        "0003_c4s2_010151_00.jpg": (3, 3),
        "0002_c1s1_000451_00.jpg": (2, 0),
    }
    assert require_gt_bbox(data) is gt


def test_market_without_gt_bbox_has_no_key_and_multi_query_says_so(tmp_path: Path) -> None:
    build_market(tmp_path)
    data = build_dataset("market1501", tmp_path)
    assert "gt_bbox" not in data.extras
    with pytest.raises(MultiQueryError) as exc:
        require_gt_bbox(data)
    msg = str(exc.value)
    assert "market1501" in msg and str(tmp_path / "gt_bbox") in msg


def test_market_empty_gt_bbox_is_a_layout_error(tmp_path: Path) -> None:
    build_market(tmp_path)
    (tmp_path / "gt_bbox").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"gt_bbox/ exists but holds no images"):
        build_dataset("market1501", tmp_path)


def test_market_malformed_gt_bbox_name_names_the_file(tmp_path: Path) -> None:
    build_market_with_gt_bbox(tmp_path)
    write_image(tmp_path / "gt_bbox" / "0001_c1_001051.jpg")
    with pytest.raises(MalformedNameError, match=r"gt_bbox/0001_c1_001051\.jpg"):
        build_dataset("market1501", tmp_path)


# ---------------------------------------------------------------------------------------------
# Multi-query pooling
# ---------------------------------------------------------------------------------------------

# gt_bbox features: (pid, camid, feature)
MQ = [
    (1, 0, [3.0, 4.0]),
    (1, 1, [100.0, 0.0]),  # same person, other camera: never pooled for a c1 query
    (1, 0, [0.0, 2.0]),
    (3, 3, [1.0, 0.0]),
    (2, 0, [0.0, -7.0]),  # other person, same camera
]
Q_PIDS, Q_CAMS = [1, 3], [0, 3]


def pool(mode: str, **kw) -> torch.Tensor:
    mq = torch.tensor([f for _, _, f in MQ])
    return pool_multi_query(torch.zeros(2, 2), Q_PIDS, Q_CAMS, mq, [p for p, _, _ in MQ],
                            [c for _, c, _ in MQ], mode, **kw)


def test_pool_raw_mean_and_max_by_hand() -> None:
    # query 0 pools [3, 4] and [0, 2]; query 1 pools [1, 0] alone.
    assert torch.allclose(pool("mean", normalize=False), torch.tensor([[1.5, 3.0], [1.0, 0.0]]))
    assert torch.allclose(pool("max", normalize=False), torch.tensor([[3.0, 4.0], [1.0, 0.0]]))


def test_pool_normalized_like_the_market_matlab_code() -> None:
    # Each member L2-normalised first: [3, 4] -> [0.6, 0.8], [0, 2] -> [0, 1]; then pooled and
    # normalised again.
    mean = [0.3 / math.sqrt(0.9), 0.9 / math.sqrt(0.9)]
    mx = [0.6 / math.sqrt(1.36), 1.0 / math.sqrt(1.36)]
    assert torch.allclose(pool("mean"), torch.tensor([mean, [1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(pool("max"), torch.tensor([mx, [1.0, 0.0]]), atol=1e-6)


def test_pool_include_query_and_shared_keys() -> None:
    qf = torch.tensor([[0.0, 10.0], [5.0, 5.0], [9.0, 9.0]])
    mq = torch.tensor([f for _, _, f in MQ])
    args = ([p for p, _, _ in MQ], [c for _, c, _ in MQ])
    out = pool_multi_query(qf, [1, 1, 4], [0, 0, 0], mq, *args, "mean", normalize=False,
                           include_query=True)
    assert torch.allclose(out[0], torch.tensor([1.0, 16.0 / 3]))  # ([3,4]+[0,2]+[0,10]) / 3
    assert torch.allclose(out[1], torch.tensor([8.0 / 3, 11.0 / 3]))  # its own feature differs
    assert torch.allclose(out[2], torch.tensor([9.0, 9.0]))  # no gt_bbox images: itself
    # Without include_query, queries sharing (pid, camid) get the same row.
    out = pool_multi_query(qf[:2], [1, 1], [0, 0], mq, *args, "max", normalize=False)
    assert torch.equal(out[0], out[1]) and torch.allclose(out[0], torch.tensor([3.0, 4.0]))


def test_pool_missing_gt_bbox_is_a_clear_error() -> None:
    mq = torch.tensor([f for _, _, f in MQ])
    with pytest.raises(MultiQueryError) as exc:
        pool_multi_query(torch.zeros(3, 2), [1, 9, 1], [0, 2, 5], mq, [p for p, _, _ in MQ],
                         [c for _, c, _ in MQ], query_names=["a.jpg", "0009_c3s1_000001_00.jpg",
                                                             "0001_c6s1_000001_00.jpg"])
    msg = str(exc.value)
    assert "2 of 3 queries" in msg
    assert "0009_c3s1_000001_00.jpg (person 9, camera c3)" in msg
    assert "0001_c6s1_000001_00.jpg (person 1, camera c6)" in msg and "a.jpg" not in msg


def test_pool_rejects_bad_arguments() -> None:
    mq, pids, cams = torch.ones(5, 2), [1] * 5, [0] * 5
    with pytest.raises(ValueError, match="median"):
        pool_multi_query(torch.zeros(2, 2), Q_PIDS, Q_CAMS, mq, pids, cams, "median")
    with pytest.raises(ValueError, match="feature dims differ"):
        pool_multi_query(torch.zeros(2, 3), Q_PIDS, Q_CAMS, mq, pids, cams)
    with pytest.raises(ValueError, match="mq_pids has 4 entries, expected 5"):
        pool_multi_query(torch.zeros(2, 2), Q_PIDS, Q_CAMS, mq, pids[:4], cams)


def test_multi_query_on_the_market_layout(tmp_path: Path) -> None:
    """Loader + pooling + evaluation: the c1 query of person 1 alone ranks person 3 first; the
    mean of its gt_bbox images (its own included) ranks person 1 first."""
    build_market_with_gt_bbox(tmp_path)
    data = build_dataset("market1501", tmp_path)
    feat = {  # hand-made features per file name
        "0001_c1s1_001051_00.jpg": [1.0, 1.2],  # the query: closer to 0003's gallery image
        "0001_c1s1_001101_00.jpg": [2.0, 0.0],
        "0001_c1s2_002301_00.jpg": [1.0, -0.5],
        "0001_c2s1_000301_00.jpg": [-5.0, 5.0],
        "0003_c4s2_010101_00.jpg": [0.0, 1.0],
        "0003_c4s2_010151_00.jpg": [0.0, 3.0],
        "0002_c1s1_000451_00.jpg": [7.0, 7.0],
        # gallery
        "0001_c2s1_000301_01.jpg": [1.0, 0.0],
        "0003_c1s1_000151_01.jpg": [0.0, 1.0],
        "0000_c1s1_000151_01.jpg": [-1.0, 0.0],
        "0000_c6s2_000300_02.jpg": [0.0, -1.0],
    }

    def arrays(items):
        f = torch.tensor([feat[Path(p).name] for p, _, _ in items])
        return f, [pid for _, pid, _ in items], [cam for _, _, cam in items]

    q_names = [Path(p).name for p, _, _ in data.query]
    qf = torch.tensor([feat[n] for n in q_names])
    qp, qc = [pid for _, pid, _ in data.query], [cam for _, _, cam in data.query]
    mf, mp, mc = arrays(data.extras["gt_bbox"])
    pooled = pool_multi_query(qf, qp, qc, mf, mp, mc, "mean", normalize=False,
                              query_names=q_names)
    expected = {"0001_c1s1_001051_00.jpg": [4.0 / 3, 0.7 / 3],  # mean of the three c1 boxes
                "0003_c4s2_010101_00.jpg": [0.0, 2.0]}
    for name, row in zip(q_names, pooled):
        assert torch.allclose(row, torch.tensor(expected[name]))
    gf, _, _ = arrays(data.gallery)
    i = q_names.index("0001_c1s1_001051_00.jpg")
    single = torch.cdist(qf[i:i + 1], gf)[0].numpy()
    multi = torch.cdist(pooled[i:i + 1], gf)[0].numpy()
    assert first_hit_rank(single, data.query[i], data.gallery) == 2
    assert first_hit_rank(multi, data.query[i], data.gallery) == 1


# ---------------------------------------------------------------------------------------------
# Partial-REID
# ---------------------------------------------------------------------------------------------


def test_partial_sets_are_registered() -> None:
    names = set(available_datasets())
    assert {"partial-reid", "partial-ilids", "synthetic-partial-reid", "synthetic-partial-ilids",
            "synthetic-small-partial-reid", "synthetic-tiny-partial-ilids"} <= names


def test_partial_reid_splits(tmp_path: Path) -> None:
    build_partial_reid(tmp_path / "Partial-REID_Dataset")
    data = build_dataset("partial-reid", tmp_path)
    assert data.name == "partial-reid" and data.root == tmp_path / "Partial-REID_Dataset"
    assert data.train == [] and data.num_train_pids == 0  # test-only set
    assert_real_files(data.query + data.gallery)
    # Probe = partial bodies, camera 0; gallery = whole bodies, camera 1 (.DS_Store ignored).
    assert by_name(data.query) == {"001_01.jpg": (1, 0), "001_02.jpg": (1, 0),
                                   "002_01.jpg": (2, 0), "007_01.jpg": (7, 0)}
    assert by_name(data.gallery) == {"001_01.jpg": (1, 1), "001_02.jpg": (1, 1),
                                     "002_01.jpg": (2, 1), "007_01.jpg": (7, 1),
                                     "007_02.jpg": (7, 1), "007_03.jpg": (7, 1)}
    assert all("/partial_body_images/" in p for p, _, _ in data.query)
    assert all("/whole_body_images/" in p for p, _, _ in data.gallery)
    occluded = data.extras["occluded_query"]
    assert by_name(occluded) == by_name(data.query)
    assert all("/occluded_body_images/" in p for p, _, _ in occluded)


@pytest.mark.parametrize("sub", ["", "Partial-REID_Dataset", "PartialREID", "Partial_REID",
                                 "partial_reid"])
def test_partial_reid_root_variants(tmp_path: Path, sub: str) -> None:
    build_partial_reid(tmp_path / sub, occluded=False)
    data = build_dataset("partial-reid", tmp_path)
    assert data.root == tmp_path / sub
    assert (len(data.query), len(data.gallery)) == (4, 6)
    assert "occluded_query" not in data.extras


def test_partial_reid_nothing_is_junk_removed(tmp_path: Path) -> None:
    """Under the Market-1501 rule every whole-body image of the probe's person is a true match
    and nothing is junk. (Reading the image index as the camera -- ``007_01`` -> c1 in probe
    and gallery -- would make gallery ``007_01`` junk for probe ``007_01``.)"""
    build_partial_reid(tmp_path)
    data = build_dataset("partial-reid", tmp_path)
    for q in data.query:
        good, junk = market_rule(q, data.gallery)
        assert junk == []
        assert len(good) == sum(pid == q[1] for _, pid, _ in data.gallery)
    q = next(q for q in data.query if Path(q[0]).name == "007_01.jpg")
    good, _ = market_rule(q, data.gallery)
    assert sorted(Path(data.gallery[j][0]).name for j in good) == \
        ["007_01.jpg", "007_02.jpg", "007_03.jpg"]


def test_partial_reid_missing_root_shows_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset("partial-reid", tmp_path / "nowhere")
    msg = str(exc.value)
    assert "root does not exist" in msg
    assert "partial_body_images/001_01.jpg" in msg and "whole_body_images/" in msg


def test_partial_reid_missing_gallery_dir_is_named(tmp_path: Path) -> None:
    build_partial_reid(tmp_path)
    for f in (tmp_path / "whole_body_images").iterdir():
        f.unlink()
    (tmp_path / "whole_body_images").rmdir()
    with pytest.raises(DatasetLayoutError, match=r"lacks whole_body_images/"):
        build_dataset("partial-reid", tmp_path)


def test_partial_reid_empty_probe_dir(tmp_path: Path) -> None:
    build_partial_reid(tmp_path)
    for f in (tmp_path / "partial_body_images").iterdir():
        f.unlink()
    with pytest.raises(DatasetLayoutError, match=r"no images found in partial_body_images/"):
        build_dataset("partial-reid", tmp_path)


def test_partial_reid_malformed_name(tmp_path: Path) -> None:
    build_partial_reid(tmp_path)
    write_image(tmp_path / "whole_body_images" / "001-03.jpg")
    with pytest.raises(MalformedNameError, match=r"whole_body_images/001-03\.jpg.*001_01\.jpg"):
        build_dataset("partial-reid", tmp_path)


def test_partial_reid_probe_without_gallery_person(tmp_path: Path) -> None:
    build_partial_reid(tmp_path)
    write_image(tmp_path / "partial_body_images" / "003_01.jpg")
    with pytest.raises(DatasetError, match=r"partial_body_images/003_01\.jpg has person id 3"):
        build_dataset("partial-reid", tmp_path)


# ---------------------------------------------------------------------------------------------
# Partial-iLIDS
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["dsr", "pvpm"])
@pytest.mark.parametrize("sub", ["", "Partial_iLIDS", "PartialiLIDS", "partial_ilids"])
def test_partial_ilids_splits(tmp_path: Path, layout: str, sub: str) -> None:
    build_partial_ilids(tmp_path / sub, layout)
    data = build_dataset("partial-ilids", tmp_path)
    probe, gallery = PARTIAL_ILIDS_DIRS[layout]
    assert data.root == tmp_path / sub and data.train == []
    assert_real_files(data.query + data.gallery)
    expected = {"001.jpg": 1, "002.jpg": 2, "045.jpg": 45, "119.jpg": 119}
    assert by_name(data.query) == {n: (pid, 0) for n, pid in expected.items()}
    assert by_name(data.gallery) == {n: (pid, 1) for n, pid in expected.items()}
    assert all(f"/{probe}/" in p for p, _, _ in data.query)
    assert all(f"/{gallery}/" in p for p, _, _ in data.gallery)


def test_partial_ilids_missing_root_shows_the_layout(tmp_path: Path) -> None:
    (tmp_path / "Partial_iLIDS").mkdir()
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset("partial-ilids", tmp_path)
    assert "Probe/001.jpg" in str(exc.value) and "Gallery/" in str(exc.value)


def test_partial_ilids_rejects_partial_reid_names(tmp_path: Path) -> None:
    build_partial_ilids(tmp_path)
    write_image(tmp_path / "Probe" / "003_01.jpg")
    with pytest.raises(MalformedNameError, match=r"Probe/003_01\.jpg.*001\.jpg"):
        build_dataset("partial-ilids", tmp_path)


def test_partial_ilids_probe_without_gallery_image(tmp_path: Path) -> None:
    build_partial_ilids(tmp_path)
    (tmp_path / "Gallery" / "045.jpg").unlink()
    with pytest.raises(DatasetError, match=r"Probe/045\.jpg has person id 45"):
        build_dataset("partial-ilids", tmp_path)


# ---------------------------------------------------------------------------------------------
# Synthetic: byte-identity of the original splits, gt_bbox, partial sets
# ---------------------------------------------------------------------------------------------

# The spec of test_synthetic.py's SMALL (new fields at their defaults).
SMALL = SyntheticSpec(num_train_ids=4, num_test_ids=4, num_distractors=3, num_junk=3,
                      cams_per_id=(2, 3), images_per_track=(2, 2), seed=5)
NO_EXTRAS = SyntheticSpec(**{**SMALL.__dict__, "gt_bbox_per_track": (0, 0),
                             "partial_reid_ids": 0, "partial_ilids_ids": 0})

# Computed with the format-1 generator (before gt_bbox/ and the partial sets existed), on the
# directories the committed results were measured on: sha256 over (file name, sha256 of bytes)
# in name order per directory, and of each keypoint file.
FORMAT1_HASHES = {
    "tiny": {
        "bounding_box_train": "8414d49f6cc0e08dbad080ba5c32b011a997a559b19fceddb437e9226a66b191",
        "masks/bounding_box_train":
            "da26f00c0742ffd0c4bdac7b256d1b64624099d402f241dd474e50e5e11348a4",
        "keypoints/bounding_box_train":
            "9531aed79e5559c9f0d651fda37eee267492e45e4cdc631cbc46ffef9ebb4862",
        "query": "e5bd45c890bc323c1ec6dc4b97b5058c8957063805058aa220d194b408024183",
        "masks/query": "b00e274b77f0c752ea083d1911c87fdea3c9eac1b61e791dd51b010c26e5ebd0",
        "keypoints/query": "f0c97ddf891b6a2a9f7b98e078e94e3fe449709ee222814f11fe33b6540c1cec",
        "bounding_box_test": "7dde0b326ec39eb0ef54053d39d5c43b3cb95af2cd4b9484109aa4fddef7eb2d",
        "masks/bounding_box_test":
            "d3e7606664aa3f22ce6f0c80b1d0d41fae2189b709bcfda8928d3d17ff819032",
        "keypoints/bounding_box_test":
            "c11c8f4d87d7dab07a605105bb561a7a274f040b8c1fa10208402eeba859e55b",
    },
    "SMALL": {
        "bounding_box_train": "5942eb071e24832d10d086368cd129feec81f72e8f91ba1d120f7d580cc6d662",
        "masks/bounding_box_train":
            "e055bc5b0030d903ad6cb440a304b22feec3ce1a0f800faa415807ecc23ae81f",
        "keypoints/bounding_box_train":
            "173ac8cd2b8fb47b1bfadb5f7bfd5084f8b4ce05144c1d2e3b9501c776c979e2",
        "query": "0da59c9ecc3ac24dfa9fb6d48f3f7f40c11c6585d63d06469242ad6671348efb",
        "masks/query": "09e20ecf718ba71b0eb1d4a192423729a6c20f69bfe5589c69e0937920b13ee8",
        "keypoints/query": "3c194a89cb6b2e936d54b55036eb43a6a319f8d9b3e63540fac77afabe4d865b",
        "bounding_box_test": "d1d342225f662ff769f0ef22da40da3674f0366d4558230863dba3a4828b7758",
        "masks/bounding_box_test":
            "e8c42c5498bfbbdf45ff206e00188bcbc9fc289eb2a5b8006636af325be6a822",
        "keypoints/bounding_box_test":
            "477357e8e82ea0543708a6e2340c8aa05bcb51190d2c09d759688461a8386761",
    },
}
EXTRA_DIRS = ("gt_bbox", "Partial-REID_Dataset", "Partial_iLIDS")


def dir_hash(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.iterdir(), key=lambda p: p.name):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def original_hashes(d: Path) -> dict[str, str]:
    out = {}
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        out[split] = dir_hash(d / split)
        out[f"masks/{split}"] = dir_hash(d / "masks" / split)
        out[f"keypoints/{split}"] = hashlib.sha256(
            (d / "keypoints" / f"{split}.json").read_bytes()).hexdigest()
    return out


def extra_files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for sub in EXTRA_DIRS
            for p in sorted((d / sub).rglob("*.jpg"))}


@pytest.fixture(scope="module")
def tiny_dir(synthetic_cache) -> Path:
    return generate_synthetic(synthetic_cache, "tiny", progress=False)  # cached: no work


def test_synthetic_original_splits_are_byte_identical(tiny_dir, tmp_path) -> None:
    assert original_hashes(tiny_dir) == FORMAT1_HASHES["tiny"]
    small = generate_synthetic(tmp_path / "a", SMALL, progress=False, workers=1)
    assert original_hashes(small) == FORMAT1_HASHES["SMALL"]
    # The new sets come from their own streams: dropping them changes no original byte.
    bare = generate_synthetic(tmp_path / "b", NO_EXTRAS, progress=False, workers=1)
    assert original_hashes(bare) == FORMAT1_HASHES["SMALL"]
    assert not any((bare / sub).exists() for sub in EXTRA_DIRS)


def test_synthetic_extras_deterministic_and_independent(tmp_path) -> None:
    a = extra_files(generate_synthetic(tmp_path / "a", SMALL, progress=False, workers=1))
    b = extra_files(generate_synthetic(tmp_path / "b", SMALL, progress=False, workers=2))
    assert a == b and len(a) > 40
    # Resizing the Partial-iLIDS set leaves gt_bbox/ and Partial-REID untouched.
    other = SyntheticSpec(**{**SMALL.__dict__, "partial_ilids_ids": 2})
    c = extra_files(generate_synthetic(tmp_path / "c", other, progress=False, workers=1))
    assert {k: v for k, v in c.items() if not k.startswith("Partial_iLIDS")} == \
        {k: v for k, v in a.items() if not k.startswith("Partial_iLIDS")}
    assert sum(k.startswith("Partial_iLIDS/Probe/") for k in c) == 2


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.jpg"))


def test_synthetic_gt_bbox(tiny_dir, synthetic_cache) -> None:
    gt = names_in(tiny_dir / "gt_bbox")
    assert gt and all(MARKET_NAME.match(n) for n in gt)
    key = lambda n: (int(n.split("_")[0]), int(n.split("_")[1][1]))  # noqa: E731
    per_track = defaultdict(list)
    for n in gt:
        per_track[key(n)].append(n)
    train_ids = {key(n)[0] for n in names_in(tiny_dir / "bounding_box_train")}
    test_tracks = {key(n) for n in names_in(tiny_dir / "bounding_box_test")
                   + names_in(tiny_dir / "query") if key(n)[0] > 0}
    assert set(per_track) == test_tracks and not train_ids & {pid for pid, _ in per_track}
    lo, hi = PRESETS["tiny"].gt_bbox_per_track
    for q in names_in(tiny_dir / "query"):
        # the query itself (byte-identical copy) plus lo..hi new hand-drawn boxes
        assert (tiny_dir / "gt_bbox" / q).read_bytes() == (tiny_dir / "query" / q).read_bytes()
        new = [n for n in per_track[key(q)] if n != q]
        assert lo <= len(new) <= hi and all(n.endswith("_00.jpg") for n in new)
    # The Market loader returns them, and multi-query pooling finds every query's images.
    data = build_dataset("synthetic-tiny", synthetic_cache)
    assert sorted(by_name(data.extras["gt_bbox"])) == gt
    mq = require_gt_bbox(data)
    out = pool_multi_query(torch.randn(len(data.query), 4), [p for _, p, _ in data.query],
                           [c for _, _, c in data.query], torch.randn(len(mq), 4),
                           [p for _, p, _ in mq], [c for _, _, c in mq], "max")
    assert out.shape == (len(data.query), 4)


def test_synthetic_partial_sets(tiny_dir, synthetic_cache) -> None:
    spec = PRESETS["tiny"]
    test_ids = {int(n[:4]) for n in names_in(tiny_dir / "query")}
    preid = build_dataset("synthetic-tiny-partial-reid", synthetic_cache)
    assert preid.name == "synthetic-tiny-partial-reid" and preid.train == []
    n_ids = min(spec.partial_reid_ids, spec.num_test_ids)
    ids = {p for _, p, _ in preid.query}
    assert ids == {p for _, p, _ in preid.gallery} and ids <= test_ids and len(ids) == n_ids
    assert len(preid.query) == len(preid.gallery) == n_ids * spec.partial_reid_shots
    assert {c for _, _, c in preid.query} == {0} and {c for _, _, c in preid.gallery} == {1}
    assert by_name(preid.extras["occluded_query"]) == by_name(preid.query)
    cropped = 0
    for (p, _, _), (o, _, _) in zip(preid.query, preid.extras["occluded_query"]):
        with Image.open(p) as crop, Image.open(o) as whole:
            assert whole.size == (64, 128)
            assert crop.size[0] <= 64 and crop.size[1] <= 128
            cropped += crop.size != (64, 128)
    assert cropped == len(preid.query)  # every probe is a partial view
    for p, _, _ in preid.gallery:
        with Image.open(p) as im:
            assert im.size == (64, 128)
    pilids = build_dataset("synthetic-tiny-partial-ilids", synthetic_cache)
    n_ids = min(spec.partial_ilids_ids, spec.num_test_ids)
    assert len(pilids.query) == len(pilids.gallery) == n_ids
    assert {p for _, p, _ in pilids.query} == {p for _, p, _ in pilids.gallery} <= test_ids
    # The synthetic directories are in the released layouts: the real loaders read them.
    assert by_name(build_dataset("partial-reid", tiny_dir).query) == by_name(preid.query)
    assert by_name(build_dataset("partial-ilids", tiny_dir).gallery) == by_name(pilids.gallery)
