"""A transform split into what is the same every epoch and what is drawn per sample.

Every recipe of :mod:`reid_core.data.transforms` is a torchvision ``Compose`` that starts with
geometric operations on the PIL image (resize; a random choice of resize or resize + random
crop; flip; pad; random crop), converts it to a normalised float tensor (``ToImage``,
``ToDtype``, ``Normalize``) and may end with random erasing. Run on a cached decoded image, it
repeats every epoch work whose result never changes -- the (antialiased) resizes and the
conversion -- and most of a sample's time at 64 x 32 is torchvision's per-call overhead of its
seven transforms. :func:`split_transform` splits such a transform in two, **without changing a
bit of its output or of its random draws**:

* :meth:`SplitTransform.prepare` ``(key, image)``: one resize of the original image (``key``
  names it, ``None`` = none) followed by the conversion, computed by the transform's own
  ``Resize`` / ``ToImage`` / ``ToDtype`` / ``Normalize`` objects. It is deterministic, so
  :class:`~reid_core.data.image_dataset.ImageDataset` (``cache_prepared=True``) computes it once
  per image and keeps it.
* :meth:`SplitTransform.__call__` ``(prepared)``: the rest, on the prepared tensor: every random
  draw in the order and number torchvision makes it (``RandomChoice``'s ``multinomial``, the
  ``torch.rand(1)`` of flip and erasing, the crop's and the erasing's ``make_params``) and every
  operation through the transform object's own ``transform`` method (torchvision's tensor
  kernels) -- torchvision's ``forward`` for one input, without its per-call pytree overhead.

Why it is exact: the conversion is elementwise (``uint8 -> float32 * 1/255``, then ``(x -
mean_c) / std_c``: per pixel, each an IEEE-rounded operation that does not depend on where the
pixel is), and flips, crops and padding only move or select pixels. So converting first and
moving pixels afterwards gives the same floats in the same places; a padded pixel gets the
converted fill colour (found by padding a 1 x 1 image with the transform's own ``Pad``). The
resizes, the only operations that mix pixels, still run on the PIL image, exactly as before.
``tests/test_data_samples.py`` compares both paths byte for byte, with their RNG states, for
every recipe.

Anything else (a transform or container not named here -- subclasses included, they may do
more --, a resize after another geometric operation, padding modes other than ``constant``, a
random crop with its own padding, any operation but erasing after the conversion) is not split:
:func:`split_transform` returns ``None`` and the transform runs as it is. The draws mirror
torchvision's ``forward`` methods; should a torchvision release change them, the byte-for-byte
tests fail (they compare the random-number state after every sample too).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import v2 as T
from torchvision.transforms.v2 import functional as TF

from reid_core.data import transforms as recipes

#: ``prepared(key)`` -> the prepared tensor of the image being transformed.
Prepared = Callable[[Hashable], Tensor]

# Exact types throughout: a subclass may do more in its ``forward`` or ``transform``.
#: Elementwise per pixel: the conversion to a tensor.
_CONVERSION = (T.ToImage, T.ToDtype, T.Normalize)
#: Move or select pixels; applied with probability ``p`` (``torch.rand(1) >= p`` skips them,
#: as torchvision's ``_RandomApplyTransform.forward`` does).
_RANDOM_FLIPS = (T.RandomHorizontalFlip, T.RandomVerticalFlip, recipes.RandomHorizontalFlip)
#: After the conversion (on the tensor, as before); applied with probability ``p``.
_ERASING = (T.RandomErasing, recipes.RandomErasing)


class _Unsupported(Exception):
    """The transform has a part :func:`split_transform` cannot split exactly."""


class SplitTransform:
    """``transform(image)`` as ``split(prepared)``, where ``prepared(key)`` returns
    ``prepare(key, image)`` (typically from a cache); see the module docstring."""

    def __init__(self, steps: list[_Step], resizes: list[T.Transform],
                 conversion: list[T.Transform]) -> None:
        self._steps, self._resizes, self._conversion = steps, resizes, conversion

    def prepare(self, key: Hashable, image: Image.Image) -> Tensor:
        """The deterministic part: resize ``key`` of the original ``image``, then the
        transform's conversion to a (normalised) tensor."""
        x: Any = image if key is None else self._resizes[key](image)
        return _convert(self._conversion, x)

    def __call__(self, prepared: Prepared) -> Tensor:
        """The random part: a new tensor (never a view of a prepared one), laid out in memory
        as the unsplit transform lays it out (``ToImage`` makes a channels-last view of the PIL
        pixels, which every later operation keeps), so that no consumer sees a difference."""
        used: list[Tensor] = []

        def lookup(key: Hashable) -> Tensor:
            used.append(prepared(key))
            return used[-1]

        x: Tensor | None = None  # None: still the original image (not yet looked up)
        for step in self._steps:
            x = step.run(x, lookup)
        # The conversion step looks the image up if nothing else did: x is a tensor now.
        order = _dim_order(used[0])
        aliased = any(x.untyped_storage().data_ptr() == u.untyped_storage().data_ptr()
                      for u in used)
        if aliased or not x.permute(order).is_contiguous():
            inverse = sorted(range(len(order)), key=order.__getitem__)
            x = x.permute(order).clone(memory_format=torch.contiguous_format).permute(inverse)
        return x


def split_transform(transform: Callable | None) -> SplitTransform | None:
    """``transform`` split into a cacheable and a random part, or ``None`` when it has a part
    that cannot be split exactly (see the module docstring)."""
    if type(transform) is not T.Compose:
        return None
    nodes = list(transform.transforms)
    start = next((i for i, n in enumerate(nodes) if type(n) is T.ToImage), None)
    if start is None:
        return None
    end = start
    while end < len(nodes) and type(nodes[end]) in _CONVERSION:
        end += 1
    conversion = nodes[start:end]
    resizes: list[T.Transform] = []
    try:
        steps, _ = _compile(nodes[:start], True, resizes, conversion)
        steps.append(_Converted())
        for node in nodes[end:]:
            if type(node) not in _ERASING:
                raise _Unsupported(type(node).__name__)
            steps.append(_Apply(node, random_apply=True))
    except _Unsupported:
        return None
    return SplitTransform(steps, resizes, conversion)


# ---------------------------------------------------------------------------------------------
# The random part: steps that mirror torchvision's ``forward`` for a single tensor input
# ---------------------------------------------------------------------------------------------


class _Step:
    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        raise NotImplementedError


class _Sequence(_Step):
    def __init__(self, steps: list[_Step]) -> None:
        self.steps = steps

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        for step in self.steps:
            x = step.run(x, prepared)
        return x


class _Choice(_Step):
    """``T.RandomChoice.forward``: one multinomial draw picks the branch."""

    def __init__(self, p: Sequence[float], branches: list[_Step]) -> None:
        self.p, self.branches = list(p), branches

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        idx = int(torch.multinomial(torch.tensor(self.p), 1))
        return self.branches[idx].run(x, prepared)


class _Resize(_Step):
    """A resize of the original image: its prepared tensor (resized and converted)."""

    def __init__(self, key: int) -> None:
        self.key = key

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        assert x is None  # checked by _compile: a resize only ever sees the original image
        return prepared(self.key)


class _Apply(_Step):
    """``Transform.forward`` for one tensor: ``make_params([x])``, then ``transform(x,
    params)``; with ``random_apply`` first ``torch.rand(1) >= p`` skips it
    (``_RandomApplyTransform.forward``)."""

    def __init__(self, node: T.Transform, random_apply: bool) -> None:
        self.node, self.random_apply = node, random_apply

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        if self.random_apply and torch.rand(1) >= self.node.p:
            return x
        if x is None:
            x = prepared(None)
        return self.node.transform(x, self.node.make_params([x]))


class _Pad(_Step):
    """``T.Pad`` (constant mode) on the converted tensor, filled with the converted colour."""

    def __init__(self, node: T.Pad, fill: list[float]) -> None:
        self.padding, self.fill = node.padding, fill

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        if x is None:
            x = prepared(None)
        return TF.pad(x, padding=self.padding, fill=self.fill, padding_mode="constant")


class _Converted(_Step):
    """Where the transform converts the image: from here on it is a tensor in any case."""

    def run(self, x: Tensor | None, prepared: Prepared) -> Tensor | None:
        return prepared(None) if x is None else x


# ---------------------------------------------------------------------------------------------
# Compilation (the checks that make the split exact)
# ---------------------------------------------------------------------------------------------


def _compile(nodes: Sequence[Any], original: bool | None, resizes: list[T.Transform],
             conversion: list[T.Transform]) -> tuple[list[_Step], bool | None]:
    """Steps of the geometric operations ``nodes`` (before the conversion); ``original``: the
    image is certainly the original (True), certainly not (False), or either (None)."""
    steps = []
    for node in nodes:
        step, original = _compile_one(node, original, resizes, conversion)
        steps.append(step)
    return steps, original


def _compile_one(node: Any, original: bool | None, resizes: list[T.Transform],
                 conversion: list[T.Transform]) -> tuple[_Step, bool | None]:
    if type(node) is T.Compose:
        steps, original = _compile(node.transforms, original, resizes, conversion)
        return _Sequence(steps), original
    if type(node) is T.RandomChoice:
        branches, after = [], set()
        for branch in node.transforms:
            step, state = _compile_one(branch, original, resizes, conversion)
            branches.append(step)
            after.add(state)
        return _Choice(node.p, branches), after.pop() if len(after) == 1 else None
    if type(node) is T.Resize:
        if original is not True:
            raise _Unsupported("a resize after a geometric operation")
        resizes.append(node)
        return _Resize(len(resizes) - 1), False
    if type(node) is T.Pad:
        if node.padding_mode != "constant":
            raise _Unsupported(f"padding mode {node.padding_mode}")
        return _Pad(node, _converted_fill(node, conversion)), False
    if type(node) in _RANDOM_FLIPS:
        return _Apply(node, random_apply=True), False
    if type(node) is T.RandomCrop:
        if node.padding is not None or node.pad_if_needed:
            raise _Unsupported("a random crop with its own padding")
        return _Apply(node, random_apply=False), False
    raise _Unsupported(type(node).__name__)


def _dim_order(t: Tensor) -> list[int]:
    """The dimensions of a dense tensor from the outermost in memory to the innermost."""
    return sorted(range(t.dim()), key=lambda d: (-t.stride(d), d))


def _convert(conversion: Sequence[T.Transform], x: Any) -> Tensor:
    for node in conversion:
        x = node(x)
    return x.as_subclass(Tensor)


def _converted_fill(pad: T.Pad, conversion: Sequence[T.Transform]) -> list[float]:
    """The converted colour of the pixels ``pad`` adds to an RGB image: a 1 x 1 black and a
    1 x 1 white image padded by it agree exactly on the added pixels."""
    black = pad(Image.new("RGB", (1, 1), (0, 0, 0)))
    white = pad(Image.new("RGB", (1, 1), (255, 255, 255)))
    added = (TF.pil_to_tensor(black) == TF.pil_to_tensor(white)).all(dim=0).nonzero()
    if len(added) == 0:
        return [0.0]  # pads nothing
    y, x = added[0].tolist()
    return _convert(conversion, black)[:, y, x].tolist()
