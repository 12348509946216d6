"""Endpoints: one process per endpoint serving one registered model version (docs/serving.md).

- :mod:`tallymark.serving.run` — the endpoint process (``python -m tallymark.serving``);
- :mod:`tallymark.serving.process` — starting it detached, waiting until it answers, stopping it;
- :mod:`tallymark.serving.http` — the small HTTP/1.1 server it answers on;
- :mod:`tallymark.serving.app` — the MLflow, Open Inference (V2) and ``/predict`` routes;
- :mod:`tallymark.serving.inputs` — request parsing and the feature-schema checks;
- :mod:`tallymark.serving.model` / :mod:`tallymark.serving.formats` — what is loaded, and how safely.

Nothing heavy is imported here: the SDK imports this package to deploy.
"""
