"""``pretrain``: make (or find) the synthetic-pretrained trunk that ``model.pretrained:
synthetic`` loads, and say what it is (``reid_core.app.pretrain``)."""

from __future__ import annotations

import argparse

from rich.console import Console

from reid_core.cli import options

NAME = "pretrain"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        NAME, help="make the synthetic-pretrained trunk (model.pretrained: synthetic)",
        description="Pretrain a backbone on the synthetic pretraining corpus (1,000 identities "
                    "disjoint from every evaluation preset), or reuse the cached trunk; print "
                    "its file and what it is. Runs with model.pretrained: synthetic do this "
                    "themselves on first use.")
    p.add_argument("--backbone", default="resnet18", help="model.backbone (default resnet18)")
    options.add_device(p)
    return p


def run(args: argparse.Namespace, console: Console) -> int:
    import copy

    from reid_core.app.pretrain import SOURCE, read_trunk_meta
    from reid_core.models import BACKBONES

    BACKBONES.get(args.backbone)  # an unknown name lists the valid ones
    source = copy.copy(SOURCE)  # the registered specification, with this console and device
    source.console, source.device = console, args.device
    path = source.weights_file("synthetic", args.backbone)
    meta = read_trunk_meta(path) or {}
    console.print(str(path), highlight=False, soft_wrap=True)
    console.print(source.describe("synthetic", args.backbone), highlight=False, soft_wrap=True)
    held = meta.get("held_out") or {}
    if held:
        console.print(f"held-out corpus identities ({meta['corpus'].get('held_out_ids')}): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in held.items())
                      + f"; made in {meta.get('wall_time_s', 0):.0f} s on "
                      f"{meta.get('device', {}).get('type', '?')}", highlight=False)
    return 0
