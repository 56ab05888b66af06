"""ImageNet initialisation of a torchvision network, strictly (``model.pretrained``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from torchvision.models import WeightsEnum

from reid_core.models.weights import load_state_strict, read_state_file

StateDict = dict[str, torch.Tensor]


def load_pretrained(net: nn.Module, pretrained: str, weights: WeightsEnum, name: str, *,
                    drop_prefixes: Iterable[str],
                    remap: Callable[[StateDict], StateDict] | None = None) -> None:
    """Load ImageNet weights into the torchvision network ``net`` before it becomes a backbone.

    Args:
        pretrained: ``"imagenet"`` (torchvision's weights API, ``weights``; needs the file in
            torch's hub cache or a network) or a path to a local state dict.
        name: the backbone's name, for messages.
        drop_prefixes: the ImageNet classifier's keys (``fc.``, ``classifier.``): the only
            keys not loaded; every other key must match by name and shape.
        remap: renames keys of older files to the network's names (applied to both sources).

    Raises:
        FileNotFoundError: the weights cannot be fetched, or the local file is missing.
        WeightMismatchError: keys or shapes do not match.
    """
    if pretrained == "imagenet":
        try:
            state = weights.get_state_dict(progress=True)
        except Exception as e:  # no network and no cached file: a missing-file problem
            raise FileNotFoundError(
                f"could not fetch torchvision's ImageNet weights for {name} ({e}). Put the "
                f"file in torch's hub cache, or set model.pretrained to a local file path."
            ) from e
        source = f"torchvision {weights}"
    else:
        state, source = read_state_file(pretrained), str(pretrained)
    if remap is not None:
        state = remap(dict(state))
    load_state_strict(net, state, source, drop_prefixes=tuple(drop_prefixes))
