"""The names of the test features a model can return: the one list of them.

A test feature's name is data: configs select it (``eval.features``), records key their metrics
by it and reports print it, so every name is declared here, with what it is, before a config
may ask for it. The suite's heads' names are listed below; a head added in its own file
declares a new name with :func:`register_test_feature` next to its class.
"""

from __future__ import annotations

#: name -> what it is (the head that returns it).
TEST_FEATURE_DOCS: dict[str, str] = {
    "before_bn": "BNNeck: the globally pooled feature, before the BNNeck's BatchNorm",
    "after_bn": "BNNeck: the same feature after the BNNeck's BatchNorm",
    "parts_pooled": "PCB: the P pooled stripes, each L2-normalised, concatenated (official test feature)",
    "parts_reduced": "PCB: the P reduced part features (after 1x1 conv, BN, ReLU), each L2-normalised",
    "sag": "SAG: the attended, pooled and L2-normalised vector before the ClassBlock",
}

_CORE_FEATURES = frozenset(TEST_FEATURE_DOCS)


def register_test_feature(name: str, doc: str) -> str:
    """Declare test feature ``name`` (what it is: ``doc``); returns ``name``.

    Raises:
        KeyError: ``name`` is declared already with another meaning.
    """
    if TEST_FEATURE_DOCS.get(name, doc) != doc:
        raise KeyError(f"test feature {name!r} is declared already: {TEST_FEATURE_DOCS[name]}")
    TEST_FEATURE_DOCS[name] = doc
    return name


def unregister_test_feature(name: str) -> None:
    """Remove a name declared with :func:`register_test_feature` (a plug-in's, for one test)."""
    if name in _CORE_FEATURES:
        raise KeyError(f"test feature {name!r} belongs to the suite's heads")
    TEST_FEATURE_DOCS.pop(name)


def declared_features() -> tuple[str, ...]:
    """Every declared test feature name, in declaration order."""
    return tuple(TEST_FEATURE_DOCS)
