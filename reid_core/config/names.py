"""The names of the test features a model can return: the one list of them.

A test feature's name is data: configs select it (``eval.features``), records key their metrics
by it and reports print it, so it is declared here once and the heads in
``reid_core.models.heads`` use these names. A new head with a new kind of test feature adds its
name here (with what it is).
"""

from __future__ import annotations

#: name -> what it is (the head that returns it).
TEST_FEATURE_DOCS: dict[str, str] = {
    "before_bn": "BNNeck: the globally pooled feature, before the BNNeck's BatchNorm",
    "after_bn": "BNNeck: the same feature after the BNNeck's BatchNorm",
    "parts_pooled": "PCB: the P pooled stripes, each L2-normalised, concatenated (official test feature)",
    "parts_reduced": "PCB: the P reduced part features (after 1x1 conv, BN, ReLU), each L2-normalised",
}

TEST_FEATURES: tuple[str, ...] = tuple(TEST_FEATURE_DOCS)
