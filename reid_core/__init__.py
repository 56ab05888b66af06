"""reid_core: the shared library of reid-attention-bench.

Layers, lowest first (a layer never imports a higher one):

    utils -> data -> models -> losses -> engine -> metrics -> results -> experiment / cli

``experiment`` glues the layers into one run (train, evaluate, record); ``cli`` exposes it.
"""

__version__ = "0.1.0"
