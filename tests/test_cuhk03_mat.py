"""CUHK03 from the official ``cuhk-03.mat``, and the classic single-shot CMC.

The fixture ``cuhk-03.mat`` is written with h5py in the real MATLAB v7.3 structure, without
any ``reid_core`` code: a 512-byte MATLAB userblock; ``labeled`` / ``detected`` as 5 x 1-style
column cells (on disk ``(1, pairs)`` object references, ``MATLAB_class = cell``) whose camera
pair cells are ``persons x 10`` (on disk ``(10, persons)``); each slot an ``H x W x 3`` uint8
image stored transposed (on disk ``(3, W, H)``) or MATLAB's empty ``[]`` (uint64 dims
``[0, 0]`` + ``MATLAB_empty = 1``); referenced objects in ``#refs#``; ``testsets`` a column
cell of 20 ``n x 2`` double arrays of 1-based (pair, person). The new-protocol config files
are MATLAB v5 from ``scipy.io.savemat`` with column vectors and a ``filelist`` cell.
Expected names, counts and ids are hard-coded from the slot tables below.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio
from PIL import Image

from reid_core.config import ConfigError
from reid_core.data import DatasetError, DatasetLayoutError, available_datasets, build_dataset
from reid_core.data import cuhk03_mat
from reid_core.data.base import DATASETS
from reid_core.data.cuhk03_mat import Cuhk03Mat, MatImage, extract_images
from reid_core.metrics.cuhk03_classic import average_over_splits, evaluate_cuhk03_classic

# ---------------------------------------------------------------------------------------------
# Fixture files
# ---------------------------------------------------------------------------------------------

# camera pair -> person -> non-empty slots (1-based; 1-5 = view 1, 6-10 = view 2).
SLOTS = {
    "labeled": [
        [list(range(1, 11)), [1, 2, 3, 4, 6, 7, 8], [1, 2, 3, 4, 5]],  # (1,3): view 1 only
        [[1, 2, 6, 7], [1, 2, 3, 6]],
        [[1, 6, 7, 8, 9], [1, 2, 6, 7]],
    ],
    "detected": [
        [[1, 2, 6], [1, 6, 7], [2, 3]],  # (1,3): slot 1 empty, view 1 only
        [[1, 6], [1, 2, 6, 7, 8]],
        [[1, 2, 3, 6], [6]],  # (3,2): view 2 only
    ],
}
# 20 test splits of 1-based (pair, person); split 0 = testsets{1}.
TESTSETS = [[(1, 2), (2, 1), (3, 2)], [(1, 1), (2, 2)]] + [
    [(1, 1 + k % 3), (3, 1 + k % 2)] for k in range(2, 20)
]
MATLAB_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Feb 07 02:29:00 2014 "
                 b"HDF5 schema 1.00 .")


def pixels(box: str, pair: int, person: int, slot: int) -> np.ndarray:
    """MATLAB-side H x W x 3 uint8 image; non-square, sizes vary, content differs per slot."""
    h, w = 4 + (person + slot) % 3, 3 + (pair + slot) % 2
    base = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3)
    off = 17 * pair + 31 * person + 7 * slot + (101 if box == "detected" else 0)
    return ((base * (3 + slot) + off) % 256).astype(np.uint8)


class _MatWriter:
    """Writes MATLAB v7.3 objects: data under ``#refs#``, cells as object references."""

    def __init__(self, f: h5py.File) -> None:
        self.f, self.refs, self.n = f, f.create_group("#refs#"), 0

    def _new(self, data: np.ndarray, matlab_class: str) -> h5py.Dataset:
        self.n += 1
        ds = self.refs.create_dataset(f"r{self.n}", data=data)
        ds.attrs["MATLAB_class"] = np.bytes_(matlab_class)
        return ds

    def array(self, value: np.ndarray, matlab_class: str) -> h5py.Reference:
        if value.size == 0:  # MATLAB's []: its dims as uint64 data, flagged MATLAB_empty
            ds = self._new(np.array(value.shape, dtype=np.uint64), matlab_class)
            ds.attrs["MATLAB_empty"] = np.uint8(1)
        else:  # column-major MATLAB array -> reversed axes on disk
            ds = self._new(value.T, matlab_class)
        return ds.ref

    def cell(self, refs: np.ndarray, name: str | None = None):
        """A MATLAB cell given as a MATLAB-shaped object array of references."""
        data = np.asarray(refs, dtype=h5py.ref_dtype).T
        if name is None:
            return self._new(data, "cell").ref
        ds = self.f.create_dataset(name, data=data, dtype=h5py.ref_dtype)
        ds.attrs["MATLAB_class"] = np.bytes_("cell")
        return ds


def column(items: list) -> np.ndarray:
    out = np.empty((len(items), 1), dtype=h5py.ref_dtype)
    for i, r in enumerate(items):
        out[i, 0] = r
    return out


def write_cuhk03_mat(path: Path, slots=SLOTS, testsets=TESTSETS) -> Path:
    with h5py.File(path, "w", userblock_size=512) as f:
        w = _MatWriter(f)
        for box, pairs in slots.items():
            pair_refs = []
            for c, persons in enumerate(pairs, start=1):
                cell = np.empty((len(persons), 10), dtype=h5py.ref_dtype)  # persons x 10
                for p, full in enumerate(persons, start=1):
                    for s in range(1, 11):
                        value = pixels(box, c, p, s) if s in full else np.zeros((0, 0))
                        cell[p - 1, s - 1] = w.array(value, "uint8" if s in full else "double")
                pair_refs.append(w.cell(cell))
            w.cell(column(pair_refs), box)
        w.cell(column([w.array(np.array(t, dtype=np.float64), "double") for t in testsets]),
               "testsets")
    with open(path, "r+b") as fh:  # MATLAB's 128-byte header inside the userblock
        fh.write(MATLAB_HEADER.ljust(116, b" ") + b"\0" * 8 + b"\x00\x02" + b"IM")
    return path


def names_of(box: str) -> list[str]:
    """Every image name of ``box``, sorted like MATLAB's dir()."""
    return sorted(f"{c}_{p:03d}_{1 if s <= 5 else 2}_{s:02d}.png"
                  for c, persons in enumerate(SLOTS[box], start=1)
                  for p, full in enumerate(persons, start=1) for s in full)


GLOBAL_PID = {(1, 1): 1, (1, 2): 2, (1, 3): 3, (2, 1): 4, (2, 2): 5, (3, 1): 6, (3, 2): 7}
# New protocol on the labeled fixture: train = pair 1's persons; test = the rest; query =
# the first image of each view of each test person.
NP_QUERY = ["2_001_1_01.png", "2_001_2_06.png", "2_002_1_01.png", "2_002_2_06.png",
            "3_001_1_01.png", "3_001_2_06.png", "3_002_1_01.png", "3_002_2_06.png"]
NP_GALLERY = ["2_001_1_02.png", "2_001_2_07.png", "2_002_1_02.png", "2_002_1_03.png",
              "3_001_2_07.png", "3_001_2_08.png", "3_001_2_09.png", "3_002_1_02.png",
              "3_002_2_07.png"]


def write_np_config(path: Path, box: str = "labeled", edit=None) -> Path:
    filelist = names_of(box)
    labels = [GLOBAL_PID[(int(n[0]), int(n[2:5]))] for n in filelist]
    cams = [int(n[6]) for n in filelist]
    train = [n for n in filelist if n.startswith("1_")]
    one_based = {n: i + 1 for i, n in enumerate(filelist)}
    fl = np.empty((len(filelist), 1), dtype=object)
    fl[:, 0] = filelist
    data = {
        "labels": np.array(labels, dtype=np.float64)[:, None],
        "camId": np.array(cams, dtype=np.float64)[:, None],
        "filelist": fl,
        "train_idx": np.array([one_based[n] for n in train], dtype=np.float64)[:, None],
        "query_idx": np.array([one_based[n] for n in NP_QUERY], dtype=np.float64)[:, None],
        "gallery_idx": np.array([one_based[n] for n in NP_GALLERY], dtype=np.float64)[:, None],
    }
    if edit is not None:
        edit(data)
    sio.savemat(str(path), data, format="5")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    d = tmp_path / "cuhk03"
    d.mkdir()
    write_cuhk03_mat(d / "cuhk-03.mat")
    write_np_config(d / "cuhk03_new_protocol_config_labeled.mat")
    return d


def names(items) -> list[str]:
    return sorted(Path(p).name for p, _, _ in items)


# ---------------------------------------------------------------------------------------------
# Reader and extraction
# ---------------------------------------------------------------------------------------------


def test_fixture_is_a_matlab_v73_file(root: Path) -> None:
    head = (root / "cuhk-03.mat").read_bytes()[:128]
    assert head.startswith(b"MATLAB 7.3 MAT-file") and head[124:128] == b"\x00\x02IM"
    with h5py.File(root / "cuhk-03.mat", "r") as f:
        assert f["labeled"].shape == (1, 3) and f["testsets"].shape == (1, 20)
        pair1 = f[f["labeled"][0, 0]]
        assert pair1.shape == (10, 3)  # persons x 10 on the MATLAB side
        full = f[pair1[4, 2]]  # person 3, slot 5: an image, on disk (3, W, H)
        assert full.shape == (3,) + pixels("labeled", 1, 3, 5).shape[1::-1]
        empty = f[pair1[5, 2]]  # person 3, slot 6: []
        assert empty.attrs["MATLAB_empty"] == 1 and list(empty[()]) == [0, 0]


def test_reader_lists_slots_and_testsets(root: Path) -> None:
    with Cuhk03Mat(root / "cuhk-03.mat") as mat:
        imgs = mat.list_images("labeled")
        assert len(imgs) == 39 and len(mat.list_images("detected")) == 20
        assert mat.num_pids("labeled") == [3, 2, 2]
        assert imgs[0] == MatImage(1, 1, 1, 1) and imgs[-1] == MatImage(3, 2, 7, 7)
        assert [(i.view, i.name) for i in imgs if (i.campair, i.pid) == (2, 2)] == [
            (1, "2_002_1_01.png"), (1, "2_002_1_02.png"), (1, "2_002_1_03.png"),
            (2, "2_002_2_06.png")]
        # Empty slots are skipped, whichever view they are in.
        assert {i.slot for i in imgs if (i.campair, i.pid) == (1, 2)} == {1, 2, 3, 4, 6, 7, 8}
        assert mat.testsets()[0] == [(1, 2), (2, 1), (3, 2)]
        assert len(mat.testsets()) == 20
        px = mat.read_image("detected", MatImage(3, 2, 6, 7))
        assert px.shape == (4 + (2 + 6) % 3, 3 + (3 + 6) % 2, 3)
        assert np.array_equal(px, pixels("detected", 3, 2, 6))


def test_extraction_names_counts_and_pixels(root: Path) -> None:
    with Cuhk03Mat(root / "cuhk-03.mat") as mat:
        paths = extract_images(mat, "labeled", root / "images_labeled")
    files = sorted(os.listdir(root / "images_labeled"))
    assert files == names_of("labeled") and len(files) == 39
    assert [p.name for p in paths.values()] == [i.name for i in paths]
    for img, path in paths.items():
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (
                pixels("labeled", img.campair, img.pid, img.slot).shape[1],
                pixels("labeled", img.campair, img.pid, img.slot).shape[0])
            got = np.asarray(im.convert("RGB"))
        assert np.array_equal(got, pixels("labeled", img.campair, img.pid, img.slot)), img
    assert not list(root.glob(".images_labeled*"))  # no temporary left behind


def test_extraction_is_skipped_when_complete_and_refills_missing(root: Path) -> None:
    out = root / "images_labeled"
    with Cuhk03Mat(root / "cuhk-03.mat") as mat:
        extract_images(mat, "labeled", out)
        before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        os.utime(out / "1_001_1_01.png", ns=(1, 1))  # would change if rewritten
        extract_images(mat, "labeled", out)
        assert (out / "1_001_1_01.png").stat().st_mtime_ns == 1
        (out / "3_002_2_07.png").unlink()
        extract_images(mat, "labeled", out)
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert set(after) == set(before)
    assert after["1_001_1_01.png"] == 1  # the others were not rewritten
    with Image.open(out / "3_002_2_07.png") as im:
        assert np.array_equal(np.asarray(im), pixels("labeled", 3, 2, 7))


def test_a_stale_temporary_directory_is_removed_a_fresh_one_kept(root: Path) -> None:
    stale, fresh = root / ".images_labeled.abc.tmp", root / ".images_labeled.def.tmp"
    for d in (stale, fresh):
        d.mkdir()
        (d / "1_001_1_01.png").write_bytes(b"partial")
    os.utime(stale, (1, 1))  # untouched for decades: a killed extraction
    build_dataset("cuhk03-classic-labeled", root)
    assert not stale.exists() and len(os.listdir(root / "images_labeled")) == 39
    assert fresh.exists()  # may be a concurrent extraction in progress


# ---------------------------------------------------------------------------------------------
# Classic loader
# ---------------------------------------------------------------------------------------------


def test_registered() -> None:
    assert {"cuhk03-classic-labeled", "cuhk03-classic-detected", "cuhk03np-mat-labeled",
            "cuhk03np-mat-detected"} <= set(available_datasets())


def test_classic_labeled_split0(root: Path) -> None:
    data = build_dataset("cuhk03-classic-labeled", root)
    assert data.extras["protocol"] == "cuhk03_classic"
    assert data.extras["split"] == 0 and data.extras["num_splits"] == 20
    assert data.extras["test_ids"] == [(1, 2), (2, 1), (3, 2)]
    # Test persons (1,2), (2,1), (3,2) = global ids 2, 4, 7: 7 + 4 + 4 images.
    assert data.query == data.gallery and data.query is not data.gallery
    assert len(data.query) == 15
    assert {pid for _, pid, _ in data.query} == {2, 4, 7}
    by_name = {Path(p).name: (pid, cam) for p, pid, cam in data.query}
    assert by_name["1_002_2_06.png"] == (2, 1) and by_name["3_002_1_01.png"] == (7, 0)
    # Train = persons 1, 3, 5, 6 (10 + 5 + 4 + 5 images), relabelled in pid order.
    assert len(data.train) == 24
    labels = {}
    for p, label, cam in data.train:
        labels.setdefault(Path(p).name[:5], set()).add(label)
        assert cam == (0 if int(Path(p).name[6]) == 1 else 1)
    assert labels == {"1_001": {0}, "1_003": {1}, "2_002": {2}, "3_001": {3}}
    assert data.extras["train_pid_to_label"] == {1: 0, 3: 1, 5: 2, 6: 3}
    for path, _, _ in data.train + data.query:
        assert os.path.isabs(path) and os.path.isfile(path)


def test_classic_detected_and_split_keyword(root: Path) -> None:
    data = build_dataset("cuhk03-classic-detected", root)
    assert (len(data.train), len(data.query)) == (14, 6)
    assert names(data.query) == ["1_002_1_01.png", "1_002_2_06.png", "1_002_2_07.png",
                                 "2_001_1_01.png", "2_001_2_06.png", "3_002_2_06.png"]
    # split 1 tests (1,1) and (2,2): the split index reaches the loader as a keyword.
    data = DATASETS.get("cuhk03-classic-detected")(root, split=1)
    assert data.extras["split"] == 1
    assert {pid for _, pid, _ in data.query} == {1, 5}
    assert (len(data.train), len(data.query)) == (20 - 3 - 5, 8)
    assert not ({Path(p).name for p, _, _ in data.train} & {Path(p).name for p, _, _ in data.query})


@pytest.mark.parametrize("split", [20, -1, 1.0, True])
def test_split_out_of_range_names_data_split(root: Path, split) -> None:
    with pytest.raises(ConfigError, match=r"data\.split") as e:
        DATASETS.get("cuhk03-classic-labeled")(root, split=split)
    if split in (20, -1) and not isinstance(split, bool):
        assert "0..19" in str(e.value)
    assert not (root / "images_labeled").exists()  # checked before extracting


def test_cache_dir_keeps_the_root_untouched(root: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    data = DATASETS.get("cuhk03-classic-labeled")(root, cache_dir=cache)
    assert not (root / "images_labeled").exists()
    assert sorted(os.listdir(cache / "images_labeled")) == names_of("labeled")
    assert all(p.startswith(str(cache)) for p, _, _ in data.train)


def test_read_only_root_falls_back_to_user_cache(root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cuhk03_mat, "_is_writable", lambda d: False)
    monkeypatch.setenv("REID_BENCH_CACHE", str(tmp_path / "user-cache"))
    data = build_dataset("cuhk03-classic-labeled", root)
    assert not (root / "images_labeled").exists()
    (out,) = (tmp_path / "user-cache" / "cuhk03-mat").glob("*/images_labeled")
    assert len(os.listdir(out)) == 39
    assert all(p.startswith(str(out)) for p, _, _ in data.query)


def test_torchreid_layout_is_accepted(tmp_path: Path) -> None:
    d = tmp_path / "cuhk03"
    (d / "cuhk03_release").mkdir(parents=True)
    write_cuhk03_mat(d / "cuhk03_release" / "cuhk-03.mat")
    data = build_dataset("cuhk03-classic-labeled", d)
    assert len(data.train) == 24 and (d / "images_labeled").is_dir()


# ---------------------------------------------------------------------------------------------
# New protocol from the .mat files
# ---------------------------------------------------------------------------------------------


def test_np_from_mat(root: Path) -> None:
    data = build_dataset("cuhk03np-mat-labeled", root)
    assert "protocol" not in data.extras  # Market-style evaluation
    assert names(data.query) == NP_QUERY and names(data.gallery) == NP_GALLERY
    assert len(data.train) == 22
    assert sorted({pid for _, pid, _ in data.train}) == [0, 1, 2]
    assert {pid for _, pid, _ in data.query} == {4, 5, 6, 7}
    by_name = {Path(p).name: (pid, cam) for p, pid, cam in data.query + data.gallery}
    assert by_name["2_002_2_06.png"] == (5, 1) and by_name["3_001_1_01.png"] == (6, 0)
    assert {Path(p).name[:5]: pid for p, pid, _ in data.train} == {
        "1_001": 0, "1_002": 1, "1_003": 2}


def test_np_missing_config_shows_layout(root: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="cuhk03_new_protocol_config_detected.mat"):
        build_dataset("cuhk03np-mat-detected", root)


@pytest.mark.parametrize("bad", ["3_009_1_01.png", "../../etc/passwd", "1_001_1_01.jpg"])
def test_np_filelist_mismatch_names_the_entry(root: Path, bad: str) -> None:
    def edit(data):
        data["filelist"][4, 0] = bad

    write_np_config(root / "cuhk03_new_protocol_config_labeled.mat", edit=edit)
    with pytest.raises(DatasetError, match=r"filelist entry 5 \(" + repr(bad).replace(".", r"\.")):
        build_dataset("cuhk03np-mat-labeled", root)


def test_np_camid_and_label_checks(root: Path) -> None:
    cfg = root / "cuhk03_new_protocol_config_labeled.mat"

    def flip_cam(data):
        data["camId"][0, 0] = 2

    write_np_config(cfg, edit=flip_cam)
    with pytest.raises(DatasetError, match=r"filelist entry 1 .*camId is 2"):
        build_dataset("cuhk03np-mat-labeled", root)

    def bad_label(data):
        data["labels"][1, 0] = 99

    write_np_config(cfg, edit=bad_label)
    with pytest.raises(DatasetError, match=r"filelist entry 2 .*label 99"):
        build_dataset("cuhk03np-mat-labeled", root)


@pytest.mark.parametrize("value,match", [(0, "outside 1..39"), (40, "outside 1..39")])
def test_np_indices_are_one_based(root: Path, value: int, match: str) -> None:
    def edit(data):
        data["query_idx"][0, 0] = value

    write_np_config(root / "cuhk03_new_protocol_config_labeled.mat", edit=edit)
    with pytest.raises(DatasetError, match=rf"query_idx holds {value}, {match}"):
        build_dataset("cuhk03np-mat-labeled", root)


def test_np_config_missing_variable(root: Path) -> None:
    write_np_config(root / "cuhk03_new_protocol_config_labeled.mat",
                    edit=lambda data: data.pop("camId"))
    with pytest.raises(DatasetError, match="missing variable.*camId"):
        build_dataset("cuhk03np-mat-labeled", root)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cuhk03-classic-labeled", "cuhk03np-mat-detected"])
def test_missing_root_shows_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetLayoutError) as e:
        build_dataset(name, tmp_path / "nope")
    msg = str(e.value)
    assert "root does not exist" in msg and "expected layout" in msg
    assert "cuhk-03.mat" in msg and "cuhk03_new_protocol_config_labeled.mat" in msg


def test_root_without_mat(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="cuhk-03.mat not found"):
        build_dataset("cuhk03-classic-detected", tmp_path)


def test_v5_mat_is_rejected_clearly(tmp_path: Path) -> None:
    sio.savemat(str(tmp_path / "cuhk-03.mat"), {"labeled": np.zeros(3)})
    with pytest.raises(DatasetError, match=r"cuhk-03\.mat.*v7\.3"):
        build_dataset("cuhk03-classic-labeled", tmp_path)


def test_wrong_image_slot_is_named(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "cuhk-03.mat", "w") as f:
        w = _MatWriter(f)
        cell = np.empty((1, 10), dtype=h5py.ref_dtype)
        for s in range(10):
            cell[0, s] = w.array(np.zeros((0, 0)), "double")
        cell[0, 3] = w.array(np.zeros((4, 3), dtype=np.uint8), "uint8")  # grey, not RGB
        w.cell(column([w.cell(cell)]), "labeled")
        w.cell(column([w.array(np.array([[1.0, 1.0]]), "double")]), "testsets")
    with pytest.raises(DatasetError, match=r"labeled\{1\}\{1,4\}.*H x W x 3 uint8"):
        build_dataset("cuhk03-classic-labeled", tmp_path)


# ---------------------------------------------------------------------------------------------
# Classic single-shot CMC
# ---------------------------------------------------------------------------------------------


def reference_cmc(dist, q_pids, g_pids, q_cams, g_cams, max_rank, repeats, seed):
    """Plain per-query loop with the documented draws: u = rng.random((Q, R, num_ids))."""
    ids = sorted(set(g_pids.tolist()))
    u = np.random.default_rng(seed).random((len(q_pids), repeats, len(ids)))
    hits = np.zeros(max_rank)
    valid = 0
    for q in range(len(q_pids)):
        kept = {i: [j for j in range(len(g_pids)) if g_pids[j] == pid
                    and not (pid == q_pids[q] and g_cams[j] == q_cams[q])]
                for i, pid in enumerate(ids)}
        own = [i for i, pid in enumerate(ids) if pid == q_pids[q]]
        if not own or not kept[own[0]]:
            continue
        valid += 1
        for r in range(repeats):
            sampled = [kept[i][int(u[q, r, i] * len(kept[i]))] for i in kept if kept[i]]
            ranked = sorted(sampled, key=lambda j: (dist[q, j], j))
            rank = next(k for k, j in enumerate(ranked) if g_pids[j] == q_pids[q])
            hits[rank:] += 1
    return hits / (valid * repeats)


def expected_cmc(dist, q_pids, g_pids, q_cams, g_cams, max_rank):
    """Exact expectation over the sampling (infinitely many repeats), by Poisson-binomial DP."""
    out, valid = np.zeros(max_rank), 0
    for q in range(len(q_pids)):
        own = [j for j in range(len(g_pids)) if g_pids[j] == q_pids[q] and g_cams[j] != q_cams[q]]
        if not own:
            continue
        valid += 1
        for m in own:
            probs = []
            for pid in set(g_pids.tolist()) - {q_pids[q]}:
                imgs = [j for j in range(len(g_pids)) if g_pids[j] == pid]
                probs.append(np.mean([(dist[q, j], j) < (dist[q, m], m) for j in imgs]))
            dp = np.zeros(len(probs) + 1)
            dp[0] = 1.0
            for p in probs:
                dp[1:] = dp[1:] * (1 - p) + dp[:-1] * p
                dp[0] *= 1 - p
            cdf = np.cumsum(dp)
            out += np.array([cdf[min(k, len(cdf) - 1)] for k in range(max_rank)]) / len(own)
    return out / valid


def random_case(seed: int, n_ids: int = 12, ties: bool = True):
    rng = np.random.default_rng(seed)
    pids, cams = [], []
    for pid in range(1, n_ids + 1):
        for _ in range(int(rng.integers(1, 5))):
            pids.append(pid)
            cams.append(int(rng.integers(0, 2)))
    pids, cams = np.array(pids), np.array(cams)
    n = len(pids)
    dist = (rng.integers(0, 6, (n, n)) if ties else rng.random((n, n))).astype(np.float32)
    return dist, pids, pids.copy(), cams, cams.copy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classic_cmc_matches_reference_loop(seed: int) -> None:
    dist, qp, gp, qc, gc = random_case(seed)
    want = reference_cmc(dist, qp, gp, qc, gc, max_rank=15, repeats=7, seed=seed)
    for chunk in (1, 5, 256):
        got = evaluate_cuhk03_classic(dist, qp, gp, qc, gc, max_rank=15, repeats=7, seed=seed,
                                      chunk_size=chunk)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert got.shape == (15,) and got[-1] == 1.0  # 12 identities < 15: saturated


def test_classic_cmc_converges_to_the_exact_expectation() -> None:
    dist, qp, gp, qc, gc = random_case(5, n_ids=8, ties=False)
    got = evaluate_cuhk03_classic(dist, qp, gp, qc, gc, max_rank=8, repeats=3000, seed=3)
    np.testing.assert_allclose(got, expected_cmc(dist, qp, gp, qc, gc, 8), atol=0.02)


def test_classic_cmc_hand_made_case() -> None:
    # One query (pid 1, cam 0). Gallery: its own cam-0 image (removed), two cam-1 images at
    # 0.5 and 0.1, impostor pid 2 at 0.3, pid 3 at 0.9. Rank 1 iff the 0.1 image is drawn.
    dist = np.array([[0.0, 0.5, 0.1, 0.3, 0.9]])
    g_pids, g_cams = np.array([1, 1, 1, 2, 3]), np.array([0, 1, 1, 0, 1])
    cmc = evaluate_cuhk03_classic(dist, np.array([1]), g_pids, np.array([0]), g_cams,
                                  max_rank=4, repeats=4000, seed=11)
    u = np.random.default_rng(11).random((1, 4000, 3))
    assert cmc[0] == pytest.approx(np.mean(u[0, :, 0] >= 0.5), abs=1e-12)
    assert cmc[0] == pytest.approx(0.5, abs=0.04)
    assert list(cmc[1:]) == [1.0, 1.0, 1.0]


def test_perfect_features_give_rank1_of_one() -> None:
    pids = np.repeat(np.arange(1, 21), 4)
    cams = np.tile([0, 0, 1, 1], 20)
    feats = pids[:, None].astype(float) * 10
    dist = np.abs(feats - feats.T)
    cmc = evaluate_cuhk03_classic(dist, pids, pids, cams, cams, max_rank=5)
    assert np.array_equal(cmc, np.ones(5))


def test_queries_without_other_camera_match_are_skipped() -> None:
    # Query 0 (pid 1) has only same-camera images of its id: skipped. Query 1 (pid 2) has
    # both images of the impostor closer than its match: rank 2 whatever is drawn.
    dist = np.array([[0.0, 0.1, 0.2], [0.05, 0.1, 0.5]])
    cmc = evaluate_cuhk03_classic(dist, np.array([1, 2]), np.array([1, 1, 2]), np.array([0, 0]),
                                  np.array([0, 0, 1]), max_rank=2)
    assert list(cmc) == [0.0, 1.0]
    with pytest.raises(ValueError, match="no valid query"):
        evaluate_cuhk03_classic(dist[:1], np.array([1]), np.array([1, 1, 2]), np.array([0]),
                                np.array([0, 0, 1]))


def test_classic_cmc_is_reproducible_and_validates_input() -> None:
    dist, qp, gp, qc, gc = random_case(4)
    a = evaluate_cuhk03_classic(dist, qp, gp, qc, gc, seed=9)
    assert np.array_equal(a, evaluate_cuhk03_classic(dist, qp, gp, qc, gc, seed=9))
    with pytest.raises(ValueError, match="q_pids must have shape"):
        evaluate_cuhk03_classic(dist, qp[:-1], gp, qc, gc)
    bad = dist.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate_cuhk03_classic(bad, qp, gp, qc, gc)
    with pytest.raises(ValueError, match="repeats"):
        evaluate_cuhk03_classic(dist, qp, gp, qc, gc, repeats=0)


def test_average_over_splits() -> None:
    avg = average_over_splits([np.array([0.5, 1.0]), np.array([0.7, 1.0]), [0.6, 1.0]])
    np.testing.assert_allclose(avg.mean, [0.6, 1.0])
    np.testing.assert_allclose(avg.std, [0.1, 0.0], atol=1e-12)
    assert avg.num_splits == 3
    one = average_over_splits([np.array([0.5, 1.0])])
    assert np.isnan(one.std).all() and list(one.mean) == [0.5, 1.0]
    with pytest.raises(ValueError, match="same max_rank"):
        average_over_splits([np.ones(2), np.ones(3)])
    with pytest.raises(ValueError, match="at least one"):
        average_over_splits([])
