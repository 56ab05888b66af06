"""COCO-17 person keypoints through torchvision v2 transforms, and Gaussian heatmaps of them.

A sample's keypoints travel through a transform pipeline as two tv_tensors:

* ``tv_tensors.KeyPoints`` ``(17, 2)`` ``(x, y)``: torchvision moves them with the image
  (resize, flip, pad, crop are its kernels; nothing here re-implements geometry);
* :class:`KeypointVisibility` ``(17,)`` COCO visibility: no torchvision kernel touches it (a
  custom tv_tensor passes through every transform unchanged); only
  :class:`reid_core.data.transforms.RandomErasing` lowers it (an erased rectangle is an
  occluder: visible points inside become 1, "labelled but not visible", as the synthetic
  renderer marks points behind its occluders).

A horizontal flip (:class:`reid_core.data.transforms.RandomHorizontalFlip`) also swaps the
left and right points (:data:`FLIP_INDEX`, :func:`swap_left_right`), so that channel ``k``
always means the same body part as a pose estimator would label it in the flipped image.

:func:`to_batch_keypoints` joins them into the batch's ``(17, 3)`` and sets ``v = 0`` for
points that left the image (a crop or translation pushed them out); their coordinates are
kept as transformed, not clamped, so a loss may still use where they went.

**Coordinate convention** (torchvision's): integer coordinates are pixel centres, the pixel
of a point ``(x, y)`` is ``(floor(x + 0.5), floor(y + 0.5))`` (:func:`pixel_of`) and a point
is inside an ``H x W`` image when that pixel is. A horizontal flip maps ``x`` to ``W - 1 - x``, exactly
the pixel the image's column goes to, so flips, pads, crops and erasing keep keypoints on
their pixels exactly. A resize scales by ``new / old`` (torchvision's ``x * r``), which puts a
point ``(r - 1) / 2`` px away from the centre of its resized pixel block (0.5 px for the 2x
resize of a 128 x 64 image to 256 x 128) -- below a heatmap's sigma, and torchvision's choice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision import tv_tensors

#: COCO-17 keypoint order (the order of the synthetic dataset's keypoint sidecars).
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
NUM_KEYPOINTS = len(COCO_KEYPOINT_NAMES)
#: ``FLIP_INDEX[k]``: the keypoint that takes the place of ``k`` in a mirrored person.
FLIP_INDEX: tuple[int, ...] = tuple(
    COCO_KEYPOINT_NAMES.index(n.replace("left_", "@").replace("right_", "left_")
                              .replace("@", "right_")) for n in COCO_KEYPOINT_NAMES)
#: COCO visibility values.
NOT_LABELLED, OCCLUDED, VISIBLE = 0, 1, 2


class KeypointVisibility(tv_tensors.TVTensor):
    """``(..., K)`` COCO visibility of the points of the sample's ``tv_tensors.KeyPoints``.

    A tv_tensor of its own so that v2 transforms pass it through untouched (no kernel is
    registered for it) and it is never taken for an image, as a plain tensor could be.
    """

    def __new__(cls, data: Any, *, dtype: torch.dtype | None = None,
                device: torch.device | str | int | None = None,
                requires_grad: bool | None = None) -> KeypointVisibility:
        tensor = cls._to_tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        return tensor.as_subclass(cls)


def to_tv_keypoints(keypoints: np.ndarray | Tensor, canvas_size: tuple[int, int]
                    ) -> tuple[tv_tensors.KeyPoints, KeypointVisibility]:
    """``(K, 3)`` ``(x, y, v)`` (torchvision's pixel convention) -> the two tv_tensors.

    Args:
        canvas_size: ``(H, W)`` of the image the points belong to.
    """
    kp = torch.as_tensor(keypoints, dtype=torch.float32)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"keypoints must have shape (K, 3) = (x, y, v), got {tuple(kp.shape)}")
    return (tv_tensors.KeyPoints(kp[:, :2].clone(), canvas_size=canvas_size),
            KeypointVisibility(kp[:, 2].clone()))


def swap_left_right(inpt: tv_tensors.KeyPoints | KeypointVisibility
                    ) -> tv_tensors.KeyPoints | KeypointVisibility:
    """Relabel COCO-17 points after a horizontal flip: the person's left wrist, mirrored, is
    where a right wrist is (pose estimators label a mirrored person so, and pose-training
    flips swap likewise). ``KeyPoints (..., 17, 2)`` or ``KeypointVisibility (..., 17)``."""
    dim = -2 if isinstance(inpt, tv_tensors.KeyPoints) else -1
    if inpt.shape[dim] != NUM_KEYPOINTS:
        raise ValueError(f"expected {NUM_KEYPOINTS} COCO keypoints to swap left and right, got "
                         f"shape {tuple(inpt.shape)}")
    index = torch.tensor(FLIP_INDEX, device=inpt.device)
    return tv_tensors.wrap(inpt.as_subclass(Tensor).index_select(dim, index), like=inpt)


def pixel_of(xy: Tensor) -> Tensor:
    """``(..., 2)`` float ``(x, y)`` -> ``(..., 2)`` int64 pixel ``(column, row)`` holding it."""
    return torch.floor(xy + 0.5).long()


def inside(xy: Tensor, canvas_size: tuple[int, int]) -> Tensor:
    """``(..., 2)`` -> ``(...,)`` bool: the point's pixel lies in a ``canvas_size`` image."""
    px = pixel_of(xy)
    h, w = canvas_size
    return (px[..., 0] >= 0) & (px[..., 0] < w) & (px[..., 1] >= 0) & (px[..., 1] < h)


def erase_visibility(points: tv_tensors.KeyPoints, visibility: Tensor, i: int, j: int, h: int,
                     w: int) -> KeypointVisibility:
    """Visibility after erasing rows ``i:i+h``, columns ``j:j+w``: visible points (2) whose
    pixel is in the rectangle become occluded (1); 0 and 1 stay."""
    px = pixel_of(points.as_subclass(Tensor))
    hit = (px[..., 0] >= j) & (px[..., 0] < j + w) & (px[..., 1] >= i) & (px[..., 1] < i + h)
    v = visibility.as_subclass(Tensor)
    return KeypointVisibility(torch.where(hit & (v > OCCLUDED), torch.full_like(v, OCCLUDED), v))


def to_batch_keypoints(points: tv_tensors.KeyPoints, visibility: Tensor) -> Tensor:
    """The transformed tv_tensors -> ``(K, 3)`` float32 ``(x, y, v)``, ``v = 0`` for points
    outside the transformed image (coordinates kept, not clamped)."""
    xy = points.as_subclass(Tensor).float()
    v = visibility.as_subclass(Tensor).float()
    v = torch.where(inside(xy, points.canvas_size), v, torch.zeros_like(v))
    return torch.cat([xy, v[..., None]], dim=-1)


def heatmap_size(image_size: tuple[int, int], stride: int) -> tuple[int, int]:
    """``ceil(H / stride), ceil(W / stride)``: the size of a ResNet feature map at ``stride``."""
    return math.ceil(image_size[0] / stride), math.ceil(image_size[1] / stride)


def keypoint_heatmaps(keypoints: Tensor, image_size: tuple[int, int], stride: int,
                      sigma: float, min_visibility: int = OCCLUDED) -> Tensor:
    """One unnormalised Gaussian per keypoint on a grid of the given output stride.

    Heatmap cell ``(u, v)`` covers image pixels ``[u*stride, (u+1)*stride)`` (columns), so its
    centre is pixel ``u*stride + (stride-1)/2`` -- the convention of downsampling the image by
    ``stride`` with ``align_corners=False``. A keypoint at pixel ``x`` peaks at cell
    ``(x - (stride-1)/2) / stride`` with value ``exp(-d^2 / (2 sigma^2))``, ``d`` in cells
    (1 when the point sits on a cell centre). Keypoints with ``v < min_visibility`` (default:
    unlabelled / outside the image) give an all-zero map; the default keeps occluded points
    (the body is behind the occluder), ``min_visibility=2`` keeps visible ones only.

    Args:
        keypoints: ``(..., K, 3)`` ``(x, y, v)`` in image pixels (e.g. a batch's ``(B, 17, 3)``).
        image_size: ``(H, W)`` of the image the keypoints are in.
        stride: image pixels per heatmap cell.
        sigma: Gaussian standard deviation in heatmap cells.

    Returns:
        ``(..., K, ceil(H/stride), ceil(W/stride))`` float32 on the keypoints' device.
    """
    if stride < 1 or sigma <= 0:
        raise ValueError(f"stride must be >= 1 and sigma > 0, got stride={stride}, sigma={sigma}")
    h, w = heatmap_size(image_size, stride)
    kp = keypoints.float()
    centre = (stride - 1) / 2
    cx = (kp[..., 0] - centre) / stride  # (..., K) in cells
    cy = (kp[..., 1] - centre) / stride
    xs = torch.arange(w, dtype=torch.float32, device=kp.device)
    ys = torch.arange(h, dtype=torch.float32, device=kp.device)
    # A 2-D isotropic Gaussian is the product of two 1-D ones: (K, h) x (K, w), no (K, h, w) of
    # squared distances.
    gx = torch.exp(-(xs - cx[..., None]) ** 2 / (2 * sigma ** 2))
    gy = torch.exp(-(ys - cy[..., None]) ** 2 / (2 * sigma ** 2))
    keep = (kp[..., 2] >= min_visibility).float()
    return gy[..., :, None] * gx[..., None, :] * keep[..., None, None]


__all__ = ["COCO_KEYPOINT_NAMES", "FLIP_INDEX", "KeypointVisibility", "NOT_LABELLED",
           "NUM_KEYPOINTS", "OCCLUDED", "VISIBLE", "erase_visibility", "heatmap_size", "inside",
           "keypoint_heatmaps", "pixel_of", "swap_left_right", "to_batch_keypoints",
           "to_tv_keypoints"]
