"""The read API ``comet_ml.API`` uses: workspaces, projects, experiments and their metadata, metrics,
parameters, others, tags, assets (list and bytes), output, code, system details, git, logged models.

Values come back as Comet returns them: every metric, parameter and other value as a string, metric
points ordered by step, times in milliseconds. Nested parameters (stored ``a.b``) are given back as
Comet wrote them (``a|b``) for experiments that logged nested parameters (other ``hasNestedParams``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tallymark.sdk.autolog.redact import redact_environment, redact_git
from tallymark.server.compat.comet import translate as tr
from tallymark.server.compat.comet.http import (
    CometError,
    actor_of,
    caller_of,
    ok,
    router,
    store_of,
    unsupported,
)
from tallymark.service import assets, experiments, reads, registry
from tallymark.service.caller import Caller
from tallymark.service.errors import NotFound
from tallymark.service.models import KEY_RE
from tallymark.service.store import Store
from tallymark.storable import MAX_ID

clientlib = router()
rest = router()


def _key(request: Request) -> str:
    key = request.query_params.get("experimentKey") or ""
    if not KEY_RE.match(key):
        raise CometError(404, f"no experiment with key {key!r}")
    return key


def _last(store: Store, caller: Caller, key: str, kind: str) -> dict[str, Any] | None:
    found = reads.get_items(store, caller, key, kind)
    return found[-1]["data"] if found else None


def _metadata(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    exp = experiments.get_experiment(store, caller, key)
    env = _last(store, caller, key, "environment") or {}
    return tr.experiment_metadata(exp, env.get("file_path"))


@rest.get("/experiment/metadata")
async def metadata(request: Request) -> Any:
    return ok(await run_in_threadpool(_metadata, store_of(request), caller_of(request), _key(request)))


def _experiments(
    store: Store, caller: Caller, ws: str, project: str, page: int | None, size: int | None
) -> list[Any]:
    out: list[dict[str, Any]] = []
    if page is not None:
        per = min(max(size or 50, 1), 1000)
        res = reads.query_experiments(
            store, caller, ws, project, None, "created_at", page, per, with_values=False
        )
        return [tr.experiment_metadata(e) for e in res["experiments"]]
    n = 1
    while True:
        res = reads.query_experiments(
            store, caller, ws, project, None, "created_at", n, 1000, with_values=False
        )
        out += [tr.experiment_metadata(e) for e in res["experiments"]]
        if n * 1000 >= res["total"]:
            return out
        n += 1


@rest.get("/experiments")
async def project_experiments(request: Request) -> Any:
    q = request.query_params
    ws, project = q.get("workspaceName"), q.get("projectName")
    if not ws or not project:
        raise CometError(400, "give workspaceName and projectName")
    if (q.get("archived") or "").lower() == "true":
        return ok({"experiments": []})  # tallymark does not archive experiments
    page = tr.int_or_none(q.get("page"), "page")
    size = tr.int_or_none(q.get("size"), "size")
    found = await run_in_threadpool(
        _experiments, store_of(request), caller_of(request), ws, project, page, size
    )
    if (q.get("sortOrder") or "").lower() == "desc":
        found.reverse()
    return ok({"experiments": found})


def _projects(store: Store, caller: Caller, ws: str) -> list[dict[str, Any]]:
    return [
        {
            "projectId": tr.project_id(ws, p["name"]),
            "projectName": p["name"],
            "workspaceName": ws,
            "ownerUserName": None,
            "projectDescription": None,
            "isPublic": False,
            "numberOfExperiments": p["experiments"],
            "lastUpdated": p["last_created_at"] or p["created_at"],
        }
        for p in experiments.list_projects(store, caller, ws)
    ]


@rest.get("/projects")
async def projects(request: Request) -> Any:
    ws = request.query_params.get("workspaceName")
    if not ws:
        raise CometError(400, "give workspaceName")
    return ok({"projects": await run_in_threadpool(_projects, store_of(request), caller_of(request), ws)})


def _project(store: Store, caller: Caller, q: Any) -> dict[str, Any]:
    if q.get("projectId"):
        ws, name = tr.parse_id("p", q["projectId"], 2)
    else:
        ws, name = q.get("workspaceName") or "", q.get("projectName") or ""
    for p in _projects(store, caller, ws):
        if p["projectName"] == name:
            return p
    raise NotFound(f"no project {ws}/{name}")


@rest.get("/project")
async def project(request: Request) -> Any:
    return ok(await run_in_threadpool(_project, store_of(request), caller_of(request), request.query_params))


@rest.get("/workspaces")
async def workspaces(request: Request) -> Any:
    found = await run_in_threadpool(experiments.list_workspaces, store_of(request), caller_of(request))
    return ok({"workspaceNames": [w["name"] for w in found]})


@rest.get("/account-details")
async def account(request: Request) -> Any:
    return ok({"userName": actor_of(request), "defaultWorkspaceName": tr.DEFAULT_WORKSPACE})


def _nested(store: Store, caller: Caller, key: str) -> bool:
    return any(
        o["name"] == "hasNestedParams" and o["valueCurrent"] is True
        for o in reads.others_summary(store, caller, key)
    )


def _parameters(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    return tr.summary_values(reads.parameters_summary(store, caller, key), _nested(store, caller, key))


@rest.get("/experiment/parameters")
async def parameters(request: Request) -> Any:
    return ok(
        {"values": await run_in_threadpool(_parameters, store_of(request), caller_of(request), _key(request))}
    )


@rest.get("/experiment/metrics/summary")
async def metrics_summary(request: Request) -> Any:
    rows = await run_in_threadpool(
        reads.metrics_summary, store_of(request), caller_of(request), _key(request)
    )
    return ok({"values": tr.metric_summary_values(rows)})


def _metric(store: Store, caller: Caller, key: str, name: str) -> list[dict[str, Any]]:
    try:
        return tr.metric_points(reads.metric_history(store, caller, key, name))
    except NotFound:
        experiments.get_experiment(store, caller, key)  # an unknown experiment is a 404; a metric is not
        return []


@rest.get("/experiment/metrics/get-metric")
async def metric(request: Request) -> Any:
    name = request.query_params.get("metricName")
    if not name:
        raise CometError(400, "give metricName")
    return ok(
        {
            "metrics": await run_in_threadpool(
                _metric, store_of(request), caller_of(request), _key(request), name
            )
        }
    )


def _all_metrics(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name in reads.metric_names(store, caller, key):
        out += _metric(store, caller, key, name)
    return out


@rest.get("/experiment/metrics/get-all")
async def all_metrics(request: Request) -> Any:
    return ok(
        {
            "metrics": await run_in_threadpool(
                _all_metrics, store_of(request), caller_of(request), _key(request)
            )
        }
    )


def _others(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    rows = reads.others_summary(store, caller, key)
    name = experiments.get_experiment(store, caller, key).get("name")
    if name is not None:
        rows = [{"name": "Name", "valueCurrent": name, "timestampCurrent": None}, *rows]
    return tr.summary_values(rows)


@rest.get("/experiment/log-other")
async def others(request: Request) -> Any:
    return ok(
        {"values": await run_in_threadpool(_others, store_of(request), caller_of(request), _key(request))}
    )


@rest.get("/experiment/tags")
async def tags(request: Request) -> Any:
    return ok(
        {
            "tags": await run_in_threadpool(
                reads.get_tags, store_of(request), caller_of(request), _key(request)
            )
        }
    )


def _assets(store: Store, caller: Caller, key: str, asset_type: str | None) -> list[dict[str, Any]]:
    out = [tr.asset_out(a, key) for a in assets.list_assets(store, caller, key)]
    if asset_type and asset_type != "all":
        out = [a for a in out if a["type"] == asset_type]
    return out


@rest.get("/experiment/asset/list")
async def asset_list(request: Request) -> Any:
    key = _key(request)
    found = await run_in_threadpool(
        _assets, store_of(request), caller_of(request), key, request.query_params.get("type")
    )
    return ok({"assets": found})


def _blob_of(store: Store, caller: Caller, q: Any) -> tuple[str, int, str]:
    """(sha256, size, file name) of an experiment asset, an artifact file or a model file."""
    asset_id = q.get("assetId") or ""
    if asset_id.startswith("af-"):
        ws, name, version, path = tr.parse_id("af", asset_id, 4)
        from tallymark.service import artifacts

        files = artifacts.get_artifact_version(store, caller, ws, name, version)["files"]
    elif asset_id.startswith("mf-"):
        key, model, path = tr.parse_id("mf", asset_id, 3)
        files = next(
            (m["files"] for m in registry.list_logged_models(store, caller, key) if m["name"] == model), []
        )
    else:
        key = q.get("experimentKey") or ""
        # ASCII digits of a row id only: int("²") raises, and a bigger id would reach the driver.
        digits = asset_id.isascii() and asset_id.isdigit() and len(asset_id) <= 10
        if not KEY_RE.match(key) or not digits or int(asset_id) > MAX_ID:
            raise CometError(404, f"no asset {asset_id[:100]!r}")
        a = assets.get_asset(store, caller, key, int(asset_id))
        return a["sha256"], a["fileSize"], a["fileName"]
    f = next((f for f in files if f["logicalPath"] == path), None)
    if f is None:
        raise CometError(404, f"no file {path!r}")
    if f.get("sha256") is None:
        raise CometError(400, f"{path!r} is a remote file ({f.get('uri')}); download it from there")
    return f["sha256"], f.get("size") or 0, path


@rest.get("/experiment/asset/get-asset")
async def get_asset(request: Request) -> Any:
    """An asset's bytes (also artifact and model files, by the ids their listings give)."""
    store = store_of(request)
    sha, size, name = await run_in_threadpool(_blob_of, store, caller_of(request), request.query_params)
    from urllib.parse import quote

    return StreamingResponse(
        store.blobs.iter_bytes(sha),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name.rsplit('/', 1)[-1], safe='')}",
            "X-Content-Type-Options": "nosniff",
        },
    )


def _system_details(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    # Redacted again on the way out: experiments recorded before capture-time redaction.
    env = redact_environment(_last(store, caller, key, "environment") or {})
    pkgs = _last(store, caller, key, "packages") or {}
    py, osd = env.get("python") or {}, env.get("os") or {}
    argv = env.get("argv") or []
    return {
        "experimentKey": key,
        "user": env.get("user"),
        "pythonVersion": py.get("version"),
        "pythonVersionVerbose": py.get("version_verbose"),
        "pid": env.get("pid"),
        "osType": osd.get("system"),
        "os": osd.get("platform"),
        "osRelease": osd.get("release"),
        "machine": osd.get("machine"),
        "processor": (env.get("cpu") or {}).get("processor"),
        "ip": env.get("ip"),
        "hostname": env.get("hostname"),
        "command": argv,
        "executable": py.get("executable"),
        "env": env.get("env_vars") or {},
        "totalRam": env.get("memory_total_bytes"),
        "maxTotalMemory": None,
        "networkInterfaceIps": [],
        "gpuStaticInfoList": env.get("gpus") or [],
        "logAdditionalSystemInfoList": [],
        "systemMetricNames": [],
        "osPackages": env.get("os_packages") or [],
        "installedPackages": [f"{p['name']}=={p['version']}" for p in pkgs.get("packages") or []],
    }


@rest.get("/experiment/system-details")
async def system_details(request: Request) -> Any:
    return ok(await run_in_threadpool(_system_details, store_of(request), caller_of(request), _key(request)))


def _code(store: Store, caller: Caller, key: str) -> str | None:
    code = _last(store, caller, key, "code")
    return None if code is None else code.get("source")


@rest.get("/experiment/code")
async def code(request: Request) -> Any:
    return ok({"code": await run_in_threadpool(_code, store_of(request), caller_of(request), _key(request))})


@rest.get("/experiment/output")
async def output(request: Request) -> Any:
    return ok(
        {
            "output": await run_in_threadpool(
                reads.get_stdout, store_of(request), caller_of(request), _key(request)
            )
        }
    )


def _git(store: Store, caller: Caller, key: str) -> dict[str, Any]:
    g = redact_git(_last(store, caller, key, "git") or {})
    return {
        "user": g.get("user"),
        "root": g.get("root_commit"),
        "branch": g.get("branch"),
        "parent": g.get("commit"),
        "origin": g.get("remote_url"),
    }


@rest.get("/experiment/git/metadata")
async def git_metadata(request: Request) -> Any:
    return ok(await run_in_threadpool(_git, store_of(request), caller_of(request), _key(request)))


@rest.get("/experiment/git/patch")
async def git_patch(request: Request) -> Any:
    from fastapi.responses import Response

    g = await run_in_threadpool(_last, store_of(request), caller_of(request), _key(request), "git")
    diff = (g or {}).get("diff")
    if not diff:
        return ok({"msg": "no git patch was logged"})
    import io
    import zipfile

    buf = io.BytesIO()  # Comet answers a zip holding git_diff.patch
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("git_diff.patch", diff)
    return Response(buf.getvalue(), media_type="application/octet-stream")


def _models(store: Store, caller: Caller, key: str) -> list[dict[str, Any]]:
    return [
        {
            "experimentModelId": tr.experiment_model_id(key, m["name"]),
            "experimentKey": key,
            "modelName": m["name"],
        }
        for m in registry.list_logged_models(store, caller, key)
    ]


@rest.get("/experiment/model")
async def logged_models(request: Request) -> Any:
    return ok(
        {"models": await run_in_threadpool(_models, store_of(request), caller_of(request), _key(request))}
    )


@rest.post("/project/query")
async def query() -> Any:
    raise unsupported("API.query", "use tallymark's query language: tallymark.API().query(ws, project, '…')")


@rest.post("/experiments/search")
async def search() -> Any:
    raise unsupported("API.query", "use tallymark's query language: tallymark.API().query(ws, project, '…')")


@rest.get("/project/column-names")
async def columns() -> Any:
    raise unsupported("API.query", "use tallymark's query language: tallymark.API().query(ws, project, '…')")


@rest.post("/experiments/multi-metric-chart")
async def multi_metric() -> Any:
    raise unsupported("API.get_metrics_for_chart", "read each experiment's get_metrics()")


@rest.get("/experiment/html")
async def get_html() -> Any:
    raise unsupported("Experiment HTML")
