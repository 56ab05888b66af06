"""Where the data that ships with the package lives: the paper tables and the paper configs.

The repository keeps them at its top level (``paper_tables/``, ``configs/papers/``: the layout
is fixed). ``pyproject.toml`` maps them into the wheel as the data packages
``reid_core._shipped.paper_tables`` and ``reid_core._shipped.configs.papers`` (setuptools
``package-dir``), so an installed package holds the same tree under ``reid_core/_shipped/``::

    checkout (source, PYTHONPATH or editable install)   installed wheel
    <repo>/paper_tables/*.yaml                           reid_core/_shipped/paper_tables/*.yaml
    <repo>/configs/papers/*.yaml                         reid_core/_shipped/configs/papers/*.yaml

:func:`data_root` is the one place that chooses between them: the checkout whenever this module
runs from one (so edits to the repository's files take effect at once, with or without an
editable install), the installed copy otherwise. Utils layer: imports nothing of ``reid_core``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Final

__all__ = [
    "PAPER_CONFIGS",
    "PAPER_TABLES",
    "SHIPPED",
    "checkout_root",
    "data_root",
    "default_results_dir",
    "paper_configs_dir",
    "paper_tables_dir",
]

#: The shipped directories, relative to the repository root and to :data:`SHIPPED` alike.
PAPER_TABLES: Final[str] = "paper_tables"
PAPER_CONFIGS: Final[str] = "configs/papers"
#: Folder of the installed package that holds the shipped directories (see pyproject.toml).
SHIPPED: Final[str] = "_shipped"

_PACKAGE_DIR: Final[Path] = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository checkout this package is imported from, or None for an installed copy.

    A checkout is recognised by its ``pyproject.toml`` next to the package and the shipped
    directories in place; an installed package sits in ``site-packages``, which has neither.
    """
    root = _PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and all(
            (root / sub).is_dir() for sub in (PAPER_TABLES, PAPER_CONFIGS)):
        return root
    return None


def data_root() -> Path:
    """The directory holding ``paper_tables/`` and ``configs/papers/``: the checkout if this is
    one, else the package's installed ``_shipped/`` folder."""
    root = checkout_root()
    if root is not None:
        return root
    shipped = importlib.resources.files("reid_core").joinpath(SHIPPED)
    # pip unpacks wheels, so the package data is a real directory; a zipped install (zipimport)
    # gives a Traversable that is no Path: report its location, and loading fails naming it.
    return shipped if isinstance(shipped, Path) else Path(str(shipped))


def paper_tables_dir() -> Path:
    """``paper_tables/``: one YAML file per published table."""
    return data_root() / PAPER_TABLES


def paper_configs_dir() -> Path:
    """``configs/papers/``: one YAML file of profiles and row variants per paper."""
    return data_root() / PAPER_CONFIGS


def default_results_dir() -> Path:
    """Default results root of the reproduce commands: the checkout's ``results/`` (where the
    committed records are), or ``./results`` for an installed package (never site-packages)."""
    root = checkout_root()
    return root / "results" if root is not None else Path.cwd() / "results"
