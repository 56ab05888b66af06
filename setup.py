"""The wheel's packages: every package under reid_core/ (found, so a new subpackage cannot be left
out) plus two data packages mapped onto the repository's top-level ``paper_tables/`` and
``configs/papers/``, so that they ship inside the wheel as ``reid_core/_shipped/...``
(``reid_core/resources.py`` finds them, in a checkout or installed).

Everything else is in pyproject.toml; this file only exists because a ``find`` directive there
cannot add mapped packages to the ones it finds.
"""

from setuptools import find_namespace_packages, setup

#: Data package -> the repository directory it ships (see reid_core/resources.py).
SHIPPED = {
    "reid_core._shipped.paper_tables": "paper_tables",
    "reid_core._shipped.configs.papers": "configs/papers",
}

setup(
    packages=[*find_namespace_packages(include=["reid_core", "reid_core.*"],
                                       exclude=["*.__pycache__"]),
              *SHIPPED],
    package_dir=SHIPPED,
)
