"""The read side: ``API`` and ``APIExperiment`` (shapes as in Comet's REST API, camelCase keys).

>>> api = API()                                                     # doctest: +SKIP
>>> best = api.query("demo", "fraud-detection", "metrics.test_auc_pr > 0.8")   # doctest: +SKIP
>>> best[0].get_metrics("validation_auc")[:2]                       # doctest: +SKIP
[{'metricName': 'validation_auc', 'metricValue': 0.91, 'step': 0, 'epoch': None, 'timestamp': ...}]
"""

from __future__ import annotations

from typing import Any

from tallymark import jsonvalue
from tallymark.sdk.transport import default_transport
from tallymark.settings import ClientSettings


class APIExperiment:
    """A stored experiment, read through the transport."""

    def __init__(self, transport: Any, info: dict[str, Any]) -> None:
        self._t = transport
        self._info = info
        self.key: str = info["key"]
        self.name: str | None = info.get("name")
        self.url: str | None = info.get("url")
        self.workspace: str = info.get("workspace", "")
        self.project_name: str = info.get("project", "")
        self.status: str | None = info.get("status")

    def __repr__(self) -> str:
        return f"<APIExperiment {self.workspace}/{self.project_name}/{self.key} {self.name or ''}>"

    def to_dict(self) -> dict[str, Any]:
        return dict(self._info)

    def get_parameters_summary(self) -> list[dict[str, Any]]:
        return self._t.read("params", key=self.key)

    def get_others_summary(self) -> list[dict[str, Any]]:
        return self._t.read("others", key=self.key)

    def get_tags(self) -> list[str]:
        return self._t.read("tags", key=self.key)

    def get_metrics_summary(self) -> list[dict[str, Any]]:
        return self._t.read("metrics_summary", key=self.key)

    def get_metric_series(self, name: str, points: int | None = None) -> dict[str, Any]:
        """One metric as columns: ``{"name", "count", "steps", "values", "timestamps", "epochs"}``;
        with ``points``, downsampled (LTTB) to at most that many. Faster than get_metrics()."""
        return jsonvalue.restore_series(self._t.read("metric", key=self.key, name=name, points=points))

    def get_metrics(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every point of one metric (or of all metrics), ordered by step."""
        names = [name] if name is not None else [m["name"] for m in self.get_metrics_summary()]
        out: list[dict[str, Any]] = []
        for n in names:
            s = self.get_metric_series(n)
            out.extend(
                {"metricName": n, "metricValue": v, "step": st, "epoch": ep, "timestamp": ts}
                for v, st, ep, ts in zip(s["values"], s["steps"], s["epochs"], s["timestamps"], strict=True)
            )
        if name is None:
            out.sort(key=lambda p: p["step"])
        return out

    def get_asset_list(self) -> list[dict[str, Any]]:
        return self._t.read("assets", key=self.key)

    def get_asset(self, asset_id: int) -> bytes:
        return self._t.asset_bytes(self.key, asset_id)

    def _items(self, kind: str) -> list[dict[str, Any]]:
        return self._t.read("items", key=self.key, kind=kind)

    def get_curves(self) -> list[dict[str, Any]]:
        return [
            {
                "name": i["name"],
                "step": i["step"],
                "x": jsonvalue.decode_tagged(i["data"]["x"]),
                "y": jsonvalue.decode_tagged(i["data"]["y"]),
            }
            for i in self._items("curve")
        ]

    def get_confusion_matrices(self) -> list[dict[str, Any]]:
        return [
            {
                "title": i["data"]["title"],
                "name": i["name"],
                "step": i["step"],
                "matrix": i["data"]["matrix"],
                "labels": i["data"]["labels"],
            }
            for i in self._items("confusion_matrix")
        ]

    def get_tables(self) -> list[dict[str, Any]]:
        return [{"name": i["name"], **i["data"]} for i in self._items("table")]

    def get_code(self) -> list[dict[str, Any]]:
        return [i["data"] for i in self._items("code")]

    def get_environment(self) -> dict[str, Any] | None:
        items = self._items("environment")
        return items[-1]["data"] if items else None

    def get_packages(self) -> list[dict[str, Any]]:
        items = self._items("packages")
        return items[-1]["data"]["packages"] if items else []

    def get_git(self) -> dict[str, Any] | None:
        items = self._items("git")
        return items[-1]["data"] if items else None

    def get_stdout(self) -> str:
        return "".join(i["data"]["text"] for i in self._items("stdout"))

    def get_lineage(self, direction: str = "both", depth: int = 10) -> dict[str, Any]:
        """``{"root", "nodes", "edges"}``: artifact versions consumed and produced, models registered."""
        return self._t.call("lineage", node=f"experiment:{self.key}", direction=direction, depth=depth)

    def get_logged_models(self) -> list[dict[str, Any]]:
        return self._t.call("logged_models", key=self.key)


class API:
    """Read experiments from the embedded home or, with ``url`` (``ClientSettings.url``), a server.

    ``settings`` (default: read from the environment now) says where and as whom; ``api_key`` and
    ``url`` override it."""

    def __init__(
        self, api_key: str | None = None, url: str | None = None, *, settings: ClientSettings | None = None
    ) -> None:
        self.settings = (settings or ClientSettings.from_env()).with_overrides(
            url=url or None, api_key=api_key or None
        )
        self._t = default_transport(settings=self.settings)

    def close(self) -> None:
        self._t.close()

    def get_workspaces(self) -> list[str]:
        return [w["name"] for w in self._t.read("workspaces")]

    def get_projects(self, workspace: str) -> list[str]:
        return [p["name"] for p in self._t.read("projects", workspace=workspace)]

    def get_experiment_by_key(self, key: str) -> APIExperiment:
        return APIExperiment(self._t, self._t.read("experiment", key=key))

    def get_experiment(self, workspace: str, project_name: str, key: str) -> APIExperiment:
        exp = self.get_experiment_by_key(key)
        if (exp.workspace, exp.project_name) != (workspace, project_name):
            from tallymark.sdk.transport import TallymarkError

            raise TallymarkError(
                f"experiment {key} is in {exp.workspace}/{exp.project_name}, not {workspace}/{project_name}",
                404,
                "not_found",
            )
        return exp

    def _all(self, workspace: str, project_name: str | None, q: str | None, sort: str) -> list[APIExperiment]:
        out: list[APIExperiment] = []
        page = 1
        while True:
            res = self._t.read(
                "query", workspace=workspace, project=project_name, q=q, sort=sort, page=page, per_page=1000
            )
            out.extend(APIExperiment(self._t, e) for e in res["experiments"])
            if len(out) >= res["total"] or not res["experiments"]:
                return out
            page += 1

    def get_metric_series(
        self, keys: list[str], name: str, points: int | None = None, as_numpy: bool = False
    ) -> dict[str, Any]:
        """One metric of many experiments in one call: ``{key: {"steps", "values", …}}`` (experiments
        without it are left out); with ``points``, each series is LTTB-downsampled.

        ``as_numpy=True`` gives numpy arrays instead of lists (int64 steps and ms timestamps, float64
        values, epochs with -1 for none) — the fast path for analysis; in the embedded home the
        arrays come straight from the stored columns.
        """
        if as_numpy:
            return self._t.metric_arrays(list(keys), name, points)
        out = self._t.read("metric_many", keys=list(keys), name=name, points=points)["series"]
        for s in out.values():
            jsonvalue.restore_series(s)
        return out

    def get_artifact(self, workspace: str, name: str, version_or_alias: str | None = None) -> Any:
        """An artifact version (latest when none is named). Reading here records no lineage."""
        from tallymark.sdk.artifact import LoggedArtifact

        return LoggedArtifact(
            self._t,
            self._t.call(
                "artifact_version", workspace=workspace, name=name, version_or_alias=version_or_alias
            ),
        )

    def get_artifacts(self, workspace: str) -> list[dict[str, Any]]:
        return self._t.call("list_artifacts", workspace=workspace)

    def get_artifact_versions(self, workspace: str, name: str) -> list[Any]:
        from tallymark.sdk.artifact import LoggedArtifact

        versions = self._t.call("list_artifact_versions", workspace=workspace, name=name)
        return [LoggedArtifact(self._t, v) for v in versions]

    def get_model(self, workspace: str, model_name: str) -> Any:
        from tallymark.sdk.model import Model

        self._t.call("get_model", workspace=workspace, name=model_name)  # unknown models fail here, not later
        return Model(self._t, workspace, model_name)

    def get_models(self, workspace: str) -> list[dict[str, Any]]:
        return self._t.call("list_models", workspace=workspace)

    def get_lineage(self, node: str, direction: str = "both", depth: int = 10) -> dict[str, Any]:
        """The lineage graph around a node: ``experiment:KEY``, ``artifact:WS/NAME:VERSION`` or
        ``model:WS/NAME:VERSION``."""
        return self._t.call("lineage", node=node, direction=direction, depth=depth)

    def get_experiments(
        self, workspace: str, project_name: str | None = None, sort: str = "created_at"
    ) -> list[APIExperiment]:
        return self._all(workspace, project_name, None, sort)

    def query(
        self, workspace: str, project_name: str | None, query: str, sort: str = "created_at"
    ) -> list[APIExperiment]:
        """Experiments matching the query language, e.g. ``metrics.auc > 0.9 and params.lr = 0.15``."""
        return self._all(workspace, project_name, query, sort)
