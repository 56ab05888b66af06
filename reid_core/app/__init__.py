"""The application layer: what the command line and the reproduce scripts call.

* :mod:`~reid_core.app.training`: the one place that builds the trainer's collaborators
  (dataset, loader, objective, optimizer, scheduler, hooks) from a config;
* :mod:`~reid_core.app.pretrain`: the synthetic-pretrained trunks (``model.pretrained:
  synthetic``), made on first use and cached;
* :mod:`~reid_core.app.experiment`: one run end to end (data -> model -> train -> evaluate ->
  record);
* :mod:`~reid_core.app.tables`: table kinds (row runners and reports);
* :mod:`~reid_core.app.reproduce`: one paper table, row by row;
* :mod:`~reid_core.app.inspect_run` / :mod:`~reid_core.app.cross_eval`: re-open a finished run;
* :mod:`~reid_core.app.regression`: the CI regression check against ``results/expected``.
"""
