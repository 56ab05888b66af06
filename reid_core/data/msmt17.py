"""MSMT17 (Wei et al., CVPR 2018), V1 and V2 (faces blurred), read through its list files.

Layout (V2 renames the image directories; the list files keep their names)::

    MSMT17_V1/                            MSMT17_V2/
      train/<pid>/<image>.jpg               mask_train_v2/<pid>/<image>.jpg
      test/<pid>/<image>.jpg                mask_test_v2/<pid>/<image>.jpg
      list_train.txt  list_val.txt          list_train.txt  list_val.txt
      list_query.txt  list_gallery.txt      list_query.txt  list_gallery.txt

Accepted roots: the ``MSMT17_Vx`` directory, ``<root>/MSMT17_Vx``, ``<root>/msmt17/MSMT17_Vx``.

List lines are ``<pid_folder>/<file name> <pid>``, e.g.
``0000/0000_000_01_0303morning_0008_0.jpg 0``, relative to the train directory
(``list_train``, ``list_val``) or the test directory (``list_query``, ``list_gallery``).
Pids are 0-based within each family, so pid 0 is a real person here (not a Market-style
distractor). The camera is the third ``_`` field of the file name (01-15); camid = that
minus 1.

Train split: the conventional setting trains on ``list_train.txt`` only (BoT never reads val;
torchreid / fast-reid add ``list_val.txt`` only with ``combineall``). ``list_val.txt`` is
therefore **not used by default**; the registered names ``msmt17-trainval`` and
``msmt17v2-trainval`` (or ``load_msmt17(..., use_val=True)``) train on train + val, whose
pids share one id space. Results with val added are not comparable to published numbers.

Real sizes: 4,101 ids, 15 cameras; train folder 32,621 images of 1,041 ids (commonly quoted
as 30,248 in ``list_train`` + 2,373 in ``list_val``; not re-checked here); query 11,659 and
gallery 82,161 images of 3,060 test ids.

List files are untrusted input: an absolute path, or a path that resolves (after ``..`` and
symlinks) outside its image directory, is rejected with an error naming the list file and
line, so a crafted list cannot make the suite read arbitrary files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from reid_core.data.base import (
    DatasetLayoutError,
    ImageItem,
    MalformedNameError,
    ReIDData,
    layout_error,
    register_dataset,
    relabel_train,
)
from reid_core.data.market1501 import find_split_root, layout_problem

NUM_CAMS = 15
PID_FOLDER = re.compile(r"^\d{4}$", re.ASCII)
# <pid>_<index>_<camera 01-15>_<date+time>_<frame>_<n>.jpg; only the pid and the camera are
# used, the rest only has to be non-empty word characters. re.ASCII: \d would also accept
# non-ASCII digits, which int() then parses.
MSMT_NAME = re.compile(r"^(\d{4})_(\d+)_(\d{2})_\w+\.jpg$", re.ASCII)
MSMT_EXAMPLE_LINE = "0000/0000_000_01_0303morning_0008_0.jpg 0"
LIST_NAMES = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}


class UnsafeListPathError(MalformedNameError):
    """A list-file entry is absolute or resolves outside its image directory."""


@dataclass(frozen=True)
class MSMTVersion:
    """Directory names of one MSMT17 release."""

    name: str  # base registry name
    dirname: str
    train_dir: str
    test_dir: str

    @property
    def candidates(self) -> tuple[str, ...]:
        return ("", self.dirname, f"msmt17/{self.dirname}")

    @property
    def layout(self) -> str:
        d = self.dirname
        return f"""\
    <root>/                      (or <root>/{d}/, <root>/msmt17/{d}/)
      {self.train_dir}/0000/0000_000_01_0303morning_0008_0.jpg ...
      {self.test_dir}/<pid>/<image>.jpg ...
      list_train.txt  list_val.txt  list_query.txt  list_gallery.txt
    list line: "<pid_folder>/<file name> <pid>", e.g. "{MSMT_EXAMPLE_LINE}"
"""


V1 = MSMTVersion("msmt17", "MSMT17_V1", "train", "test")
V2 = MSMTVersion("msmt17v2", "MSMT17_V2", "mask_train_v2", "mask_test_v2")
VERSIONS = {"V1": V1, "V2": V2}


# ---------------------------------------------------------------------------------------------
# List files
# ---------------------------------------------------------------------------------------------


def _where(list_file: Path, lineno: int, line: str) -> str:
    shown = line.strip()
    if len(shown) > 120:
        shown = shown[:117] + "..."
    return f"{list_file}, line {lineno} ({shown!r})"


def _is_absolute(rel: str) -> bool:
    # Windows forms too: C:\x or \\server\x must not slip through as a "relative" name.
    return (PurePosixPath(rel).is_absolute() or bool(PureWindowsPath(rel).drive)
            or rel.startswith("\\"))


def resolve_list_entry(rel: str, image_dir: Path, where: str, dataset: str) -> Path:
    """Resolve a list entry inside ``image_dir`` (already resolved), refusing escapes.

    Raises :class:`UnsafeListPathError` for an absolute path or one whose real path (``..``
    and symlinks followed) is outside ``image_dir``.
    """
    if _is_absolute(rel):
        raise UnsafeListPathError(f"{dataset}: absolute path in list file at {where}")
    if "\x00" in rel:  # os.path.realpath would raise a bare ValueError
        raise MalformedNameError(f"{dataset}: NUL byte in list path at {where}")
    full = Path(os.path.realpath(image_dir / rel))
    if not full.is_relative_to(image_dir):
        raise UnsafeListPathError(
            f"{dataset}: path escapes its image directory {image_dir} at {where}")
    return full


def parse_list_line(line: str, where: str, dataset: str) -> tuple[str, int, int]:
    """Check one list line's form; return ``(relative path, pid, 1-based camera)``.

    Raises :class:`MalformedNameError` (naming ``where``) for a wrong field count, a
    non-integer pid, a path that is not ``<pid_folder>/<file name>``, a file name whose
    camera field is not 01-15, or a pid that disagrees with the folder or file-name prefix.
    """
    fields = line.split()
    expected = f"expected '<pid_folder>/<file name> <pid>', e.g. '{MSMT_EXAMPLE_LINE}'"
    if len(fields) != 2:
        raise MalformedNameError(
            f"{dataset}: malformed list line at {where}: {len(fields)} fields, {expected}")
    rel, pid_text = fields
    if not re.fullmatch(r"[0-9]+", pid_text):
        raise MalformedNameError(f"{dataset}: malformed list line at {where}: "
                                 f"pid {pid_text!r} is not a non-negative integer")
    pid = int(pid_text)
    parts = rel.split("/")
    if len(parts) != 2 or not PID_FOLDER.match(parts[0]):
        raise MalformedNameError(f"{dataset}: malformed list path at {where}: {expected}")
    folder, fname = parts
    m = MSMT_NAME.match(fname)
    if m is None:
        raise MalformedNameError(
            f"{dataset}: malformed image name {fname!r} at {where} (expected a name like "
            f"0000_000_01_0303morning_0008_0.jpg)")
    cam = int(m.group(3))
    if not 1 <= cam <= NUM_CAMS:
        raise MalformedNameError(
            f"{dataset}: camera field {m.group(3)!r} of {fname!r} is not 01-{NUM_CAMS} at {where}")
    if m.group(1) != folder or int(folder) != pid:
        raise MalformedNameError(
            f"{dataset}: pid {pid} disagrees with folder {folder!r} / file name {fname!r} "
            f"at {where}")
    return rel, pid, cam


def read_list(list_file: Path, image_dir: Path, dataset: str) -> list[ImageItem]:
    """Read one MSMT17 list file; paths are relative to ``image_dir``.

    Blank lines are skipped. Every listed image must exist (else :class:`DatasetLayoutError`
    naming the list file, line and missing path).
    """
    image_dir = Path(os.path.realpath(image_dir))
    items: list[ImageItem] = []
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = f.readlines()
    except UnicodeDecodeError as e:
        raise MalformedNameError(
            f"{dataset}: list file {list_file} is not UTF-8 text ({e})") from e
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = _where(list_file, lineno, line)
        # Escapes are checked before the form so "../../etc/passwd 0" is reported as the
        # escape it is rather than as a mere formatting problem.
        rel = line.split()[0]
        full = resolve_list_entry(rel, image_dir, where, dataset)
        _, pid, cam = parse_list_line(line, where, dataset)
        if not full.is_file():
            raise DatasetLayoutError(
                f"{dataset}: listed image {full} does not exist ({where})")
        items.append((str(full), pid, cam - 1))
    return items


# ---------------------------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------------------------


def find_msmt17_root(root: Path, version: MSMTVersion, lists: list[str]) -> Path:
    """Locate the ``MSMT17_Vx`` directory under ``root`` and check its list files."""
    required = (version.train_dir, version.test_dir)
    d = find_split_root(root, version.candidates, required)
    if d is None:
        problem = layout_problem(root, version.candidates, required)
        other = V2 if version is V1 else V1
        if find_split_root(root, other.candidates, (other.train_dir, other.test_dir)):
            problem += f"; this looks like {other.dirname}: use {other.name!r}"
        raise layout_error(version.name, root, version.layout, problem)
    missing = [LIST_NAMES[s] for s in lists if not (d / LIST_NAMES[s]).is_file()]
    if missing:
        raise layout_error(version.name, root, version.layout,
                           f"list files missing in {d}: {', '.join(missing)}")
    return d


def load_msmt17(root: Path, version: str = "V1", *, use_val: bool = False) -> ReIDData:
    """Load MSMT17 ``version`` ("V1" or "V2"); ``use_val`` adds ``list_val.txt`` to train."""
    v = VERSIONS[version]
    root = Path(root)
    name = f"{v.name}-trainval" if use_val else v.name
    train_lists = ["train", "val"] if use_val else ["train"]
    d = find_msmt17_root(root, v, train_lists + ["query", "gallery"])

    def read(split: str, image_dir: str) -> list[ImageItem]:
        items = read_list(d / LIST_NAMES[split], d / image_dir, name)
        if not items:
            raise layout_error(name, d, v.layout, f"{LIST_NAMES[split]} lists no images")
        return items

    train = [item for s in train_lists for item in read(s, v.train_dir)]
    query = read("query", v.test_dir)
    gallery = read("gallery", v.test_dir)
    train, mapping = relabel_train(train)
    extras = {
        "train_pid_to_label": mapping,
        "version": v.dirname,
        "train_lists": [LIST_NAMES[s] for s in train_lists],
    }
    return ReIDData(name, d, train, query, gallery, extras=extras)


@register_dataset("msmt17")
def load_msmt17_v1(root: Path) -> ReIDData:
    """MSMT17_V1, train = list_train.txt only (the conventional setting)."""
    return load_msmt17(root, "V1")


@register_dataset("msmt17v2")
def load_msmt17_v2(root: Path) -> ReIDData:
    """MSMT17_V2 (blurred faces), train = list_train.txt only."""
    return load_msmt17(root, "V2")


@register_dataset("msmt17-trainval")
def load_msmt17_v1_trainval(root: Path) -> ReIDData:
    """MSMT17_V1, train = list_train.txt + list_val.txt (torchreid's ``combineall``)."""
    return load_msmt17(root, "V1", use_val=True)


@register_dataset("msmt17v2-trainval")
def load_msmt17_v2_trainval(root: Path) -> ReIDData:
    """MSMT17_V2, train = list_train.txt + list_val.txt."""
    return load_msmt17(root, "V2", use_val=True)
