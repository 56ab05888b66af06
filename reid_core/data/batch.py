"""The keys of a sample / batch dict: what :class:`~reid_core.data.image_dataset.ImageDataset`
returns and what every batch consumer (trainer, feature extraction, loss terms, models) reads.

A sample is a ``dict[str, Any]``; ``torch.utils.data.default_collate`` stacks a list of them
into a batch with the same keys (nested dicts such as :data:`VIEWS` are stacked per key).
Shapes are given for a batch of ``B``; a single sample has the same shapes without ``B``.

Always present:

* :data:`IMG`: ``(B, 3, H, W)`` float32, the augmented, normalised image.
* :data:`PID`: ``(B,)`` int64 person id (train: the relabelled ``0..N-1``).
* :data:`CAMID`: ``(B,)`` int64 0-based camera id.

Only when the dataset is asked for them (``ImageDataset(..., sidecars=..., views=...)``):

* :data:`MASK`: ``(B, 1, H, W)`` float32 in {0, 1}, 1 = person, aligned with :data:`IMG`
  (padding and randomly erased rectangles are 0: not person).
* :data:`KEYPOINTS`: ``(B, 17, 3)`` float32 COCO-17 ``(x, y, v)`` in pixels of :data:`IMG`,
  torchvision's convention (integer coordinates = pixel centres); ``v`` is COCO visibility
  (0 = not labelled or outside the image, 1 = labelled but occluded, 2 = visible). See
  :mod:`reid_core.data.keypoints` (and :func:`~reid_core.data.keypoints.keypoint_heatmaps`
  for Gaussian heatmaps made from them).
* :data:`VIEWS`: ``{name: (B, 3, h, w)}`` the same augmented image at other resolutions
  (SAG's second resolution through a shared trunk).
"""

from __future__ import annotations

from typing import Any, Final

IMG: Final = "img"
PID: Final = "pid"
CAMID: Final = "camid"
MASK: Final = "mask"
KEYPOINTS: Final = "keypoints"
VIEWS: Final = "views"

#: A sample or a collated batch.
Batch = dict[str, Any]

__all__ = ["Batch", "CAMID", "IMG", "KEYPOINTS", "MASK", "PID", "VIEWS"]
