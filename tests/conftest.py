"""Shared fixtures: a tiny synthetic dataset generated once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory):
    """Cache root holding the generated ``synthetic-tiny`` dataset."""
    from reid_core.data import build_dataset

    root = tmp_path_factory.mktemp("synthetic-cache")
    build_dataset("synthetic-tiny", root)  # generate once
    return root
