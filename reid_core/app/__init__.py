"""The application layer: what the command line and the reproduce scripts call.

* :mod:`~reid_core.app.experiment`: one run end to end (data -> model -> train -> evaluate ->
  record), the only place that constructs a run's collaborators;
* :mod:`~reid_core.app.reproduce`: one paper table, row by row;
* :mod:`~reid_core.app.inspect_run` / :mod:`~reid_core.app.cross_eval`: re-open a finished run;
* :mod:`~reid_core.app.regression`: the CI regression check against ``results/expected``.
"""
