"""Robustness of data and output: concurrent synthetic generation, synthetic loaders given a
dataset directory, corrupt images (clear errors, ``datasets --check``), stale temporary files
and failed writes (full disk, read-only file system)."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

import reid_core.utils.io as rio
from fixtures_layouts import build_market_with_gt_bbox
from reid_core.cli import main
from reid_core.data import DatasetError, ReIDData, build_dataset
from reid_core.data.check import check_dataset, check_images
from reid_core.data.image_dataset import CorruptImageError, ImageDataset, load_rgb
from reid_core.data.synthetic import (
    PARTIAL_REID_DIR, PRESETS, SyntheticSpec, generate_synthetic, resolve_synthetic_dir)
from reid_core.utils.io import OutputWriteError, atomic_open, atomic_write_text, remove_stale_temps

REPO = Path(__file__).resolve().parents[1]

# A custom spec small enough to generate in a fraction of a second.
MINI = SyntheticSpec(num_train_ids=3, num_test_ids=3, num_distractors=2, num_junk=2,
                     cams_per_id=(2, 2), images_per_track=(1, 2), gt_bbox_per_track=(0, 0),
                     partial_reid_ids=0, partial_ilids_ids=0, seed=3)


def _python(code: str, args: Sequence[str] = (), **popen) -> subprocess.Popen:
    """A Python process running ``code`` (with ``sys.argv[1:] = args``), this checkout
    importable."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            env={**os.environ, "PYTHONPATH": path}, text=True, **popen)


def _wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# synthetic: concurrent generation
# ---------------------------------------------------------------------------------------------


def test_two_processes_generate_the_same_preset_at_once(tmp_path):
    cache = tmp_path / "cache"
    code = """
        import os, sys, time
        from reid_core.data.synthetic import generate_synthetic
        go = sys.argv[1]
        open(go + ".ready", "w").close()
        while not os.path.exists(go):
            time.sleep(0.002)
        print(generate_synthetic({cache!r}, "tiny", progress=True, workers=1))
    """.format(cache=str(cache))
    gos = [tmp_path / "go-first", tmp_path / "go-second"]
    procs = [_python(code, args=[str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for go in gos]
    try:
        _wait_for(lambda: all(Path(f"{go}.ready").exists() for go in gos))
        gos[0].touch()
        # The second starts while the first is writing images (it used to delete the first
        # one's temporary directory as a leftover, failing it).
        _wait_for(lambda: any(cache.glob(".synthetic-tiny-*.tmp/bounding_box_train/*.jpg")),
                  timeout=60)
        gos[1].touch()
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    dirs = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(dirs) == 1
    final = Path(dirs.pop())
    meta = json.loads((final / "spec.json").read_text())
    assert meta["digest"] == PRESETS["tiny"].digest()
    left = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert left == [final.name]  # no .tmp dirs (the empty lock file stays, see synthetic.py)
    assert len(list((final / "query").glob("*.jpg"))) == meta["counts"]["query"]


def test_waiting_process_says_so_and_reuses_the_result(tmp_path):
    from filelock import FileLock

    final_name = f"synthetic-custom-{MINI.digest()}"
    lock = FileLock(str(tmp_path / f".{final_name}.lock"))
    lock.acquire()
    err_path = tmp_path / "stderr.txt"
    with err_path.open("w") as err:
        proc = _python(f"""
            from reid_core.data.synthetic import SyntheticSpec, generate_synthetic
            spec = SyntheticSpec(**{MINI.__dict__!r})
            print(generate_synthetic({str(tmp_path)!r}, spec, progress=True, workers=1))
        """, stdout=subprocess.PIPE, stderr=err)
        try:
            _wait_for(lambda: "waiting for another process" in err_path.read_text(), 60)
            assert proc.poll() is None  # still waiting
            # Meanwhile "the other process" finishes the dataset.
            made = generate_synthetic(tmp_path / "elsewhere", MINI, progress=False, workers=1)
            os.rename(made, tmp_path / final_name)
        finally:
            lock.release()
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, err_path.read_text()
    assert Path(out.strip().splitlines()[-1]) == tmp_path / final_name
    assert "generating synthetic re-ID dataset" not in out  # reused, not regenerated


def test_stale_temp_dirs_of_dead_generations_removed_live_ones_kept(tmp_path):
    final_name = f"synthetic-custom-{MINI.digest()}"
    dead = _dead_pid()
    stale = tmp_path / f".{final_name}.{dead}.abcd_123.tmp"
    old_format = tmp_path / f".{final_name}.zz9xy8wq.tmp"
    live = tmp_path / f".{final_name}.{os.getpid()}.live0000.tmp"  # this process: alive
    for d in (stale, old_format, live):
        (d / "query").mkdir(parents=True)
    generate_synthetic(tmp_path, MINI, progress=False, workers=1)
    assert not stale.exists() and not old_format.exists()
    assert live.is_dir()


# ---------------------------------------------------------------------------------------------
# synthetic: loaders given the generated directory itself
# ---------------------------------------------------------------------------------------------


def test_loader_given_its_own_dataset_directory_does_not_nest(synthetic_cache):
    data = build_dataset("synthetic-tiny", synthetic_cache)
    again = build_dataset("synthetic-tiny", data.root)  # what visualize passes back
    assert again.root == data.root
    assert again.summary() == data.summary()
    assert not any(p.name.startswith("synthetic-") for p in data.root.iterdir())


def test_partial_loader_given_dataset_or_partial_directory(synthetic_cache):
    data = build_dataset("synthetic-tiny-partial-reid", synthetic_cache)
    assert data.root.name == PARTIAL_REID_DIR
    for root in (data.root, data.root.parent):
        again = build_dataset("synthetic-tiny-partial-reid", root)
        assert again.root == data.root and again.summary() == data.summary()
    assert not any(p.name.startswith("synthetic-") for p in data.root.parent.iterdir())


def test_loader_given_another_synthetic_dataset_directory_is_an_error(tmp_path):
    other = generate_synthetic(tmp_path, MINI, progress=False, workers=1)
    with pytest.raises(DatasetError, match=r"is the directory of another synthetic dataset.*"
                                           r"not of the 'tiny' preset"):
        build_dataset("synthetic-tiny", other)
    assert not any(p.name.startswith("synthetic-") for p in other.iterdir())
    assert resolve_synthetic_dir(tmp_path, "tiny").parent == tmp_path  # a cache root: generated


def test_loader_given_a_damaged_dataset_directory_is_an_error(tmp_path):
    (tmp_path / "bounding_box_train").mkdir()
    with pytest.raises(DatasetError, match="no valid spec.json"):
        build_dataset("synthetic-tiny", tmp_path)


# ---------------------------------------------------------------------------------------------
# corrupt images
# ---------------------------------------------------------------------------------------------


def _noise_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 32, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _truncated_jpeg(path: Path) -> Path:
    data = _noise_jpeg()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_truncated_jpeg_is_a_dataset_error_naming_the_file(tmp_path):
    bad = _truncated_jpeg(tmp_path / "0001_c1s1_000001_00.jpg")
    ds = ImageDataset([(str(bad), 1, 0)], dataset="market1501")
    with pytest.raises(CorruptImageError) as info:
        ds[0]
    assert isinstance(info.value, DatasetError) and info.value.path == str(bad)
    msg = str(info.value)
    assert str(bad) in msg and "truncated" in msg and "re-extract" in msg
    assert "`python -m reid_core datasets --name market1501 --check`" in msg
    assert info.value.__cause__ is None and info.value.__context__ is None  # no PIL traceback


def test_truncation_detected_even_with_load_truncated_images(tmp_path, monkeypatch):
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    bad = _truncated_jpeg(tmp_path / "x.jpg")
    with pytest.raises(CorruptImageError, match="truncated"):
        load_rgb(bad)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # the caller's setting is restored
    good = tmp_path / "good.jpg"
    good.write_bytes(_noise_jpeg())
    assert load_rgb(good).size == (32, 64)


def test_non_image_and_missing_files(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a jpeg")
    with pytest.raises(CorruptImageError, match=r"notes\.jpg \(not an image file PIL can read\)"):
        load_rgb(text)
    with pytest.raises(CorruptImageError, match=r"missing\.jpg \(file not found\)"):
        load_rgb(tmp_path / "missing.jpg")
    problems = dict(check_images([str(text), (str(tmp_path / "missing.jpg"), 1, 0)],
                                 progress=False))
    assert problems == {str(text): "not an image file PIL can read",
                        str(tmp_path / "missing.jpg"): "file not found"}


def test_datasets_check_cli_lists_bad_files_and_exits_2(tmp_path, capsys):
    root = build_market_with_gt_bbox(tmp_path / "Market-1501")
    assert main(["datasets", "--name", "market1501", "--data-root", str(root), "--check"]) == 0
    assert "all images decode" in capsys.readouterr().out

    truncated = _truncated_jpeg(root / "query" / "0003_c4s2_010101_00.jpg")
    not_image = root / "gt_bbox" / "0001_c1s2_002301_00.jpg"
    not_image.write_bytes(b"\0" * 64)
    code = main(["datasets", "--name", "market1501", "--data-root", str(root), "--check"])
    out = capsys.readouterr().out
    assert code == 2
    assert f"{truncated}: truncated" in out
    assert f"{not_image}: not an image" in out
    assert "2 bad image file(s)" in out
    assert "gt_bbox" in out  # extras are checked and summarised


def test_check_dataset_lists_twenty_then_a_count(tmp_path):
    from rich.console import Console

    items = [(str(tmp_path / f"{i:04d}_c1s1_000001_00.jpg"), i, 0) for i in range(23)]
    data = ReIDData("demo", tmp_path, items[:3], items[3:13], items[13:],
                    extras={"gt_bbox": items[:2], "fingerprint": "abc"})
    buf = io.StringIO()
    bad = check_dataset(data, Console(file=buf, width=200), progress=False)
    out = buf.getvalue()
    assert len(bad) == 23  # each file once, though gt_bbox repeats two
    assert out.count("file not found") == 20 and "... and 3 more" in out


# ---------------------------------------------------------------------------------------------
# atomic writes: stale temporary files
# ---------------------------------------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temp_files_carry_the_writer_pid(tmp_path):
    target = tmp_path / "record.json"
    with atomic_open(target) as f:
        (temp,) = [p.name for p in tmp_path.iterdir()]
        f.write(b"{}")
    assert temp.startswith(f".record.json.{os.getpid()}.") and temp.endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_remove_stale_temps_keeps_live_writers(tmp_path):
    dead = _dead_pid()
    names = {
        "dead": f".record.json.{dead}.ab3_x9yz.tmp",
        "old": ".record.json.k2j4h5g6.tmp",  # old format: no pid
        "live": f".record.json.{os.getpid()}.qwer7tyu.tmp",
        "other_dead": f".last.pt.{dead}.zxcv1bnm.tmp",
        "final": "record.json",
        "unrelated": ".cache.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_text("x")
    (tmp_path / f".data.{dead}.dir_4567.tmp").mkdir()
    removed = remove_stale_temps(tmp_path, "record.json")
    assert removed == sorted([tmp_path / names["dead"], tmp_path / names["old"]])
    left = {p.name for p in tmp_path.iterdir()}
    assert names["live"] in left and names["other_dead"] in left and names["final"] in left
    removed = remove_stale_temps(tmp_path)  # every name
    assert {p.name for p in removed} == {names["other_dead"], f".data.{dead}.dir_4567.tmp"}
    assert {p.name for p in tmp_path.iterdir()} == {names["live"], names["final"],
                                                    names["unrelated"]}
    assert remove_stale_temps(tmp_path / "missing") == []


# ---------------------------------------------------------------------------------------------
# atomic writes: full disk, read-only file system
# ---------------------------------------------------------------------------------------------


def test_full_disk_is_one_clear_line_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "record.json"
    target.write_text("old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rio.os, "fsync", no_space)
    with pytest.raises(OutputWriteError) as info:
        atomic_write_text(target, "new")
    assert str(info.value) == (f"no space left on device writing {target} "
                               f"(the previous version, if any, is untouched)")
    assert info.value.errno == errno.ENOSPC and isinstance(info.value, OSError)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # temp file removed


def test_write_and_rename_errors_become_output_errors(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "last.pt"
    with pytest.raises(OutputWriteError, match=r"^disk quota exceeded writing .*last\.pt"):
        with atomic_open(target) as f:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")  # as f.write would
    real_replace = os.replace

    def read_only(src, dst):
        raise OSError(errno.EROFS, "Read-only file system", src, None, dst)

    monkeypatch.setattr(rio.os, "replace", read_only)
    with pytest.raises(OutputWriteError, match=r"^read-only file system writing "):
        atomic_write_text(target, "x")
    monkeypatch.setattr(rio.os, "replace", real_replace)
    assert list(target.parent.iterdir()) == []


def test_unrelated_os_errors_pass_through(tmp_path):
    target = tmp_path / "x.json"
    with pytest.raises(OSError) as info:
        with atomic_open(target):
            raise OSError(errno.EIO, "Input/output error")
    assert not isinstance(info.value, OutputWriteError)
    with pytest.raises(PermissionError) as info:  # about another file: not this write's
        with atomic_open(target):
            raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "in.bin"))
    assert not isinstance(info.value, OutputWriteError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_directory_is_an_output_error(tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "record.json").write_text("old")
    out.chmod(0o555)
    try:
        with pytest.raises(OutputWriteError, match=r"^permission denied writing .*record\.json "
                                                   r"\(the previous version"):
            atomic_write_text(out / "record.json", "new")
    finally:
        out.chmod(0o755)
    assert (out / "record.json").read_text() == "old"
    assert [p.name for p in out.iterdir()] == ["record.json"]
