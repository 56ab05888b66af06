"""``model.pretrained``: ImageNet initialisation of a torchvision network, strictly, and the
named sources of local weights files.

``model.pretrained`` is ``None`` (random init), ``"imagenet"`` (torchvision's weights API), the
name of a registered :class:`PretrainedSource` (e.g. ``"synthetic"``: a trunk pretrained on
the synthetic pretraining corpus, generated on first use), or a path to a local state dict.
A source only turns its name into a file; the file is then loaded like any local file. The
sources are registered by the layer that can make their files (the synthetic trunks need the
trainer: :mod:`reid_core.app.pretrain`), so this layer never imports a higher one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import WeightsEnum

from reid_core.models.weights import load_state_strict, read_state_file
from reid_core.utils.registry import Registry

StateDict = dict[str, torch.Tensor]


class PretrainedSource:
    """Named weights: ``model.pretrained: <name>`` resolves to a local state-dict file of the
    model's backbone (torchvision's keys; a classifier, if any, is dropped on loading).

    Every method gets the name it was asked by (one source may be registered under several,
    e.g. ``synthetic`` and ``synthetic-resnet18``) and the backbone's registry name.
    """

    def check(self, name: str, backbone: str) -> None:
        """Raise :class:`~reid_core.config.ConfigError` if ``name`` cannot give weights for ``backbone``
        (cheap: called before any data is read)."""

    def weights_file(self, name: str, backbone: str) -> Path:
        """The weights file, made on first use (may take minutes, with progress)."""
        raise NotImplementedError

    def identity(self, name: str, backbone: str) -> str:
        """What the weights are, for run ids, without making them."""
        raise NotImplementedError

    def describe(self, name: str, backbone: str) -> str:
        """One sentence for records and reports ("initialised from ..."); may make the file."""
        raise NotImplementedError


PRETRAINED_SOURCES: Registry[PretrainedSource] = Registry("pretrained weights source")


def register_pretrained_source(name: str) -> Callable[[PretrainedSource], PretrainedSource]:
    """Register ``source`` as ``model.pretrained: name``."""
    if name == "imagenet":
        raise KeyError("model.pretrained: 'imagenet' is torchvision's weights, not a source name")
    return PRETRAINED_SOURCES.register(name)


def pretrained_source(pretrained: str | None) -> PretrainedSource | None:
    """The registered source named ``pretrained``, or None (random init, ImageNet, a file)."""
    if pretrained is None or pretrained not in PRETRAINED_SOURCES:
        return None
    return PRETRAINED_SOURCES.get(pretrained)


def resolve_pretrained(pretrained: str | None, backbone: str) -> str | None:
    """``model.pretrained`` as a backbone builder takes it: ``None``, ``"imagenet"`` or a file
    path; a source's name becomes its file (made on first use)."""
    source = pretrained_source(pretrained)
    if source is None:
        return pretrained
    assert pretrained is not None
    source.check(pretrained, backbone)
    return str(source.weights_file(pretrained, backbone))


def check_pretrained_name(pretrained: str | None, backbone: str) -> None:
    """Fail early (``ConfigError``, :class:`FileNotFoundError`) when ``model.pretrained``
    is neither random init, ImageNet, a usable source name nor an existing file."""
    if pretrained in (None, "imagenet"):
        return
    assert pretrained is not None
    source = pretrained_source(pretrained)
    if source is not None:
        source.check(pretrained, backbone)
        return
    path = Path(pretrained).expanduser()
    if not path.is_file():
        names = ", ".join(["imagenet", *PRETRAINED_SOURCES.names()])
        raise FileNotFoundError(f"model.pretrained: no weights file at {path}"
                                + (" (a directory)" if path.is_dir() else "")
                                + f"; named weights: {names}")


__all__ = ["PRETRAINED_SOURCES", "PretrainedSource", "StateDict",
           "check_pretrained_name", "load_pretrained", "pretrained_source",
           "register_pretrained_source", "resolve_pretrained"]


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
