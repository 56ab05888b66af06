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


def pytest_report_header(config: pytest.Config) -> str:
    """Free disk space where the tests write, so a full-disk failure explains itself."""
    import shutil
    import tempfile

    where = tempfile.gettempdir()
    free_gb = shutil.disk_usage(where).free / 1e9
    return (f"free disk space under {where}: {free_gb:.1f} GB "
            f"(the default run needs about 2 GB at its peak)")
