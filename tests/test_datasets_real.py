"""Loaders of the real dataset layouts (Market-1501, DukeMTMC-reID, CUHK03-NP, MSMT17 V1/V2).

Each test builds a tiny copy of the real layout under ``tmp_path`` (see ``fixtures_layouts``)
and checks the loader against counts, ids and cameras hard-coded here from the fixture file
lists, never computed with loader helpers.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_layouts import (
    build_cuhk03np,
    build_duke,
    build_market,
    build_msmt17,
    msmt_dirname,
    set_list_line,
    write_image,
)

from reid_core.data import (
    DatasetLayoutError,
    MalformedNameError,
    ReIDData,
    available_datasets,
    build_dataset,
)
from reid_core.data.msmt17 import UnsafeListPathError

REAL_NAMES = [
    "market1501",
    "dukemtmcreid",
    "cuhk03np-labeled",
    "cuhk03np-detected",
    "msmt17",
    "msmt17v2",
    "msmt17-trainval",
    "msmt17v2-trainval",
]


def ids(items: list[tuple[str, int, int]]) -> set[int]:
    return {pid for _, pid, _ in items}


def cams(items: list[tuple[str, int, int]]) -> set[int]:
    return {cam for _, _, cam in items}


def names(items: list[tuple[str, int, int]]) -> set[str]:
    return {Path(p).name for p, _, _ in items}


def check_common(data: ReIDData) -> None:
    """Conventions of base.py that hold for every loader."""
    for split in (data.train, data.query, data.gallery):
        for path, pid, cam in split:
            assert isinstance(path, str) and os.path.isabs(path) and os.path.isfile(path)
            assert isinstance(pid, int) and isinstance(cam, int)
            assert pid >= 0 and cam >= 0
    labels = sorted(ids(data.train))
    assert labels == list(range(len(labels)))


def train_label_by_name(data: ReIDData) -> dict[str, int]:
    return {Path(p).name: pid for p, pid, _ in data.train}


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------


def test_real_datasets_are_registered() -> None:
    assert set(REAL_NAMES) <= set(available_datasets())


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(KeyError) as exc:
        build_dataset("market-1501", tmp_path)
    msg = str(exc.value)
    assert "market-1501" in msg
    for name in REAL_NAMES:
        assert name in msg


# ---------------------------------------------------------------------------------------------
# Market-1501
# ---------------------------------------------------------------------------------------------


def test_market1501_splits(tmp_path: Path) -> None:
    build_market(tmp_path)
    data = build_dataset("market1501", tmp_path)
    check_common(data)
    assert data.name == "market1501"
    assert (len(data.train), len(data.query), len(data.gallery)) == (5, 2, 4)
    # train ids 0002, 0007, 0010 -> labels 0, 1, 2 in ascending order of the original id
    assert train_label_by_name(data) == {
        "0002_c1s1_000451_03.jpg": 0,
        "0002_c2s1_000801_01.jpg": 0,
        "0007_c3s1_001201_02.jpg": 1,
        "0010_c6s4_002202_01.jpg": 2,
        "0010_c5s3_015240_04.jpg": 2,
    }
    assert data.extras["train_pid_to_label"] == {2: 0, 7: 1, 10: 2}
    assert cams(data.train) == {0, 1, 2, 4, 5}
    assert ids(data.query) == {1, 3} and cams(data.query) == {0, 3}
    # junk -1 dropped; distractors 0000 kept; Thumbs.db ignored
    assert ids(data.gallery) == {0, 1, 3}
    assert cams(data.gallery) == {0, 1, 5}
    assert sum(pid == 0 for _, pid, _ in data.gallery) == 2
    assert not any(n.startswith("-1_") for n in names(data.gallery))
    assert "Thumbs.db" not in names(data.gallery)


@pytest.mark.parametrize(
    "sub", ["", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "market1501"]
)
def test_market1501_root_variants(tmp_path: Path, sub: str) -> None:
    build_market(tmp_path / sub)
    data = build_dataset("market1501", tmp_path)
    assert data.root == tmp_path / sub
    assert (len(data.train), len(data.query), len(data.gallery)) == (5, 2, 4)


# ---------------------------------------------------------------------------------------------
# DukeMTMC-reID
# ---------------------------------------------------------------------------------------------


def test_dukemtmcreid_splits(tmp_path: Path) -> None:
    build_duke(tmp_path / "DukeMTMC-reID")
    data = build_dataset("dukemtmcreid", tmp_path)
    check_common(data)
    assert (len(data.train), len(data.query), len(data.gallery)) == (4, 2, 3)
    assert train_label_by_name(data) == {
        "0001_c2_f0046182.jpg": 0,
        "0001_c5_f0051341.jpg": 0,
        "0003_c8_f0011111.jpg": 1,
        "0004_c1_f0000001.jpg": 2,
    }
    assert cams(data.train) == {0, 1, 4, 7}  # c1, c2, c5, c8
    assert ids(data.query) == {5, 8} and cams(data.query) == {1, 6}
    assert ids(data.gallery) == {5, 8, 9} and cams(data.gallery) == {0, 2, 3}


@pytest.mark.parametrize("sub", ["", "DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID"])
def test_dukemtmcreid_root_variants(tmp_path: Path, sub: str) -> None:
    build_duke(tmp_path / sub)
    data = build_dataset("dukemtmcreid", tmp_path)
    assert data.root == tmp_path / sub
    assert (len(data.train), len(data.query), len(data.gallery)) == (4, 2, 3)


def test_dukemtmcreid_camera_out_of_range(tmp_path: Path) -> None:
    build_duke(tmp_path)
    write_image(tmp_path / "query" / "0005_c9_f0046985.jpg")
    with pytest.raises(MalformedNameError, match="0005_c9_f0046985.jpg"):
        build_dataset("dukemtmcreid", tmp_path)


# ---------------------------------------------------------------------------------------------
# CUHK03-NP
# ---------------------------------------------------------------------------------------------

CUHK_EXPECTED = {
    # box type: (train, query, gallery) sizes, train labels by file name, query ids, gallery ids
    "labeled": (
        (5, 4, 4),
        {"0001_c1_1.png": 0, "0001_c1_2.png": 0, "0001_c2_6.png": 0,
         "0002_c1_11.png": 1, "0002_c2_16.png": 1},
        {3, 4},
        {3, 4},
    ),
    "detected": (
        (3, 2, 3),
        {"0001_c1_1.png": 0, "0001_c2_7.png": 0, "0002_c1_12.png": 1},
        {3},
        {3, 4},
    ),
}


@pytest.mark.parametrize("box_type", ["labeled", "detected"])
def test_cuhk03np_splits(tmp_path: Path, box_type: str) -> None:
    build_cuhk03np(tmp_path / "cuhk03-np")
    data = build_dataset(f"cuhk03np-{box_type}", tmp_path)
    check_common(data)
    sizes, labels, query_ids, gallery_ids = CUHK_EXPECTED[box_type]
    assert data.name == f"cuhk03np-{box_type}"
    assert (len(data.train), len(data.query), len(data.gallery)) == sizes
    assert train_label_by_name(data) == labels
    assert ids(data.query) == query_ids and ids(data.gallery) == gallery_ids
    for split in (data.train, data.query, data.gallery):
        assert cams(split) == {0, 1}
    assert all(p.endswith(".png") and f"/{box_type}/" in p for p, _, _ in data.gallery)


@pytest.mark.parametrize("box_type", ["labeled", "detected"])
@pytest.mark.parametrize("root_kind", ["parent_of_box_dir", "parent_of_cuhk03-np", "box_dir"])
def test_cuhk03np_root_variants(tmp_path: Path, box_type: str, root_kind: str) -> None:
    base = build_cuhk03np(tmp_path / "cuhk03-np")
    root = {
        "parent_of_box_dir": base,
        "parent_of_cuhk03-np": tmp_path,
        "box_dir": base / box_type,
    }[root_kind]
    data = build_dataset(f"cuhk03np-{box_type}", root)
    assert data.root == base / box_type
    assert (len(data.train), len(data.query), len(data.gallery)) == CUHK_EXPECTED[box_type][0]


def test_cuhk03np_other_half_dir_is_refused(tmp_path: Path) -> None:
    base = build_cuhk03np(tmp_path / "cuhk03-np")
    with pytest.raises(DatasetLayoutError, match="cuhk03np-detected"):
        build_dataset("cuhk03np-labeled", base / "detected")


def test_cuhk03np_market_name_is_malformed(tmp_path: Path) -> None:
    base = build_cuhk03np(tmp_path / "cuhk03-np")
    write_image(base / "labeled" / "query" / "0003_c1s1_000022_00.png")
    with pytest.raises(MalformedNameError, match="0003_c1s1_000022_00.png"):
        build_dataset("cuhk03np-labeled", tmp_path)


# ---------------------------------------------------------------------------------------------
# MSMT17 V1 / V2
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version, name", [("V1", "msmt17"), ("V2", "msmt17v2")])
def test_msmt17_splits(tmp_path: Path, version: str, name: str) -> None:
    build_msmt17(tmp_path / msmt_dirname(version), version)
    data = build_dataset(name, tmp_path)
    check_common(data)
    assert data.name == name
    assert data.extras["train_lists"] == ["list_train.txt"]  # val not used by default
    assert (len(data.train), len(data.query), len(data.gallery)) == (4, 2, 3)
    # list pids 0, 3, 7 -> labels 0, 1, 2; cameras 01, 01, 15, 12 -> 0, 0, 14, 11
    assert train_label_by_name(data) == {
        "0000_000_01_0303morning_0008_0.jpg": 0,
        "0000_001_01_0303morning_0009_0.jpg": 0,
        "0003_000_15_0303noon_1000_0.jpg": 1,
        "0007_000_12_0304afternoon_0101_0.jpg": 2,
    }
    assert cams(data.train) == {0, 14, 11}
    # pid 0 is a real MSMT17 person (kept in query and gallery)
    assert ids(data.query) == {0, 1} and cams(data.query) == {1, 9}
    assert ids(data.gallery) == {0, 1, 2} and cams(data.gallery) == {4, 10, 12}
    train_dir, test_dir = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}[
        version
    ]
    assert all(f"/{train_dir}/" in p for p, _, _ in data.train)
    assert all(f"/{test_dir}/" in p for p, _, _ in data.query + data.gallery)


@pytest.mark.parametrize("version, name", [("V1", "msmt17-trainval"), ("V2", "msmt17v2-trainval")])
def test_msmt17_trainval(tmp_path: Path, version: str, name: str) -> None:
    build_msmt17(tmp_path / msmt_dirname(version), version)
    data = build_dataset(name, tmp_path)
    check_common(data)
    assert data.extras["train_lists"] == ["list_train.txt", "list_val.txt"]
    assert (len(data.train), len(data.query), len(data.gallery)) == (6, 2, 3)
    labels = train_label_by_name(data)
    assert labels["0000_002_03_0303morning_0045_1.jpg"] == 0  # val image of pid 0
    assert labels["0003_001_07_0303noon_1001_2.jpg"] == 1  # val image of pid 3
    assert cams(data.train) == {0, 2, 6, 11, 14}


@pytest.mark.parametrize("version, name", [("V1", "msmt17"), ("V2", "msmt17v2")])
@pytest.mark.parametrize("root_kind", ["version_dir", "parent", "msmt17_parent"])
def test_msmt17_root_variants(tmp_path: Path, version: str, name: str, root_kind: str) -> None:
    dirname = msmt_dirname(version)
    base = tmp_path / "msmt17" / dirname if root_kind == "msmt17_parent" else tmp_path / dirname
    build_msmt17(base, version)
    root = {"version_dir": base, "parent": tmp_path, "msmt17_parent": tmp_path}[root_kind]
    data = build_dataset(name, root)
    assert data.root == base
    assert (len(data.train), len(data.query), len(data.gallery)) == (4, 2, 3)


def test_msmt17_v1_loader_on_v2_tree_hints_v2(tmp_path: Path) -> None:
    build_msmt17(tmp_path / "MSMT17_V2", "V2")
    with pytest.raises(DatasetLayoutError, match="msmt17v2") as exc:
        build_dataset("msmt17", tmp_path)
    assert "list_train.txt" in str(exc.value)  # the expected V1 tree is shown


def test_msmt17_missing_list_file(tmp_path: Path) -> None:
    base = build_msmt17(tmp_path / "MSMT17_V1")
    (base / "list_gallery.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_gallery.txt"):
        build_dataset("msmt17", tmp_path)


def test_msmt17_val_list_only_needed_for_trainval(tmp_path: Path) -> None:
    base = build_msmt17(tmp_path / "MSMT17_V1")
    (base / "list_val.txt").unlink()
    assert len(build_dataset("msmt17", tmp_path).train) == 4
    with pytest.raises(DatasetLayoutError, match="list_val.txt"):
        build_dataset("msmt17-trainval", tmp_path)


GOOD_TRAIN_NAME = "0000_001_01_0303morning_0009_0.jpg"


@pytest.mark.parametrize(
    "line, error, fragment",
    [
        ("../../../../etc/passwd 0", UnsafeListPathError, "escapes"),
        (f"0000/../../test/0000/{GOOD_TRAIN_NAME} 0", UnsafeListPathError, "escapes"),
        ("/etc/passwd 0", UnsafeListPathError, "absolute"),
        (f"/0000/{GOOD_TRAIN_NAME} 0", UnsafeListPathError, "absolute"),
        (f"0000/{GOOD_TRAIN_NAME}", MalformedNameError, "1 fields"),
        (f"0000/{GOOD_TRAIN_NAME} 0 extra", MalformedNameError, "3 fields"),
        (f"0000/{GOOD_TRAIN_NAME} zero", MalformedNameError, "non-negative integer"),
        (f"0000/{GOOD_TRAIN_NAME} -1", MalformedNameError, "non-negative integer"),
        ("0000/0000_001_00_0303morning_0009_0.jpg 0", MalformedNameError, "'00'"),
        ("0000/0000_001_16_0303morning_0009_0.jpg 0", MalformedNameError, "'16'"),
        ("0000/0000_001_1_0303morning_0009_0.jpg 0", MalformedNameError, "malformed image name"),
        (f"{GOOD_TRAIN_NAME} 0", MalformedNameError, "malformed list path"),
        (f"0000/{GOOD_TRAIN_NAME} 5", MalformedNameError, "disagrees"),
        ("0000/0003_001_01_0303morning_0009_0.jpg 0", MalformedNameError, "disagrees"),
        ("0000/0000_009_01_0303morning_0999_0.jpg 0", DatasetLayoutError, "does not exist"),
    ],
)
def test_msmt17_bad_list_line(
    tmp_path: Path, line: str, error: type[Exception], fragment: str
) -> None:
    base = build_msmt17(tmp_path / "MSMT17_V1")
    set_list_line(base, "list_train.txt", 2, line)
    with pytest.raises(error) as exc:
        build_dataset("msmt17", tmp_path)
    msg = str(exc.value)
    assert fragment in msg
    assert str(base / "list_train.txt") in msg and "line 2" in msg
    if error is DatasetLayoutError:
        missing = base / "train" / "0000" / "0000_009_01_0303morning_0999_0.jpg"
        assert os.path.realpath(missing) in msg


def test_msmt17_bad_line_in_query_list_names_that_list(tmp_path: Path) -> None:
    base = build_msmt17(tmp_path / "MSMT17_V2", "V2")
    set_list_line(base, "list_query.txt", 1, "../mask_train_v2/0000/x.jpg 0")
    with pytest.raises(UnsafeListPathError) as exc:
        build_dataset("msmt17v2", tmp_path)
    assert str(base / "list_query.txt") in str(exc.value) and "line 1" in str(exc.value)


def test_msmt17_symlink_escape_is_refused(tmp_path: Path) -> None:
    base = build_msmt17(tmp_path / "MSMT17_V1")
    secret = tmp_path / "secret.jpg"
    write_image(secret)
    link = base / "test" / "0002" / "0002_001_13_0304noon_0301_0.jpg"
    link.symlink_to(secret)
    with (base / "list_gallery.txt").open("a") as f:
        f.write("0002/0002_001_13_0304noon_0301_0.jpg 2\n")
    with pytest.raises(UnsafeListPathError, match="list_gallery.txt, line 5"):
        build_dataset("msmt17", tmp_path)


# ---------------------------------------------------------------------------------------------
# Layout and file-name errors shared by the Market-style loaders
# ---------------------------------------------------------------------------------------------

# name -> (builder placing the dataset directory at a path, a string of its expected layout)
MARKET_STYLE = {
    "market1501": (build_market, "bounding_box_train/0002_c1s1_000451_03.jpg"),
    "dukemtmcreid": (build_duke, "bounding_box_train/0001_c2_f0046182.jpg"),
    "cuhk03np-labeled": (lambda d: build_cuhk03np(d.parent) / "labeled",
                         "bounding_box_train/0001_c1_1.png"),
}
# an existing split directory and a malformed name for it
BAD_NAMES = {
    "market1501": ("query", "0001_c1_001051_00.jpg"),
    "dukemtmcreid": ("bounding_box_test", "0005_c1s1_f0044158.jpg"),
    "cuhk03np-labeled": ("bounding_box_train", "0001_c1.png"),
}

LAYOUT_MARKERS = {
    **{name: marker for name, (_, marker) in MARKET_STYLE.items()},
    "cuhk03np-detected": "bounding_box_train/0001_c1_1.png",
    "msmt17": "train/0000/0000_000_01_0303morning_0008_0.jpg",
    "msmt17v2": "mask_train_v2/0000/0000_000_01_0303morning_0008_0.jpg",
    "msmt17-trainval": "list_val.txt",
    "msmt17v2-trainval": "mask_test_v2/",
}


@pytest.mark.parametrize("name", REAL_NAMES)
def test_missing_root_shows_expected_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset(name, tmp_path / "nowhere")
    msg = str(exc.value)
    assert "root does not exist" in msg and "expected layout" in msg
    assert LAYOUT_MARKERS[name] in msg
    assert isinstance(exc.value, FileNotFoundError)  # callers may catch the builtin


@pytest.mark.parametrize("name", REAL_NAMES)
def test_empty_root_shows_expected_layout(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset(name, tmp_path)
    assert LAYOUT_MARKERS[name] in str(exc.value)


@pytest.mark.parametrize("name", list(MARKET_STYLE))
def test_missing_query_dir_is_a_layout_error(tmp_path: Path, name: str) -> None:
    builder, marker = MARKET_STYLE[name]
    d = builder(tmp_path / "data" / "ds")
    for f in (d / "query").iterdir():
        f.unlink()
    (d / "query").rmdir()
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset(name, d)
    msg = str(exc.value)
    assert "query/" in msg and "lacks" in msg and marker in msg


@pytest.mark.parametrize("name", list(MARKET_STYLE))
def test_empty_split_dir_is_a_layout_error(tmp_path: Path, name: str) -> None:
    builder, marker = MARKET_STYLE[name]
    d = builder(tmp_path / "data" / "ds")
    for f in (d / "bounding_box_test").iterdir():
        f.unlink()
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset(name, d)
    assert "no images found in bounding_box_test/" in str(exc.value) and marker in str(exc.value)


@pytest.mark.parametrize("name", list(MARKET_STYLE))
def test_malformed_file_name_names_the_file(tmp_path: Path, name: str) -> None:
    builder, _ = MARKET_STYLE[name]
    d = builder(tmp_path / "data" / "ds")
    split, bad = BAD_NAMES[name]
    write_image(d / split / bad)
    with pytest.raises(MalformedNameError) as exc:
        build_dataset(name, d)
    assert str(d / split / bad) in str(exc.value)


def test_market1501_camera_out_of_range(tmp_path: Path) -> None:
    build_market(tmp_path)
    write_image(tmp_path / "bounding_box_train" / "0002_c7s1_000451_03.jpg")
    with pytest.raises(MalformedNameError, match="0002_c7s1_000451_03.jpg"):
        build_dataset("market1501", tmp_path)
