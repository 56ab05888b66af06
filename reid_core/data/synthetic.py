"""The embedded synthetic re-ID dataset, written in the real Market-1501 layout.

Every default run of the suite uses it (no real dataset can be downloaded here), and the real
Market-1501 reader reads it: ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` with
names like ``0002_c1s1_000451_03.jpg``. Rendering (people, cameras, occluders) lives in
:mod:`reid_core.data.synthetic_render`; this module plans the dataset and writes it.

The plan follows Market-1501's structure:

* train and test identities are disjoint; each identity is seen by 2-6 cameras, each
  (identity, camera) pair is a *track* with its own viewpoint, background and placement;
* for every test identity, one image from each of a few of its cameras goes to ``query/``,
  always leaving a gallery image of it in another camera; the rest go to the gallery, so
  **same-id-same-camera** gallery images exist (the protocol's junk rule is exercised);
* the gallery also holds **distractors** (pid ``0000``: people who are never queried) and
  **junk** (pid ``-1``: bad boxes: off-centre, zoomed in, tiny, mostly occluded).

Sidecars for every image (used by DAAF later):

* ``masks/<split dir>/<image stem>.png``: uint8 person mask, 255 = person;
* ``keypoints/<split dir>.json``: ``{"format": "coco17", "keypoint_names": [...],
  "images": {file name: [[x, y, v] x 17]}}`` in image pixels (pixel ``(r, c)`` covers
  ``[c, c+1) x [r, r+1)``), COCO visibility;
* ``spec.json``: the generation parameters, format version and counts.

``ImageDataset(..., sidecars=reid_core.data.sidecars.MarketSidecars(data.root))`` loads the
masks and keypoints with the images (they then follow every augmentation).

Format 2 adds, in the same dataset directory, the sets of two protocols (no sidecars for them):

* ``gt_bbox/``: Market-1501's multi-query boxes. For every (test identity, camera) track, a copy
  of the track's query image if it has one (mirroring Market, whose hand-drawn query boxes
  are taken to be among its gt_bbox images, so the pool includes the query) plus ``gt_bbox_per_track`` new "hand-drawn" boxes (detection ``00``) of the same
  track, named in the Market scheme with frames after the track's camera's last frame;
* ``Partial-REID_Dataset/{occluded_body_images,partial_body_images,whole_body_images}/`` in the
  released Partial-REID layout: ``<pid:03d>_<nn>.jpg``; per chosen test identity
  ``partial_reid_shots`` occluded renders in one camera, their crops to the visible body (the
  partial probes, same names), and as many unoccluded whole-body renders in another camera;
* ``Partial_iLIDS/{Probe,Gallery}/<pid:03d>.jpg`` in the released Partial-iLIDS layout: one
  partial probe (a crop) and one whole-body gallery image per chosen test identity.

The partial sets use the *synthetic Market pids* of test identities (never trained on), so a
model trained on the synthetic ``bounding_box_train`` is evaluated on them as DAAF evaluates a
Market-1501 model on the real sets. The readers are :mod:`reid_core.data.partial`'s; the
registered names are ``synthetic[-small|-tiny]-partial-reid`` / ``-partial-ilids``.

``synthetic[-small|-tiny]-cuhk03-classic`` read the same preset under the classic CUHK03
protocol (single-shot galleries sampled from query = gallery = the test images of real
identities; training unchanged), for the smoke runs of tables in that protocol.

All format-2 images come from their own RNG streams and are rendered after the original ones:
``bounding_box_train/``, ``query/``, ``bounding_box_test/``, ``masks/`` and ``keypoints/`` are
byte-identical to format 1 for the same values of the format-1 fields (the directory name
changes with the cache key).

Generation is deterministic (each image's randomness derives from (seed, image index), so the
number of worker processes does not matter), cached by the hash of its parameters, and atomic:
everything is written into a temporary sibling directory that is renamed into place last.
Concurrent generations of the same dataset (two runs started at once) are serialised by a file
lock in the cache root: the second waits and then reuses the first one's result.

The ``synthetic-pretrain`` preset (``PRESETS["pretrain"]``) is the pretraining corpus of
:mod:`reid_core.app.pretrain`: 1,000 training identities drawn from their own seed
(:data:`PRETRAIN_SEED`), so none of its people (nor its cameras) is in any evaluation preset.

The loaders accept either the cache root or a generated dataset directory itself (run records
store the latter as ``dataset.root``, and ``visualize`` passes it back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reid_core.data.base import DatasetError, ReIDData, register_dataset
from reid_core.data.market1501 import GT_BBOX_DIR, read_market_style
from reid_core.data.keypoints import COCO_KEYPOINT_NAMES
from reid_core.data.sidecars import KEYPOINT_FORMAT, MarketSidecars
from reid_core.data.partial import (
    PARTIAL_ILIDS_DIRS, PARTIAL_REID_GALLERY, PARTIAL_REID_OCCLUDED, PARTIAL_REID_PROBE,
    read_partial_ilids, read_partial_reid)
from reid_core.data.synthetic_render import (
    CLEAN_KIND, JUNK_KINDS, PARTIAL_KINDS, STREAM_GT_BBOX_IMAGE,
    STREAM_GT_BBOX_PLAN, STREAM_IDENTITY, STREAM_PILIDS_IMAGE, STREAM_PILIDS_PLAN,
    STREAM_PILIDS_TRACK, STREAM_PLAN, STREAM_PREID_IMAGE, STREAM_PREID_PLAN, STREAM_PREID_TRACK,
    VIEWS, Camera, RenderJob, crop_to_visible, render_image, sample_cameras, sample_identity)
from reid_core.utils.io import atomic_write_json, remove_stale_temps
from reid_core.utils.cache import cache_base, generation_lock

FORMAT_VERSION = 2  # 2: + gt_bbox/, Partial-REID_Dataset/, Partial_iLIDS/
SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")
# Where the partial sets live inside a synthetic dataset directory (the released names).
PARTIAL_REID_DIR = "Partial-REID_Dataset"
PARTIAL_ILIDS_DIR = "Partial_iLIDS"
# The DSR release's directory names: Probe, Gallery.
PARTIAL_ILIDS_PROBE, PARTIAL_ILIDS_GALLERY = PARTIAL_ILIDS_DIRS[0]


@dataclass(frozen=True)
class SyntheticSpec:
    """Parameters of a synthetic dataset (all counts are exact except where a range is given).

    Attributes:
        num_train_ids / num_test_ids: identities per split (disjoint).
        num_cameras: cameras (<= 6, like Market-1501).
        cams_per_id: (min, max) cameras that see one identity.
        images_per_track: (min, max) images of one identity in one camera.
        queries_per_id: (min, max) query images of a test identity (one per camera).
        num_distractors: gallery images of pid 0000 (never-queried people).
        num_junk: gallery images of pid -1 (bad boxes).
        height / width: image size in pixels (Market-1501: 128 x 64).
        camera_strength: how far the cameras' colour casts, gamma, brightness, saturation and
            haze depart from neutral (0..1, see ``synthetic_render.sample_cameras``). 0.5 keeps
            the cross-camera task hard but learnable from scratch within the smoke budget.
        seed: everything derives from it.
        gt_bbox_per_track: (min, max) new ``gt_bbox/`` images per (test id, camera) track, on
            top of the copy of the track's query image; (0, 0) = no ``gt_bbox/`` at all
            (Market-1501 has about 3-4 per track).
        partial_reid_ids: test identities in the Partial-REID-style set (capped at
            ``num_test_ids``; 0 = no set). Real Partial-REID: 60.
        partial_reid_shots: partial probes, and whole-body gallery images, per identity
            (real: 5).
        partial_ilids_ids: test identities in the Partial-iLIDS-style set, one probe and one
            gallery image each (capped at ``num_test_ids``; 0 = no set). Real: 119.
    """

    num_train_ids: int
    num_test_ids: int
    num_cameras: int = 6
    cams_per_id: tuple[int, int] = (2, 5)
    images_per_track: tuple[int, int] = (2, 4)
    queries_per_id: tuple[int, int] = (1, 3)
    num_distractors: int = 100
    num_junk: int = 60
    height: int = 128
    width: int = 64
    camera_strength: float = 0.5
    seed: int = 0
    gt_bbox_per_track: tuple[int, int] = (2, 4)
    partial_reid_ids: int = 60
    partial_reid_shots: int = 5
    partial_ilids_ids: int = 119

    def digest(self) -> str:
        canon = json.dumps({"version": FORMAT_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(canon.encode()).hexdigest()[:12]


#: Seed of the pretraining corpus. Person ``k`` of a synthetic dataset is drawn from the RNG
#: stream ``(seed, STREAM_IDENTITY, k)`` (:func:`plan`), and cameras from ``(seed,
#: STREAM_CAMERA)``: a seed that no evaluation preset uses (they all use 0) gives people and
#: cameras that none of them has, whatever the number of identities on either side
#: (``tests/test_pretrain.py`` checks the seeds and compares every identity).
PRETRAIN_SEED = 100_003

PRESETS: dict[str, SyntheticSpec] = {
    # Unit tests: a couple of hundred images, a second or two.
    "tiny": SyntheticSpec(num_train_ids=12, num_test_ids=10, num_distractors=12, num_junk=8,
                          cams_per_id=(2, 4), images_per_track=(2, 3),
                          gt_bbox_per_track=(1, 2), partial_reid_shots=2),
    # Demos.
    "default": SyntheticSpec(num_train_ids=150, num_test_ids=150, num_distractors=300,
                             num_junk=150),
    # Smoke tables: ten or more rows must train within minutes on 2 CPU cores.
    "small": SyntheticSpec(num_train_ids=100, num_test_ids=100, num_distractors=150,
                           num_junk=80),
    # The pretraining corpus (plays ImageNet's role: reid_core.app.pretrain): 1,000 training
    # identities that no evaluation preset has, seen by other cameras (its own seed), plus 100
    # held-out identities that check the pretrained trunk on people it never saw. No
    # distractors, junk, gt_bbox or partial sets: only the training split matters.
    "pretrain": SyntheticSpec(num_train_ids=1000, num_test_ids=100, num_distractors=0,
                              num_junk=0, seed=PRETRAIN_SEED, gt_bbox_per_track=(0, 0),
                              partial_reid_ids=0, partial_ilids_ids=0),
}
#: The presets made for pretraining; every other preset is an evaluation preset.
PRETRAIN_PRESETS: frozenset[str] = frozenset({"pretrain"})


@dataclass(frozen=True)
class PlannedImage:
    job: RenderJob
    split: str  # one of SPLIT_DIRS
    file_name: str


def plan(spec: SyntheticSpec) -> list[PlannedImage]:
    """Decide every image: identity, camera, viewpoint, split and file name."""
    if not 2 <= spec.num_cameras <= 6:
        raise ValueError("num_cameras must be in 2..6")
    rng = np.random.default_rng([spec.seed, STREAM_PLAN])
    n_people = spec.num_train_ids + spec.num_test_ids + spec.num_distractors
    people = [sample_identity(np.random.default_rng([spec.seed, STREAM_IDENTITY, k]))
              for k in range(n_people)]
    frames = [0] * spec.num_cameras  # running frame number per camera, for unique names
    out: list[PlannedImage] = []
    track = 0

    def add(person: int, pid: int, cam: int, view: str, split: str, kind: str = "person") -> None:
        frames[cam] += int(rng.integers(10, 200))
        det = int(rng.integers(0, 8))
        name = f"{pid:04d}" if pid >= 0 else "-1"
        file_name = f"{name}_c{cam + 1}s1_{frames[cam]:06d}_{det:02d}.jpg"
        out.append(PlannedImage(RenderJob(len(out), people[person], cam, view, track, kind),
                                split, file_name))

    def tracks(person: int) -> Iterator[tuple[int, str, int]]:
        """(camera, view, number of images) for each camera that sees ``person``."""
        lo, hi = spec.cams_per_id
        n_cams = int(rng.integers(lo, min(hi, spec.num_cameras) + 1))
        for cam in sorted(rng.choice(spec.num_cameras, n_cams, replace=False).tolist()):
            view = VIEWS[int(rng.integers(0, len(VIEWS)))]
            yield cam, view, int(rng.integers(spec.images_per_track[0], spec.images_per_track[1] + 1))

    for k in range(spec.num_train_ids):
        for cam, view, n in tracks(k):
            for _ in range(n):
                add(k, k + 1, cam, view, "bounding_box_train")
            track += 1
    for j in range(spec.num_test_ids):
        person, pid = spec.num_train_ids + j, spec.num_train_ids + j + 1
        cam_tracks = list(tracks(person))
        # Queries: one image from each of some cameras, never from all of them, so each query
        # keeps a true match in another camera.
        n_q = int(rng.integers(spec.queries_per_id[0],
                               min(spec.queries_per_id[1], len(cam_tracks) - 1) + 1))
        query_cams = set(rng.choice(len(cam_tracks), n_q, replace=False).tolist())
        for t, (cam, view, n) in enumerate(cam_tracks):
            for i in range(n):
                add(person, pid, cam, view, "query" if (t in query_cams and i == 0)
                    else "bounding_box_test")
            track += 1
    first_distractor = spec.num_train_ids + spec.num_test_ids
    for d in range(spec.num_distractors):
        add(first_distractor + d, 0, int(rng.integers(0, spec.num_cameras)),
            VIEWS[int(rng.integers(0, len(VIEWS)))], "bounding_box_test")
        track += 1
    for _ in range(spec.num_junk):
        person = int(rng.integers(spec.num_train_ids, n_people))  # test people and distractors
        add(person, -1, int(rng.integers(0, spec.num_cameras)),
            VIEWS[int(rng.integers(0, len(VIEWS)))], "bounding_box_test",
            kind=JUNK_KINDS[int(rng.integers(0, len(JUNK_KINDS)))])
        track += 1
    return out


# ---------------------------------------------------------------------------------------------
# Format 2: gt_bbox/ and the partial sets, planned from the original plan, never changing it
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExtraImage:
    """One render of the format-2 sets. ``full``: where the whole render is written; ``crop``:
    where its crop to the visible person is written (paths relative to the dataset directory;
    either may be None)."""

    job: RenderJob
    full: str | None
    crop: str | None


def _test_tracks(base: list[PlannedImage]) -> dict[tuple[int, int], RenderJob]:
    """The first job of every (test pid, camera) track, in plan order (distractors and junk
    excluded): it carries the track's identity, view and track number."""
    tracks: dict[tuple[int, int], RenderJob] = {}
    for it in base:
        if it.split == "bounding_box_train" or it.job.kind != "person":
            continue
        pid = int(it.file_name.split("_", 1)[0])
        if pid > 0:
            tracks.setdefault((pid, it.job.camera), it.job)
    return tracks


def plan_gt_bbox(spec: SyntheticSpec, base: list[PlannedImage]) -> list[ExtraImage]:
    """New hand-drawn boxes: ``gt_bbox_per_track`` per test track, in that track's scene.

    Frame numbers continue after the last frame each camera uses in the original plan, so the
    names never collide with the query copies (or any other original image).
    """
    lo, hi = spec.gt_bbox_per_track
    if not 0 <= lo <= hi:
        raise ValueError(f"gt_bbox_per_track must be (min, max) with 0 <= min <= max, "
                         f"got {spec.gt_bbox_per_track}")
    if hi == 0:
        return []
    rng = np.random.default_rng([spec.seed, STREAM_GT_BBOX_PLAN])
    frames = [0] * spec.num_cameras
    for it in base:  # file names: <pid>_c<cam>s1_<frame>_<det>.jpg
        frames[it.job.camera] = max(frames[it.job.camera], int(it.file_name.split("_")[2]))
    out: list[ExtraImage] = []
    for (pid, cam), first in _test_tracks(base).items():
        for _ in range(int(rng.integers(lo, hi + 1))):
            frames[cam] += int(rng.integers(10, 200))
            name = f"{pid:04d}_c{cam + 1}s1_{frames[cam]:06d}_00.jpg"
            job = RenderJob(len(out), first.identity, cam, first.view, first.track, "person",
                            stream=STREAM_GT_BBOX_IMAGE)
            out.append(ExtraImage(job, f"{GT_BBOX_DIR}/{name}", None))
    return out


def _partial_people(spec: SyntheticSpec, base: list[PlannedImage], n: int,
                    rng: np.random.Generator) -> list[tuple[int, RenderJob]]:
    """``n`` (capped) test identities drawn by ``rng``, ascending pid: (pid, a job of theirs)."""
    by_pid: dict[int, RenderJob] = {}
    for (pid, _), job in _test_tracks(base).items():
        by_pid.setdefault(pid, job)
    pids = sorted(by_pid)
    n = min(n, len(pids))
    chosen = sorted(int(p) for p in rng.choice(pids, n, replace=False)) if n else []
    return [(pid, by_pid[pid]) for pid in chosen]


def _partial_kind(rng: np.random.Generator) -> str:
    # Lower-body occlusion dominates in the real sets (cars, counters, luggage); side second.
    return PARTIAL_KINDS[0] if rng.random() < 0.7 else PARTIAL_KINDS[1]


def plan_partial_reid(spec: SyntheticSpec, base: list[PlannedImage]) -> list[ExtraImage]:
    """The Partial-REID-style set: per identity, ``partial_reid_shots`` occluded renders in one
    camera (written whole to ``occluded_body_images`` and cropped to ``partial_body_images``)
    and as many unoccluded renders in another camera (``whole_body_images``)."""
    if spec.partial_reid_ids < 0 or spec.partial_reid_shots < 0:
        raise ValueError("partial_reid_ids and partial_reid_shots must be >= 0")
    if spec.partial_reid_shots == 0:
        return []
    rng = np.random.default_rng([spec.seed, STREAM_PREID_PLAN])
    d = PARTIAL_REID_DIR
    out: list[ExtraImage] = []
    for k, (pid, person) in enumerate(_partial_people(spec, base, spec.partial_reid_ids, rng)):
        probe_cam, gallery_cam = (int(c) for c in rng.choice(spec.num_cameras, 2, replace=False))
        for j in range(spec.partial_reid_shots):
            name = f"{pid:03d}_{j + 1:02d}.jpg"
            job = RenderJob(len(out), person.identity, probe_cam,
                            VIEWS[int(rng.integers(0, len(VIEWS)))], 2 * k, _partial_kind(rng),
                            stream=STREAM_PREID_IMAGE, track_stream=STREAM_PREID_TRACK)
            out.append(ExtraImage(job, f"{d}/{PARTIAL_REID_OCCLUDED}/{name}",
                                  f"{d}/{PARTIAL_REID_PROBE}/{name}"))
        for j in range(spec.partial_reid_shots):
            name = f"{pid:03d}_{j + 1:02d}.jpg"
            job = RenderJob(len(out), person.identity, gallery_cam,
                            VIEWS[int(rng.integers(0, len(VIEWS)))], 2 * k + 1, CLEAN_KIND,
                            stream=STREAM_PREID_IMAGE, track_stream=STREAM_PREID_TRACK)
            out.append(ExtraImage(job, f"{d}/{PARTIAL_REID_GALLERY}/{name}", None))
    return out


def plan_partial_ilids(spec: SyntheticSpec, base: list[PlannedImage]) -> list[ExtraImage]:
    """The Partial-iLIDS-style set: per identity one occluded render, cropped to the visible
    body (``Probe``), and one unoccluded render in another camera (``Gallery``)."""
    if spec.partial_ilids_ids < 0:
        raise ValueError("partial_ilids_ids must be >= 0")
    rng = np.random.default_rng([spec.seed, STREAM_PILIDS_PLAN])
    d = PARTIAL_ILIDS_DIR
    out: list[ExtraImage] = []
    for k, (pid, person) in enumerate(_partial_people(spec, base, spec.partial_ilids_ids, rng)):
        probe_cam, gallery_cam = (int(c) for c in rng.choice(spec.num_cameras, 2, replace=False))
        name = f"{pid:03d}.jpg"
        probe = RenderJob(len(out), person.identity, probe_cam,
                          VIEWS[int(rng.integers(0, len(VIEWS)))], 2 * k, _partial_kind(rng),
                          stream=STREAM_PILIDS_IMAGE, track_stream=STREAM_PILIDS_TRACK)
        out.append(ExtraImage(probe, None, f"{d}/{PARTIAL_ILIDS_PROBE}/{name}"))
        whole = RenderJob(len(out), person.identity, gallery_cam,
                          VIEWS[int(rng.integers(0, len(VIEWS)))], 2 * k + 1, CLEAN_KIND,
                          stream=STREAM_PILIDS_IMAGE, track_stream=STREAM_PILIDS_TRACK)
        out.append(ExtraImage(whole, f"{d}/{PARTIAL_ILIDS_GALLERY}/{name}", None))
    return out


def plan_extras(spec: SyntheticSpec, base: list[PlannedImage]) -> list[ExtraImage]:
    """Every format-2 render (gt_bbox, Partial-REID, Partial-iLIDS), from the original plan."""
    return (plan_gt_bbox(spec, base) + plan_partial_reid(spec, base)
            + plan_partial_ilids(spec, base))


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _render_extra(args: tuple[ExtraImage, tuple[Camera, ...], int, int, int]):
    """Worker: render one format-2 image; return (whole JPEG or None, crop JPEG or None)."""
    item, cameras, seed, height, width = args
    r = render_image(item.job, cameras, seed, height, width)
    return (_jpeg(r.image) if item.full else None,
            _jpeg(crop_to_visible(r.image, r.mask)) if item.crop else None)


def _render_and_encode(args: tuple[PlannedImage, tuple[Camera, ...], int, int, int]):
    """Worker: render one image; return JPEG bytes, PNG mask bytes and keypoints."""
    item, cameras, seed, height, width = args
    r = render_image(item.job, cameras, seed, height, width)
    jpg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(r.image).save(jpg, format="JPEG", quality=90)
    Image.fromarray(r.mask, mode="L").save(png, format="PNG")
    return jpg.getvalue(), png.getvalue(), np.round(r.keypoints, 2).tolist()


def _write_dataset(spec: SyntheticSpec, target: Path, progress: bool, workers: int) -> dict:
    items = plan(spec)
    extras = plan_extras(spec, items)
    cameras = sample_cameras(spec.seed, spec.num_cameras, spec.camera_strength)
    for split in SPLIT_DIRS:
        (target / split).mkdir(parents=True)
        MarketSidecars.mask_file(target, split, "x").parent.mkdir(parents=True)
    MarketSidecars.keypoint_file(target, SPLIT_DIRS[0]).parent.mkdir()
    keypoints: dict[str, dict[str, list]] = {s: {} for s in SPLIT_DIRS}
    jobs = [(it, cameras, spec.seed, spec.height, spec.width) for it in items]
    with ProcessPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        results = (pool.map(_render_and_encode, jobs, chunksize=16) if pool is not None
                   else map(_render_and_encode, jobs))
        for it, (jpg, png, kps) in _progress(zip(items, results), len(items), progress):
            (target / it.split / it.file_name).write_bytes(jpg)
            MarketSidecars.mask_file(target, it.split, it.file_name).write_bytes(png)
            keypoints[it.split][it.file_name] = kps
        for split in SPLIT_DIRS:
            MarketSidecars.keypoint_file(target, split).write_text(json.dumps(
                {"format": KEYPOINT_FORMAT, "keypoint_names": list(COCO_KEYPOINT_NAMES),
                 "images": keypoints[split]}))
        # Format 2, strictly after the original splits are complete.
        extra_counts = _write_extras(spec, target, items, extras, cameras, pool, progress)
    counts = {s: sum(1 for it in items if it.split == s) for s in SPLIT_DIRS}
    meta = {"format_version": FORMAT_VERSION, "digest": spec.digest(),
            "spec": dataclasses.asdict(spec), "counts": {**counts, **extra_counts}}
    atomic_write_json(target / "spec.json", meta)
    return meta


def _write_extras(spec: SyntheticSpec, target: Path, items: list[PlannedImage],
                  extras: list[ExtraImage], cameras: tuple[Camera, ...], pool,
                  progress: bool) -> dict[str, int]:
    """Write gt_bbox/ (query copies + new boxes) and the partial sets; return image counts per
    directory (relative paths)."""
    counts: dict[str, int] = {}
    if spec.gt_bbox_per_track[1] > 0:
        (target / GT_BBOX_DIR).mkdir()
        for it in items:  # the query takes part in its own pool, as in Market
            if it.split == "query":
                shutil.copyfile(target / "query" / it.file_name,
                                target / GT_BBOX_DIR / it.file_name)
                counts[GT_BBOX_DIR] = counts.get(GT_BBOX_DIR, 0) + 1
    for rel in sorted({str(Path(p).parent) for e in extras for p in (e.full, e.crop) if p}):
        (target / rel).mkdir(parents=True, exist_ok=True)
    jobs = [(e, cameras, spec.seed, spec.height, spec.width) for e in extras]
    results = (pool.map(_render_extra, jobs, chunksize=16) if pool is not None
               else map(_render_extra, jobs))
    for e, outputs in _progress(zip(extras, results), len(extras), progress and bool(extras),
                                "generating gt_bbox and partial sets"):
        for rel, data in zip((e.full, e.crop), outputs):
            if rel is not None:
                (target / rel).write_bytes(data)
                parent = str(Path(rel).parent)
                counts[parent] = counts.get(parent, 0) + 1
    return counts


def _progress(it, total: int, enabled: bool,
              description: str = "generating synthetic re-ID dataset"):
    if not enabled:
        yield from it
        return
    from rich.progress import track

    yield from track(it, total=total, description=description)


def default_cache_root() -> Path:
    """``$REID_BENCH_CACHE/synthetic``, else ``~/.cache/reid-attention-bench/synthetic``
    (:func:`reid_core.utils.cache.cache_base`)."""
    return cache_base() / "synthetic"


def generate_synthetic(cache_root: str | Path, spec: SyntheticSpec | str = "default", *,
                       progress: bool = True, workers: int | None = None) -> Path:
    """Generate (or reuse) a synthetic dataset; return its directory.

    The directory is ``cache_root/synthetic-<preset or "custom">-<hash of spec>/``. If it exists
    with a matching ``spec.json`` it is returned at once. Otherwise the dataset is written into
    a temporary sibling directory that is renamed into place only when complete, so an
    interrupted generation never leaves a partial dataset under the final name.

    Several processes may ask for the same dataset at once (parallel runs on an empty cache):
    generation holds the lock ``cache_root/.synthetic-<label>-<hash>.lock``, so one process
    generates and the others wait (saying so when ``progress``), then find it complete.
    Temporary directories are named ``.<final name>.<pid>.<random>.tmp``; only those of dead
    processes are removed as leftovers of killed generations.
    """
    label, spec = _resolve_spec(spec)
    cache_root = Path(cache_root).expanduser()
    final = cache_root / f"synthetic-{label}-{spec.digest()}"
    if _is_complete(final, spec):
        return final
    cache_root.mkdir(parents=True, exist_ok=True)
    with _generation_lock(cache_root, final.name, progress):
        if not _is_complete(final, spec):  # else: another process made it while we waited
            _generate_into(final, spec, progress, workers or min(2, os.cpu_count() or 1))
    return final


def _resolve_spec(spec: SyntheticSpec | str) -> tuple[str, SyntheticSpec]:
    """(label used in the directory name, spec) of a preset name or a custom spec."""
    if not isinstance(spec, str):
        return "custom", spec
    if spec not in PRESETS:
        raise KeyError(f"unknown synthetic preset {spec!r}; valid: {', '.join(PRESETS)}")
    return spec, PRESETS[spec]


def _generate_into(final: Path, spec: SyntheticSpec, progress: bool, workers: int) -> None:
    """Write the dataset into a fresh temporary sibling of ``final`` and rename it into place.

    Called with the generation lock held. Leftovers of killed generations are removed first;
    a temporary directory of a live process is left alone even so (a second line of defence
    should a lock ever be bypassed, e.g. by a file system without working locks).
    """
    remove_stale_temps(final.parent, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.{os.getpid()}.", suffix=".tmp",
                                dir=final.parent))
    try:
        _write_dataset(spec, tmp, progress, workers)
        if _is_complete(final, spec):  # only if the lock was bypassed: keep the first result
            shutil.rmtree(tmp)
            return
        if final.exists():  # a broken leftover under the final name (e.g. edited by hand)
            shutil.rmtree(final)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _generation_lock(cache_root: Path, name: str, progress: bool):
    """Hold ``cache_root/.<name>.lock`` for the duration (:func:`reid_core.utils.cache.generation_lock`:
    a process that finds it held says so and waits)."""
    return generation_lock(cache_root, name, progress)


def _is_complete(directory: Path, spec: SyntheticSpec) -> bool:
    try:
        meta = json.loads((directory / "spec.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("digest") == spec.digest() and meta.get("format_version") == FORMAT_VERSION


def _synthetic_meta(directory: Path) -> dict | None:
    """The ``spec.json`` of a generated synthetic dataset in ``directory``, or None if it has
    none that looks like one (digest and format fields)."""
    try:
        meta = json.loads((directory / "spec.json").read_text())
    except (OSError, ValueError):
        return None
    if isinstance(meta, dict) and "digest" in meta and "format_version" in meta:
        return meta
    return None


def resolve_synthetic_dir(root: str | Path, preset: str, name: str | None = None) -> Path:
    """The directory of ``preset`` for a loader's ``root`` (:func:`_locate`), checked to hold
    every image its ``spec.json`` says was generated.

    Raises:
        DatasetError: see :func:`_locate`; or images were deleted or added since generation
            (a synthetic run is identified by its generator parameters, so a damaged copy
            must not pass as the dataset).
    """
    directory = _locate(root, preset, name)
    _check_intact(directory, name or preset)
    return directory


def _check_intact(directory: Path, name: str) -> None:
    counts = (_synthetic_meta(directory) or {}).get("counts") or {}
    wrong = []
    for sub, expected in counts.items():
        found = (sum(1 for p in (directory / sub).iterdir() if p.suffix == ".jpg")
                 if (directory / sub).is_dir() else 0)
        if found != expected:
            wrong.append(f"{sub}: {found} images, {expected} generated")
    if wrong:
        raise DatasetError(f"{name}: the synthetic dataset at {directory} was changed after it "
                           f"was generated ({'; '.join(wrong)}); delete {directory} to have it "
                           f"regenerated")


def _locate(root: str | Path, preset: str, name: str | None = None) -> Path:
    """The directory of ``preset`` for a loader's ``root``: the cache root (the dataset is
    generated or reused under it) or the preset's own generated directory, used as it is.

    Run records store the generated directory as ``dataset.root``; treating it as a cache
    root again (``visualize`` does, when it reloads a run's data) would generate a second
    copy nested inside the first.

    Raises:
        DatasetError: ``root`` is a synthetic dataset directory of another preset (or another
            format version), or a damaged one (split directories but no ``spec.json``).
    """
    root = Path(root).expanduser()
    label, spec = _resolve_spec(preset)
    meta = _synthetic_meta(root)
    if meta is None:
        if (root / SPLIT_DIRS[0]).is_dir():
            raise DatasetError(
                f"{name or label}: {root} holds a dataset but no valid spec.json, so it is not "
                f"a synthetic dataset directory (a damaged one?) nor a cache root; pass the "
                f"cache root instead (default {default_cache_root()}), or delete {root} to "
                f"have it regenerated")
        return generate_synthetic(root, preset)
    if meta.get("digest") == spec.digest() and meta.get("format_version") == FORMAT_VERSION:
        return root
    raise DatasetError(
        f"{name or label}: {root} is the directory of another synthetic dataset (digest "
        f"{meta.get('digest')}, format {meta.get('format_version')}), not of the {label!r} "
        f"preset (digest {spec.digest()}, format {FORMAT_VERSION}); pass the cache root that "
        f"holds the synthetic-* directories (e.g. {root.parent}) or that preset's directory")


def _with_fingerprint(data: ReIDData, preset: str | SyntheticSpec) -> ReIDData:
    """A synthetic dataset is identified by its generator parameters (the cache digest), not
    by its JPEG bytes, which another Pillow may encode differently (``ReIDData.identity``)."""
    spec = PRESETS[preset] if isinstance(preset, str) else preset
    data.extras["fingerprint"] = f"synthetic-spec:{spec.digest()}"
    return data


def load_synthetic(cache_root: str | Path, spec: SyntheticSpec | str, name: str, *,
                   progress: bool = True) -> ReIDData:
    """A synthetic dataset (a preset's name or a custom spec), generated or reused under
    ``cache_root``, read as ``name`` (what its items and messages are called)."""
    directory = generate_synthetic(cache_root, spec, progress=progress)
    _check_intact(directory, name)
    return _with_fingerprint(read_market_style(directory, name), _resolve_spec(spec)[1])


def _loader(preset: str, name: str):
    def load(root: Path) -> ReIDData:
        return _with_fingerprint(read_market_style(resolve_synthetic_dir(root, preset, name),
                                                   name), preset)

    load.__doc__ = (f"The {preset!r} synthetic preset, generated (cached) under ``root``, or "
                    f"read from ``root`` if it is that preset's generated directory.")
    return load


def _partial_loader(preset: str, name: str, protocol: str):
    """Loader of a preset's partial set (``protocol``: ``"partial-reid"`` / ``"partial-ilids"``).

    ``root`` may also be the partial set's own directory inside the generated dataset (what
    the run record of such an evaluation stores as ``dataset.root``)."""
    subdir = PARTIAL_REID_DIR if protocol == "partial-reid" else PARTIAL_ILIDS_DIR

    def load(root: Path) -> ReIDData:
        root = Path(root).expanduser()
        if root.name == subdir and _synthetic_meta(root.parent) is not None:
            root = root.parent
        d = resolve_synthetic_dir(root, preset, name)
        if protocol == "partial-reid":
            return _with_fingerprint(read_partial_reid(d / PARTIAL_REID_DIR, name), preset)
        return _with_fingerprint(read_partial_ilids(d / PARTIAL_ILIDS_DIR, name,
                                                    dirs=(PARTIAL_ILIDS_PROBE,
                                                          PARTIAL_ILIDS_GALLERY)), preset)

    load.__doc__ = (f"The {protocol} set of the {preset!r} synthetic preset (test identities; "
                    f"empty train), generated (cached) under ``root``, or read from ``root`` if "
                    f"it is that preset's directory.")
    return load


def _cuhk03_classic_loader(preset: str, name: str):
    """Loader of a preset read under the classic CUHK03 protocol (``"cuhk03_classic"``).

    Training is the preset's ``bounding_box_train`` (so a run trains exactly as on the preset);
    query = gallery = every test image of a real identity (the preset's query and gallery
    images with pid > 0: no distractors, no junk, as CUHK03 has neither), which
    :func:`reid_core.metrics.cuhk03_classic.evaluate_cuhk03_classic_metrics` samples into
    single-shot galleries. A protocol view of the same images, not a ``cuhk-03.mat`` (the real
    reader, :mod:`reid_core.data.cuhk03_mat`, is tested on fixture files)."""

    def load(root: Path) -> ReIDData:
        base = read_market_style(resolve_synthetic_dir(root, preset, name), name)
        test = [item for item in base.query + base.gallery if item[1] > 0]
        extras = {**base.extras, "protocol": "cuhk03_classic"}
        extras.pop("gt_bbox", None)  # Market's multi-query boxes: not part of this protocol
        data = ReIDData(name, base.root, base.train, list(test), list(test), extras=extras)
        return _with_fingerprint(data, preset)

    load.__doc__ = (f"The {preset!r} synthetic preset under the classic CUHK03 protocol "
                    f"(query = gallery = its test images of real identities).")
    return load


for _preset, _prefix in (("default", "synthetic"), ("small", "synthetic-small"),
                         ("tiny", "synthetic-tiny")):
    register_dataset(_prefix)(_loader(_preset, _prefix))
    for _protocol in ("partial-reid", "partial-ilids"):
        _name = f"{_prefix}-{_protocol}"
        register_dataset(_name)(_partial_loader(_preset, _name, _protocol))
    register_dataset(f"{_prefix}-cuhk03-classic")(
        _cuhk03_classic_loader(_preset, f"{_prefix}-cuhk03-classic"))
del _preset, _prefix, _protocol, _name
# The pretraining corpus: a training set (and a small held-out check), no partial sets.
register_dataset("synthetic-pretrain")(_loader("pretrain", "synthetic-pretrain"))
