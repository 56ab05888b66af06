"""CUHK03 (Li et al., CVPR 2014) read from the official ``cuhk-03.mat``.

Two protocols are built from the same file:

* **classic** (``cuhk03-classic-labeled`` / ``-detected``): the 20 random test splits stored
  in the file (``testsets``), 100 test ids each; train = every other id (1,367). For the test
  split, query = gallery = all images of the 100 test ids. Evaluate it with
  :func:`reid_core.metrics.cuhk03_classic.evaluate_cuhk03_classic` (single-shot CMC,
  repeated gallery sampling) and average over the 20 splits; the loaded
  :class:`ReIDData` says so in ``extras["protocol"] == "cuhk03_classic"``.
* **new protocol / CUHK03-NP** (``cuhk03np-mat-labeled`` / ``-detected``): the 767 / 700 split
  of Zhong et al. (CVPR 2017) given by ``cuhk03_new_protocol_config_{labeled,detected}.mat``
  over the images extracted from ``cuhk-03.mat``; evaluated like Market-1501.

Layout (first match wins for the ``.mat``; the config files may sit in ``<root>`` or next to
``cuhk-03.mat``)::

    <root>/
      cuhk-03.mat                        (or <root>/cuhk03_release/cuhk-03.mat, torchreid's)
      cuhk03_new_protocol_config_labeled.mat     (NP variants only)
      cuhk03_new_protocol_config_detected.mat
      images_labeled/  images_detected/  (written on first use, see below)

Structure of ``cuhk-03.mat`` (MATLAB v7.3 = HDF5; HDF5 stores MATLAB arrays with the axes
reversed, so the MATLAB array is the h5py array transposed):

* ``labeled`` / ``detected``: a 5 x 1 cell (on disk ``(1, 5)`` object references), one per
  camera pair. Camera pair ``c`` is a ``num_pids x 10`` cell (on disk ``(10, num_pids)``):
  slots 1-5 are the images of view 1, slots 6-10 of view 2. A slot holds an ``H x W x 3``
  uint8 image (on disk ``(3, W, H)``) or MATLAB's empty ``[]``, which v7.3 stores as a uint64
  vector of its dimensions (``[0, 0]``) with the attribute ``MATLAB_empty = 1``. Persons have
  up to 5 images per view; some have fewer, a few only one view. Real pair sizes: 843, 440,
  77, 58, 49 persons = 1,467.
* ``testsets``: a 20 x 1 cell (on disk ``(1, 20)``); split ``k`` is a ``100 x 2`` double array
  (on disk ``(2, 100)``) of 1-based ``(camera pair, person)`` rows.

This is how torchreid and the RGA code read it (``mat[ref][:].T``, empty slot = size 0 or
fewer than 3 dims); the naming below is theirs too.

Images are extracted once to PNG as ``{pair}_{person:03d}_{view}_{slot:02d}.png`` (all
1-based, e.g. ``1_001_1_01.png``; these are the names the NP ``filelist`` uses). camid =
view - 1 (0-based), and the person id of an image is its **global id**: persons are numbered
1..1467 in file order (pair 1's persons first). The extraction goes to ``<root>/images_<box>``
(or ``cache_dir``): a complete existing directory (also one written by torchreid) is reused;
otherwise the PNGs are written into a temporary sibling directory that is renamed into place
when complete. If ``<root>`` is read-only, the images go to
``$REID_BENCH_CACHE/cuhk03-mat/<hash of the .mat path>/`` (default cache
``~/.cache/reid-attention-bench``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reid_core.config import ConfigError
from reid_core.data.base import (
    DatasetError,
    ImageItem,
    ReIDData,
    layout_error,
    register_dataset,
    relabel_train,
)
from reid_core.utils.io import atomic_save

BOX_TYPES = ("labeled", "detected")
MAT_NAME = "cuhk-03.mat"
MAT_DIRS = ("", "cuhk03_release")  # where cuhk-03.mat may be, relative to the root
SLOTS_PER_VIEW = 5  # cell columns 1-5 = view 1, 6-10 = view 2
NUM_SLOTS = 2 * SLOTS_PER_VIEW
CONFIG_KEYS = ("labels", "camId", "train_idx", "query_idx", "gallery_idx", "filelist")
# {pair}_{person:03d}_{view}_{slot:02d}.png. Also guards the NP filelist: only such names are
# ever joined to the image directory, so a list entry cannot point outside it.
STALE_TMP_SECONDS = 3600  # an extraction temp dir not modified for this long is a leftover
IMAGE_NAME = re.compile(r"^([1-9])_(\d{3})_([12])_(\d{2})\.png$", re.ASCII)

CUHK03_MAT_LAYOUT = """\
    <root>/
      cuhk-03.mat                  MATLAB v7.3, from cuhk03_release.zip
                                   (or <root>/cuhk03_release/cuhk-03.mat)
      cuhk03_new_protocol_config_labeled.mat    only for cuhk03np-mat-* (Zhong et al.,
      cuhk03_new_protocol_config_detected.mat   github.com/zhunzhong07/person-re-ranking)
      images_labeled/ images_detected/          PNGs extracted on first use
"""


def config_name(box_type: str) -> str:
    return f"cuhk03_new_protocol_config_{box_type}.mat"


def _check_box_type(box_type: str) -> None:
    if box_type not in BOX_TYPES:
        raise ValueError(f"box_type must be one of {BOX_TYPES}, got {box_type!r}")


# ---------------------------------------------------------------------------------------------
# Reading cuhk-03.mat
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class MatImage:
    """One non-empty image slot of ``cuhk-03.mat``; all numbers 1-based as in MATLAB.

    Attributes:
        campair: camera pair 1..5 (index into the ``labeled`` / ``detected`` cell).
        pid: person within the camera pair (row of the pair's cell).
        slot: column 1..10 of the pair's cell; 1-5 = view 1, 6-10 = view 2.
        global_pid: person id over the whole file, 1..1467 in file order.
    """

    campair: int
    pid: int
    slot: int
    global_pid: int

    @property
    def view(self) -> int:
        """1 or 2 (the camera of the pair)."""
        return 1 if self.slot <= SLOTS_PER_VIEW else 2

    @property
    def name(self) -> str:
        """File name of the extracted PNG, e.g. ``1_001_1_01.png``."""
        return f"{self.campair}_{self.pid:03d}_{self.view}_{self.slot:02d}.png"


class Cuhk03Mat:
    """Read-only access to ``cuhk-03.mat`` (use as a context manager, or call :meth:`close`).

    >>> with Cuhk03Mat("cuhk-03.mat") as mat:
    ...     for img, pixels in mat.iter_images("labeled"):   # pixels: (H, W, 3) uint8
    ...         ...
    ...     splits = mat.testsets()                          # 20 lists of (campair, pid)
    """

    def __init__(self, path: str | Path) -> None:
        import h5py  # imported here: only this dataset needs it

        self.path = Path(path)
        if not self.path.is_file():
            raise layout_error("cuhk03", self.path.parent, CUHK03_MAT_LAYOUT,
                               f"{self.path} does not exist")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as e:
            raise DatasetError(
                f"{self.path}: cannot open as a MATLAB v7.3 (HDF5) file ({e}); the official "
                f"cuhk-03.mat is v7.3 (re-save with `save(..., '-v7.3')` if converted)"
            ) from None
        # Per box type: the non-empty slots with their object references, and the number of
        # persons per camera pair (filled by _slot_refs on first use).
        self._slots: dict[str, dict[MatImage, Any]] = {}
        self._num_pids: dict[str, list[int]] = {}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Cuhk03Mat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- low level -----------------------------------------------------------------------------

    def _dataset(self, key: str) -> Any:
        if key not in self._file:
            raise DatasetError(f"{self.path}: no variable {key!r} (expected labeled, detected, "
                               f"testsets); is this the official cuhk-03.mat?")
        return self._file[key]

    def _cell(self, ds: Any, what: str) -> np.ndarray:
        """A MATLAB cell as an array of object references in MATLAB orientation."""
        import h5py

        if ds.dtype != h5py.ref_dtype:
            raise DatasetError(f"{self.path}: {what} should be a MATLAB cell (HDF5 object "
                               f"references), got dtype {ds.dtype} of shape {ds.shape}")
        return ds[()].T

    def _column_cell(self, key: str) -> list[Any]:
        """The references of an ``n x 1`` cell (on disk ``(1, n)``)."""
        cell = self._cell(self._dataset(key), key)
        if cell.ndim != 2 or cell.shape[1] != 1:
            raise DatasetError(f"{self.path}: {key} should be an n x 1 cell, got MATLAB shape "
                               f"{cell.shape}")
        return list(cell[:, 0])

    def _is_empty(self, ds: Any) -> bool:
        # MATLAB marks [] with MATLAB_empty and stores its dims ([0 0], uint64) as the data;
        # torchreid's "size == 0 or ndim < 3" test catches the same slots.
        return bool(ds.attrs.get("MATLAB_empty", 0)) or ds.size == 0

    # -- public --------------------------------------------------------------------------------

    def list_images(self, box_type: str) -> list[MatImage]:
        """Every non-empty slot of ``box_type`` in file order (pair, person, slot); no pixels.

        Raises:
            DatasetError: a slot holds something other than an ``H x W x 3`` uint8 image
                (names the pair, person and slot).
        """
        return list(self._slot_refs(box_type))

    def num_pids(self, box_type: str) -> list[int]:
        """Number of persons in each camera pair (real file: 843, 440, 77, 58, 49)."""
        self._slot_refs(box_type)
        return list(self._num_pids[box_type])

    def read_image(self, box_type: str, img: MatImage) -> np.ndarray:
        """Pixels of ``img`` as an ``(H, W, 3)`` uint8 array (the MATLAB orientation)."""
        refs = self._slot_refs(box_type)
        if img not in refs:
            raise KeyError(f"{img} is not a non-empty slot of {box_type!r} in {self.path}")
        return self._file[refs[img]][()].T

    def iter_images(self, box_type: str) -> Iterator[tuple[MatImage, np.ndarray]]:
        """``(image, pixels)`` for every non-empty slot in file order; pixels ``(H, W, 3)``."""
        for img, ref in self._slot_refs(box_type).items():
            yield img, self._file[ref][()].T

    def testsets(self) -> list[list[tuple[int, int]]]:
        """The classic test splits (20 in the real file): 1-based ``(campair, pid)`` pairs."""
        out = []
        for k, ref in enumerate(self._column_cell("testsets")):
            ds = self._file[ref]
            arr = np.zeros((0, 2)) if self._is_empty(ds) else ds[()].T
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise DatasetError(f"{self.path}: testsets{{{k + 1}}} should be an n x 2 array "
                                   f"of (camera pair, person), got MATLAB shape {arr.shape}")
            if not np.array_equal(arr, np.round(arr)) or (arr < 1).any():
                raise DatasetError(f"{self.path}: testsets{{{k + 1}}} holds non-integer or "
                                   f"non-positive entries (expected 1-based indices)")
            out.append([(int(c), int(p)) for c, p in arr])
        return out

    def _slot_refs(self, box_type: str) -> dict[MatImage, Any]:
        """``{image: object reference}`` of the non-empty slots, in file order (cached)."""
        _check_box_type(box_type)
        if box_type in self._slots:
            return self._slots[box_type]
        out: dict[MatImage, Any] = {}
        num_pids: list[int] = []
        offset = 0
        for c, pair_ref in enumerate(self._column_cell(box_type), start=1):
            pair = self._cell(self._file[pair_ref], f"{box_type}{{{c}}}")
            if pair.ndim != 2 or pair.shape[1] != NUM_SLOTS:
                raise DatasetError(f"{self.path}: {box_type}{{{c}}} should be a persons x "
                                   f"{NUM_SLOTS} cell, got MATLAB shape {pair.shape}")
            for p in range(pair.shape[0]):
                for s in range(NUM_SLOTS):
                    ds = self._file[pair[p, s]]
                    if self._is_empty(ds):
                        continue
                    # On disk (3, W, H); transposed = MATLAB's H x W x 3.
                    if ds.ndim != 3 or ds.shape[0] != 3 or ds.dtype != np.uint8:
                        raise DatasetError(
                            f"{self.path}: {box_type}{{{c}}}{{{p + 1},{s + 1}}} should be an "
                            f"H x W x 3 uint8 image or empty, got MATLAB shape "
                            f"{tuple(reversed(ds.shape))} of {ds.dtype}")
                    out[MatImage(c, p + 1, s + 1, offset + p + 1)] = pair[p, s]
            num_pids.append(pair.shape[0])
            offset += pair.shape[0]
        self._slots[box_type] = out
        self._num_pids[box_type] = num_pids
        return out


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------


def _user_cache_base() -> Path:
    """``$REID_BENCH_CACHE``, else ``~/.cache/reid-attention-bench`` (as the synthetic data)."""
    env = os.environ.get("REID_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "reid-attention-bench"


def _is_writable(directory: Path) -> bool:
    return os.access(directory, os.W_OK | os.X_OK)


def default_images_dir(root: Path, mat_path: Path, box_type: str) -> Path:
    """``<root>/images_<box>`` if it exists or ``root`` is writable, else a user cache dir."""
    d = root / f"images_{box_type}"
    if d.is_dir() or _is_writable(root):
        return d
    digest = hashlib.sha1(str(mat_path.resolve()).encode()).hexdigest()[:12]
    return _user_cache_base() / "cuhk03-mat" / digest / f"images_{box_type}"


def _save_png(path_or_file: Any, pixels: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(pixels)).save(path_or_file, format="PNG")


def extract_images(mat: Cuhk03Mat, box_type: str, out_dir: str | Path) -> dict[MatImage, Path]:
    """Write every ``box_type`` image of ``mat`` to ``out_dir`` as PNG; skip if complete.

    * ``out_dir`` missing: all PNGs are written into a temporary sibling directory renamed to
      ``out_dir`` when complete, so an interrupted run never leaves a partial directory under
      the final name (temporaries untouched for ``STALE_TMP_SECONDS`` are removed).
    * ``out_dir`` present but missing some files (e.g. a partial extraction by another tool):
      only the missing files are written, each atomically (temp file + ``os.replace``);
      nothing there is deleted.
    * every expected file present: nothing is written (existing files are trusted).

    Returns:
        ``{image: absolute path of its PNG}`` in file order.
    """
    out_dir = Path(out_dir).expanduser().absolute()
    images = mat.list_images(box_type)
    paths = {img: out_dir / img.name for img in images}
    if out_dir.is_dir():
        missing = {img for img, p in paths.items() if not p.is_file()}
        if missing:
            for img, pixels in mat.iter_images(box_type):
                if img in missing:
                    atomic_save(paths[img], lambda f, px=pixels: _save_png(f, px))
        return paths

    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot create {parent} to extract the {box_type} images of "
                           f"{mat.path} ({e}); pass cache_dir=<a writable directory>") from None
    # Leftovers of killed extractions. A recent one may belong to a concurrent extraction
    # (it keeps getting new files), so only old ones are removed.
    for stale in parent.glob(f".{out_dir.name}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_TMP_SECONDS:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:  # removed meanwhile by its owner
            pass
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
    try:
        for img, pixels in mat.iter_images(box_type):
            _save_png(tmp / img.name, pixels)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            # Another process finished first: keep its (complete) directory, drop ours.
            if not all(p.is_file() for p in paths.values()):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return paths


# ---------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------


def find_mat(root: Path, dataset: str) -> Path:
    """``<root>/cuhk-03.mat`` or ``<root>/cuhk03_release/cuhk-03.mat``; layout error if neither."""
    root = Path(root)
    for d in MAT_DIRS:
        p = root / d / MAT_NAME if d else root / MAT_NAME
        if p.is_file():
            return p
    if not root.exists():
        problem = "root does not exist"
    elif not root.is_dir():
        problem = "root is not a directory"
    else:
        problem = f"{MAT_NAME} not found in {root} or {root / 'cuhk03_release'}"
    raise layout_error(dataset, root, CUHK03_MAT_LAYOUT, problem)


def images_dir(root: Path, mat_path: Path, box_type: str, cache_dir: str | Path | None) -> Path:
    """Where the ``box_type`` PNGs go: ``<cache_dir>/images_<box>`` or the default place."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / f"images_{box_type}"
    return default_images_dir(Path(root), mat_path, box_type)


def _item(img: MatImage, path: Path) -> ImageItem:
    return (str(path), img.global_pid, img.view - 1)


def load_cuhk03_classic(root: Path, box_type: str, *, split: int = 0,
                        cache_dir: str | Path | None = None) -> ReIDData:
    """Classic CUHK03: train on all ids outside test split ``split``; query = gallery = test.

    Args:
        root: see the module docstring (``<root>/cuhk-03.mat``).
        box_type: ``"labeled"`` or ``"detected"``.
        split: which of the file's test splits (0-based, ``0..19`` on the real file); the
            config key is ``data.split``.
        cache_dir: directory for ``images_<box_type>/`` instead of ``<root>``.

    Query/gallery pids are global ids (1..1467); train pids are relabelled 0..N-1.
    ``extras``: ``protocol`` (``"cuhk03_classic"``), ``split``, ``num_splits``,
    ``test_ids`` (the split's 1-based ``(campair, pid)`` pairs), ``train_pid_to_label``.

    Raises:
        ConfigError: ``split`` is not an index of the file's test splits (names ``data.split``).
        DatasetLayoutError: no ``cuhk-03.mat`` under ``root`` (shows the expected layout).
        DatasetError: the file's structure differs from the official one, or a test split
            names a person the file does not have.
    """
    _check_box_type(box_type)
    name = f"cuhk03-classic-{box_type}"
    if isinstance(split, bool) or not isinstance(split, (int, np.integer)):
        raise ConfigError(f"{name}: data.split must be an integer (0-19 on the real "
                          f"cuhk-03.mat), got {split!r}")
    mat_path = find_mat(Path(root), name)
    with Cuhk03Mat(mat_path) as mat:
        splits = mat.testsets()
        # Checked before the (slow, first-use) extraction.
        if not 0 <= split < len(splits):
            raise ConfigError(f"{name}: data.split = {split} is out of range; {mat_path} has "
                              f"{len(splits)} test splits, so data.split must be in "
                              f"0..{len(splits) - 1}")
        num_pids = mat.num_pids(box_type)
        test_ids = splits[split]
        for c, p in test_ids:
            if not (1 <= c <= len(num_pids) and 1 <= p <= num_pids[c - 1]):
                raise DatasetError(f"{mat_path}: testsets{{{split + 1}}} names camera pair {c}, "
                                   f"person {p}, which {box_type} does not have "
                                   f"(persons per pair: {num_pids})")
        paths = extract_images(mat, box_type, images_dir(root, mat_path, box_type, cache_dir))
    test_set = set(test_ids)
    train, test = [], []
    for img, path in paths.items():
        (test if (img.campair, img.pid) in test_set else train).append(_item(img, path))
    if not train or not test:
        raise DatasetError(f"{mat_path}: split {split} leaves an empty "
                           f"{'train' if not train else 'test'} set")
    train, mapping = relabel_train(train)
    extras = {"protocol": "cuhk03_classic", "split": int(split), "num_splits": len(splits),
              "test_ids": list(test_ids), "train_pid_to_label": mapping, "box_type": box_type}
    # Separate lists with equal content: query = gallery, but mutating one must not alter
    # the other.
    return ReIDData(name, Path(root), train, list(test), list(test), extras=extras)


def _config_entry_name(entry: Any) -> str | None:
    """The string of one ``filelist`` cell as loadmat returns it (``array(['x.png'])``)."""
    while isinstance(entry, np.ndarray):
        if entry.size != 1:
            return None
        entry = entry.reshape(-1)[0]
    return str(entry) if isinstance(entry, str) else None  # np.str_ -> str


def _int_vector(cfg_path: Path, cfg: dict, key: str) -> np.ndarray:
    arr = np.asarray(cfg[key])
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise DatasetError(f"{cfg_path}: {key} should be a non-empty numeric vector, got "
                           f"{arr.dtype} of shape {arr.shape}")
    flat = arr.reshape(-1)
    if not np.array_equal(flat, np.round(flat)):
        raise DatasetError(f"{cfg_path}: {key} holds non-integer values")
    return flat.astype(np.int64)


def read_np_config(cfg_path: Path) -> dict[str, Any]:
    """The variables of a new-protocol config file (MATLAB v5, via ``scipy.io.loadmat``).

    Returns ``labels``, ``camId`` (int64 vectors of length N), ``train_idx``, ``query_idx``,
    ``gallery_idx`` (**0-based** int64, converted from the file's 1-based indices) and
    ``filelist`` (N file names).
    """
    from scipy.io import loadmat

    try:
        cfg = loadmat(str(cfg_path))
    except NotImplementedError:  # scipy's message for v7.3 files
        raise DatasetError(f"{cfg_path}: MATLAB v7.3 file; the new-protocol config files are "
                           f"v5 (as released in zhunzhong07/person-re-ranking)") from None
    except (ValueError, OSError, TypeError) as e:
        raise DatasetError(f"{cfg_path}: not a readable MATLAB .mat file ({e})") from None
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise DatasetError(f"{cfg_path}: missing variable(s) {', '.join(missing)}; expected "
                           f"{', '.join(CONFIG_KEYS)}")
    out: dict[str, Any] = {k: _int_vector(cfg_path, cfg, k) for k in CONFIG_KEYS[:5]}
    filelist = np.asarray(cfg["filelist"]).reshape(-1)
    names = []
    for i, entry in enumerate(filelist):
        s = _config_entry_name(entry)
        if s is None:
            raise DatasetError(f"{cfg_path}: filelist entry {i + 1} is not a file name string "
                               f"(got {entry!r})")
        names.append(s)
    out["filelist"] = names
    n = len(names)
    for key in ("labels", "camId"):
        if len(out[key]) != n:
            raise DatasetError(f"{cfg_path}: {key} has {len(out[key])} entries but filelist "
                               f"has {n}; they should be parallel")
    for key in ("train_idx", "query_idx", "gallery_idx"):
        idx = out[key]
        bad = idx[(idx < 1) | (idx > n)]
        if bad.size:
            raise DatasetError(f"{cfg_path}: {key} holds {int(bad[0])}, outside 1..{n} "
                               f"(indices are 1-based into filelist)")
        out[key] = idx - 1
    return out


def find_config(root: Path, mat_path: Path, box_type: str, dataset: str) -> Path:
    for d in (Path(root), mat_path.parent):
        p = d / config_name(box_type)
        if p.is_file():
            return p
    raise layout_error(dataset, Path(root), CUHK03_MAT_LAYOUT,
                       f"{config_name(box_type)} not found in {root} or {mat_path.parent}")


def load_cuhk03np_mat(root: Path, box_type: str, *,
                      cache_dir: str | Path | None = None) -> ReIDData:
    """CUHK03-NP (767 / 700 ids) from ``cuhk-03.mat`` + the new-protocol config file.

    Every ``filelist`` entry must name an image extracted from ``cuhk-03.mat`` and agree
    with it: ``camId`` = the view in the name, and one ``labels`` value per
    ``(campair, person)``. Train = ``train_idx`` (pids relabelled 0..766), query =
    ``query_idx``, gallery = ``gallery_idx``, with the file's ``labels`` as original pids.

    Real sizes: labeled train 7,368 / query 1,400 / gallery 5,328; detected 7,365 / 1,400 /
    5,332.

    Raises:
        DatasetLayoutError: no ``cuhk-03.mat`` or config file (shows the expected layout).
        DatasetError: a ``filelist`` entry that is malformed, not among the extracted images,
            or inconsistent with ``camId`` / ``labels`` (names the file, entry and name).
    """
    _check_box_type(box_type)
    name = f"cuhk03np-mat-{box_type}"
    mat_path = find_mat(Path(root), name)
    cfg_path = find_config(Path(root), mat_path, box_type, name)
    cfg = read_np_config(cfg_path)
    with Cuhk03Mat(mat_path) as mat:
        paths = extract_images(mat, box_type, images_dir(root, mat_path, box_type, cache_dir))
    by_name = {img.name: (img, p) for img, p in paths.items()}

    label_of: dict[tuple[int, int], int] = {}
    key_of: dict[int, tuple[int, int]] = {}
    for i, (fname, label, cam) in enumerate(zip(cfg["filelist"], cfg["labels"], cfg["camId"])):
        where = f"{cfg_path}: filelist entry {i + 1} ({fname!r})"
        if IMAGE_NAME.match(fname) is None:
            raise DatasetError(f"{where} is not a CUHK03 image name like 1_001_1_01.png")
        if fname not in by_name:
            raise DatasetError(f"{where} is not among the {len(by_name)} {box_type} images "
                               f"extracted from {mat_path}")
        img = by_name[fname][0]
        if cam != img.view:
            raise DatasetError(f"{where}: camId is {cam} but the name says view {img.view}")
        # One label per (pair, person) and one (pair, person) per label.
        key, label = (img.campair, img.pid), int(label)
        if label_of.setdefault(key, label) != label or key_of.setdefault(label, key) != key:
            raise DatasetError(
                f"{where}: label {label} is inconsistent: camera pair {key[0]} person {key[1]} "
                f"already has label {label_of[key]}, label {label} already belongs to "
                f"(pair, person) {key_of.get(label, key)}")

    def items(key: str) -> list[ImageItem]:
        return [(str(by_name[cfg["filelist"][i]][1]), int(cfg["labels"][i]),
                 by_name[cfg["filelist"][i]][0].view - 1) for i in cfg[key]]

    train, mapping = relabel_train(items("train_idx"))
    query, gallery = items("query_idx"), items("gallery_idx")
    extras = {"train_pid_to_label": mapping, "box_type": box_type, "config": str(cfg_path)}
    return ReIDData(name, Path(root), train, query, gallery, extras=extras)


@register_dataset("cuhk03-classic-labeled")
def load_cuhk03_classic_labeled(root: Path, *, split: int = 0,
                                cache_dir: str | Path | None = None) -> ReIDData:
    """Classic CUHK03, labeled boxes, test split ``split`` (``data.split``, 0-19)."""
    return load_cuhk03_classic(root, "labeled", split=split, cache_dir=cache_dir)


@register_dataset("cuhk03-classic-detected")
def load_cuhk03_classic_detected(root: Path, *, split: int = 0,
                                 cache_dir: str | Path | None = None) -> ReIDData:
    """Classic CUHK03, detected boxes, test split ``split`` (``data.split``, 0-19)."""
    return load_cuhk03_classic(root, "detected", split=split, cache_dir=cache_dir)


@register_dataset("cuhk03np-mat-labeled")
def load_cuhk03np_mat_labeled(root: Path, *, cache_dir: str | Path | None = None) -> ReIDData:
    """CUHK03-NP labeled from cuhk-03.mat: 767 train ids (7,368 images), 1,400 / 5,328."""
    return load_cuhk03np_mat(root, "labeled", cache_dir=cache_dir)


@register_dataset("cuhk03np-mat-detected")
def load_cuhk03np_mat_detected(root: Path, *, cache_dir: str | Path | None = None) -> ReIDData:
    """CUHK03-NP detected from cuhk-03.mat: 767 train ids (7,365 images), 1,400 / 5,332."""
    return load_cuhk03np_mat(root, "detected", cache_dir=cache_dir)


__all__ = [
    "BOX_TYPES",
    "Cuhk03Mat",
    "MatImage",
    "extract_images",
    "load_cuhk03_classic",
    "load_cuhk03np_mat",
    "read_np_config",
]
