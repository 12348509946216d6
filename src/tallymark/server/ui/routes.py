"""The UI's routes: pages at the DESIGN §4 URLs and its static files under ``/-/static/``.

Included after the API, so ``/api/v1/…``, ``/docs`` and the OpenAPI document always win; a page
path whose first segment is ``api`` answers the API's JSON 404 rather than a page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.convertors import CONVERTOR_TYPES, Convertor, register_url_convertor

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep
from tallymark.server.ui import assets, urls
from tallymark.server.ui.layout import error_page
from tallymark.service.errors import ServiceError
from tallymark.service.models import KEY_RE
from tallymark.service.store import Store


class _KeyConvertor(Convertor[str]):
    """A 32-hex experiment key; other third segments fall through to the API's 404."""

    regex = "[0-9a-f]{32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


if "tmkey" not in CONVERTOR_TYPES:
    register_url_convertor("tmkey", _KeyConvertor())

router = APIRouter(include_in_schema=False)  # each route declares its permission (server/permissions.py)
RESERVED = ("api", "-", "clientlib", "login")  # API prefixes (ours, the comet adapter); the login pages


def _store(request: Request) -> Store:
    return request.app.state.store


def _guard(workspace: str) -> None:
    if workspace in RESERVED:
        raise HTTPException(404, "Not Found")


@router.get("/-/static/{path:path}", dependencies=[need("ui.static")])
def static_file(path: str, request: Request) -> Response:
    versioned = path.startswith("v/") and path.count("/") >= 2
    if versioned:  # /-/static/v/HASH/js/main.js: any HASH serves today's file; only ours is cached long
        _, version, path = path.split("/", 2)
        versioned = version == assets.version()
    f = assets.get(path)
    if f is None:
        raise HTTPException(404, "Not Found")
    headers = {
        "ETag": f.etag,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "public, max-age=31536000, immutable" if versioned else "no-cache",
        "Vary": "Accept-Encoding",
    }
    if request.headers.get("if-none-match") == f.etag:
        return Response(status_code=304, headers=headers)
    body = f.body
    if f.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body = f.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=f.content_type, headers=headers)


@router.get("/-/columns/{workspace}/{project}", dependencies=[need("ui.workspace")])
def project_columns(workspace: str, project: str, request: Request, caller: CallerDep) -> Response:
    """Every parameter, metric and other name of a project, for the column picker."""
    from tallymark.server.routes.deps import reply
    from tallymark.service import ui_reads

    return reply(ui_reads.project_columns(_store(request), caller, workspace, project))


@router.get("/-/series", dependencies=[need("ui.workspace")])
def compare_series(
    request: Request,
    caller: CallerDep,
    name: Annotated[str, Query(min_length=1, max_length=500)],
    keys: Annotated[str, Query(min_length=32, max_length=33 * 1000)],
    points: Annotated[int | None, Query(ge=3, le=100_000)] = None,
) -> Response:
    """One metric of several experiments, LTTB-downsampled: ``POST /api/v1/metrics/series`` as a GET,
    so a compare page can ``<link rel=preload>`` its first charts while its scripts load."""
    from tallymark.server.routes.deps import reply
    from tallymark.service import reads

    return reply(
        reads.metric_histories(_store(request), caller, [k for k in keys.split(",") if k], name, points)
    )


@router.get("/-/me", dependencies=[need("ui.whoami")])
def me(request: Request) -> Response:
    """Who the browser is, for the header badge and for hiding buttons the caller's role may not use
    (the server refuses those requests anyway). Never more than the caller's own name and roles."""
    from tallymark.server.auth import auth_enabled, current_caller
    from tallymark.server.routes.deps import reply

    caller = current_caller(request)
    if caller is None:
        return reply({"auth": auth_enabled(request), "user": None})
    return reply(
        {
            "auth": auth_enabled(request),
            "user": caller.name,
            "admin": caller.is_admin,
            "method": caller.auth_method,
            "roles": dict(caller.roles),
            "approver": sorted(caller.approver),
        }
    )


@router.get("/", dependencies=[need("ui.page")])
def workspaces(request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_home import workspaces_page

    return workspaces_page(_store(request), caller)


@router.get("/{workspace}", dependencies=[need("ui.workspace")])
def projects(workspace: str, request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_home import projects_page

    _guard(workspace)
    try:
        return projects_page(_store(request), caller, workspace)
    except ServiceError as exc:
        return error_page(exc.status, exc.message)


def _registry(workspace: str, build: Callable[[], HTMLResponse]) -> HTMLResponse:
    """Artifact and model pages; registered before ``/{workspace}/{project}``, which they shadow."""
    _guard(workspace)
    try:
        return build()
    except ServiceError as exc:
        return error_page(exc.status, exc.message, [(workspace, urls.workspace(workspace))])


@router.get("/{workspace}/artifacts", dependencies=[need("ui.workspace")])
def artifact_list(workspace: str, request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_artifacts import artifacts_page

    return _registry(workspace, lambda: artifacts_page(_store(request), caller, workspace))


@router.get("/{workspace}/artifacts/{name}", dependencies=[need("ui.workspace")])
def artifact(
    workspace: str,
    name: str,
    request: Request,
    caller: CallerDep,
    version: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    from tallymark.server.ui.pages_artifacts import artifact_page

    return _registry(workspace, lambda: artifact_page(_store(request), caller, workspace, name, version))


@router.get("/{workspace}/models", dependencies=[need("ui.workspace")])
def model_list(workspace: str, request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_models import models_page

    return _registry(workspace, lambda: models_page(_store(request), caller, workspace))


@router.get("/{workspace}/models/{name}", dependencies=[need("ui.workspace")])
def model(workspace: str, name: str, request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_models import model_page

    return _registry(workspace, lambda: model_page(_store(request), caller, workspace, name))


@router.get("/{workspace}/jobs", dependencies=[need("ui.workspace")])
def job_list(
    workspace: str,
    request: Request,
    caller: CallerDep,
    status: Annotated[str, Query(max_length=20)] = "",
    kind: Annotated[str, Query(max_length=20)] = "",
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> HTMLResponse:
    from tallymark.server.ui.pages_jobs import jobs_page

    return _registry(workspace, lambda: jobs_page(_store(request), caller, workspace, status, kind, page))


@router.get("/{workspace}/jobs/{name}", dependencies=[need("ui.workspace")])
def job(workspace: str, name: str, request: Request, caller: CallerDep) -> HTMLResponse:
    from tallymark.server.ui.pages_jobs import job_page

    return _registry(workspace, lambda: job_page(_store(request), caller, workspace, name))


@router.get("/{workspace}/endpoints", dependencies=[need("ui.workspace")])
def endpoint_list(
    workspace: str,
    request: Request,
    caller: CallerDep,
    window: Annotated[str, Query(max_length=10)] = "1h",
    deleted: Annotated[str, Query(max_length=5)] = "",
) -> HTMLResponse:
    from tallymark.server.ui.pages_endpoints import endpoints_page

    return _registry(
        workspace, lambda: endpoints_page(_store(request), caller, workspace, window, deleted == "1")
    )


@router.get("/-/jobs/{workspace}/{name}/log", dependencies=[need("job.get")])
def job_log_text(workspace: str, name: str, request: Request, caller: CallerDep) -> Response:
    """A job's whole stored log as a text/plain download (the page shows its tail)."""
    from tallymark.server.ui.pages_jobs import log_text

    data = log_text(_store(request), caller, workspace, name)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "job"
    return Response(
        data,
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}.log"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/{workspace}/{project}", response_model=None, dependencies=[need("ui.workspace")])
def experiment_table(
    workspace: str,
    project: str,
    request: Request,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=4096)] = "",
    sort: Annotated[str, Query(max_length=600)] = "",
    page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 50,
    cols: Annotated[str, Query(max_length=20_000)] = "",
    picker: str = "",
    col: Annotated[list[str] | None, Query()] = None,
) -> Response:
    from tallymark.server.ui.pages_table import TableState, canonical_cols, table_page

    _guard(workspace)
    state = TableState(workspace, project, q, sort, page, per_page, cols)
    if picker:  # the column picker's form: redirect to the canonical ?cols= URL
        return RedirectResponse(state.url(cols=canonical_cols(col or []), page=1), status_code=303)
    try:
        return table_page(_store(request), caller, state)
    except ServiceError as exc:
        return error_page(exc.status, exc.message, [(workspace, urls.workspace(workspace))])


@router.get("/{workspace}/{project}/compare", response_model=None, dependencies=[need("ui.workspace")])
def compare(
    workspace: str,
    project: str,
    request: Request,
    caller: CallerDep,
    keys: Annotated[list[str] | None, Query()] = None,
) -> Response:
    from tallymark.server.ui.pages_compare import compare_page

    _guard(workspace)
    raw = keys or []
    flat = [k.strip() for part in raw for k in part.split(",") if k.strip()]
    flat = list(dict.fromkeys(flat))
    if len(raw) > 1:  # the table's form sends keys=a&keys=b: redirect to the shareable keys=a,b
        return RedirectResponse(urls.compare(workspace, project, flat), status_code=303)
    bad = [k for k in flat if not KEY_RE.match(k)]
    if bad:
        return error_page(
            404, f"{bad[0]!r} is not an experiment key", [(workspace, urls.workspace(workspace))]
        )
    try:
        return compare_page(_store(request), caller, workspace, project, flat, dict(request.query_params))
    except ServiceError as exc:
        return error_page(exc.status, exc.message, [(workspace, urls.workspace(workspace))])


@router.get("/{workspace}/{project}/{key:tmkey}", response_model=None, dependencies=[need("ui.workspace")])
def experiment(
    workspace: str,
    project: str,
    key: str,
    request: Request,
    caller: CallerDep,
    tab: str = "overview",
) -> Response:
    from tallymark.server.ui.pages_experiment import experiment_page

    _guard(workspace)
    try:
        return experiment_page(
            _store(request), caller, workspace, project, key, tab, dict(request.query_params)
        )
    except ServiceError as exc:
        return error_page(exc.status, exc.message, [(workspace, urls.workspace(workspace))])
