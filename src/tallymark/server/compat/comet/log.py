"""Logging: metric and parameter batches, others, tags, output, system details, git metadata, code.

Everything becomes one :func:`tallymark.service.batch.apply_batch` call (one transaction) whose batch
id is derived from the request body, so the SDK's retries never duplicate points. Facts that arrive
in parts (system details in three requests, git metadata and the patch) are merged into one item.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from tallymark.server.compat.comet import translate as tr
from tallymark.server.compat.comet.http import (
    CometError,
    caller_of,
    json_object,
    ok,
    router,
    store_of,
    unsupported,
)
from tallymark.server.compat.comet.lifecycle import experiment_key
from tallymark.service import assets, batch, compat_support, reads
from tallymark.service.caller import Caller
from tallymark.service.store import Store

clientlib = router()
rest = router()


def apply(
    store: Store, caller: Caller, key: str, kind: str, raw: Any, session: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {"batch_id": tr.batch_id(kind, key, raw)} | {k: v for k, v in fields.items() if v}
    return batch.apply_batch(store, caller, key, body, session=session)


def log_metrics(store: Store, caller: Caller, key: str, points: list[dict[str, Any]], raw: Any) -> None:
    """Metric points → one batch; points whose value is no number are refused after the rest is kept."""
    counts: dict[str, int] = {}
    if any(p.get("step") is None for p in points):
        counts = {m["name"]: m["count"] for m in reads.metrics_summary(store, caller, key)}
    series, refused = tr.metric_series(points, counts)
    if series:
        apply(store, caller, key, "metrics", raw, metrics=series)
    if refused:
        kept = sum(len(s["steps"]) for s in series)
        raise CometError(
            400,
            f"{len(refused)} metric point(s) refused, {kept} stored: {'; '.join(refused[:3])} "
            "(tallymark metrics are numbers; log text with log_other)",
        )


def log_others(store: Store, caller: Caller, key: str, others: dict[str, Any], raw: Any) -> None:
    """Others; Comet's ``set_name`` arrives as the other ``Name`` and names the experiment."""
    name = others.pop("Name", None)
    apply(
        store,
        caller,
        key,
        "others",
        raw,
        others=others,
        name=str(name) if name is not None and str(name).strip() else None,
    )


def _values(body: dict[str, Any]) -> list[dict[str, Any]]:
    values = body.get("values")
    if not isinstance(values, list) or not all(isinstance(v, dict) for v in values):
        raise CometError(400, "'values' must be a list of objects")
    return values


@clientlib.post("/batch/logger/experiment/metric")
async def metric_batch(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    await run_in_threadpool(log_metrics, store_of(request), caller_of(request), key, _values(body), body)
    return ok()


@clientlib.post("/batch/logger/experiment/parameter")
async def parameter_batch(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    params = tr.params_in(_values(body))
    await run_in_threadpool(apply, store_of(request), caller_of(request), key, "params", body, params=params)
    return ok()


@rest.post("/write/experiment/metric")
async def one_metric(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    await run_in_threadpool(log_metrics, store_of(request), caller_of(request), key, [body], body)
    return ok()


@rest.post("/write/experiment/parameter")
async def one_parameter(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    params = {tr.param_name(body.get("parameterName")): body.get("parameterValue")}
    await run_in_threadpool(apply, store_of(request), caller_of(request), key, "params", body, params=params)
    return ok()


@rest.post("/write/experiment/log-other")
async def log_other(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    name = body.get("key")
    if not isinstance(name, str) or not name:
        raise CometError(400, "'key' must be the other's name")
    await run_in_threadpool(
        log_others, store_of(request), caller_of(request), key, {name: body.get("value")}, body
    )
    return ok()


async def _tags(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    tags = body.get("addedTags")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CometError(400, "'addedTags' must be a list of strings")
    await run_in_threadpool(apply, store_of(request), caller_of(request), key, "tags", body, tags=tags)
    return ok()


clientlib.add_api_route("/tags/add-tags-to-experiment", _tags, methods=["POST"])
rest.add_api_route("/write/experiment/tags", _tags, methods=["POST"])


@rest.post("/write/experiment/output")
async def output(request: Request) -> Any:
    """Captured stdout/stderr lines → ``stdout`` items."""
    body = await json_object(request)
    key = experiment_key(body)
    lines = body.get("outputLines")
    if not isinstance(lines, list) or not all(isinstance(x, dict) for x in lines):
        raise CometError(400, "'outputLines' must be a list of objects")
    items = tr.stdout_items(lines)
    if items:
        await run_in_threadpool(
            apply, store_of(request), caller_of(request), key, "output", body, items=items
        )
    return ok()


@rest.post("/write/experiment/system-details")
async def system_details(request: Request) -> Any:
    """Arrives in three parts: installed packages, OS packages, then the machine and process."""
    body = await json_object(request)
    key = experiment_key(body)
    store = store_of(request)
    if isinstance(body.get("installedPackages"), list):
        data = tr.packages_item(body["installedPackages"])
        await run_in_threadpool(
            compat_support.merge_item, store, caller_of(request), key, "packages", "packages", data
        )
    if isinstance(body.get("osPackages"), list):
        fields = {"os_packages": [str(p) for p in body["osPackages"]]}
        await run_in_threadpool(
            compat_support.merge_item, store, caller_of(request), key, "environment", "environment", fields
        )
    fields = tr.environment_fields(body)
    if fields:
        await run_in_threadpool(
            compat_support.merge_item, store, caller_of(request), key, "environment", "environment", fields
        )
    return ok()


async def _merge_environment(request: Request, field: str, source: str) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    fields = {field: body.get(source)}
    await run_in_threadpool(
        compat_support.merge_item,
        store_of(request),
        caller_of(request),
        key,
        "environment",
        "environment",
        fields,
    )
    return ok()


@rest.post("/write/experiment/file-path")
async def file_path(request: Request) -> Any:
    return await _merge_environment(request, "file_path", "filePath")


@rest.post("/write/experiment/cloud-details")
async def cloud_details(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    fields = {"cloud": {"provider": body.get("provider"), "metadata": body.get("metadata")}}
    await run_in_threadpool(
        compat_support.merge_item,
        store_of(request),
        caller_of(request),
        key,
        "environment",
        "environment",
        fields,
    )
    return ok()


@rest.post("/write/experiment/git/metadata")
async def git_metadata(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    await run_in_threadpool(
        compat_support.merge_item,
        store_of(request),
        caller_of(request),
        key,
        "git",
        "git",
        tr.git_fields(body),
    )
    return ok()


@rest.post("/write/experiment/code")
async def code(request: Request) -> Any:
    body = await json_object(request)
    key = experiment_key(body)
    source = body.get("code")
    if not isinstance(source, str):
        raise CometError(400, "'code' must be the source text")
    item = tr.code_item(source.encode(), None)
    await run_in_threadpool(apply, store_of(request), caller_of(request), key, "code", body, items=[item])
    return ok()


@rest.post("/write/experiment/graph")
async def model_graph(request: Request) -> Any:
    """``set_model_graph`` (also sent by framework auto-logging): kept as the text asset
    ``model-graph.txt``; the first graph an experiment sends is kept, later ones are ignored."""
    body = await json_object(request)
    key = experiment_key(body)
    graph = body.get("graph")
    if not isinstance(graph, str):
        graph = json.dumps(graph, default=str)
    meta = {
        "file_name": "model-graph.txt",
        "upload_id": "comet-model-graph",
        "metadata": {tr.COMET_TYPE_KEY: "model-graph"},
    }
    await run_in_threadpool(
        assets.add_asset, store_of(request), caller_of(request), key, meta, iter([graph.encode()])
    )
    return ok()


@rest.post("/write/experiment/html")
async def html() -> Any:
    raise unsupported("log_html", "save the page with log_asset instead")


@rest.put("/write/experiment/dependencies")
async def dependencies() -> Any:
    raise unsupported("log_dependency", "installed packages are recorded automatically")


@rest.post("/write/experiment/tags/delete")
async def delete_tags() -> Any:
    raise unsupported("Removing tags")


@rest.post("/write/experiment/parameter/delete")
async def delete_parameter() -> Any:
    raise unsupported("Deleting parameters")


@rest.post("/write/experiments/parameters/delete")
async def delete_parameters() -> Any:
    raise unsupported("Deleting parameters")
