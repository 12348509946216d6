"""Custom Python panels: the list, and one panel rendered over some experiments.

``GET /api/v1/panels`` lists registered panels (and files that failed to load);
``GET /api/v1/panels/render?name=&keys=k1,k2`` answers ``{"name", "ok", "figure" | "error"}``: a
panel that raises is a 200 with ``ok: false`` so the compare page shows the error in that panel.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep, StoreDep, TallyJSON, reply
from tallymark.service.errors import Invalid
from tallymark.service.models import KEY_RE

router = APIRouter(tags=["panels"])


@router.get("/panels", dependencies=[need("panel.list")])
def list_panels(store: StoreDep) -> TallyJSON:
    from tallymark.server.ui.panel_render import listing

    return reply(listing(store))


@router.get("/panels/render", dependencies=[need("panel.render")])
def render_panel(
    store: StoreDep,
    caller: CallerDep,
    name: Annotated[str, Query(min_length=1, max_length=500)],
    keys: Annotated[
        str, Query(min_length=32, max_length=33 * 200, description="experiment keys, comma-separated")
    ],
) -> TallyJSON:
    from tallymark.server.ui.panel_render import render

    parsed = [k.strip() for k in keys.split(",") if k.strip()]
    bad = [k for k in parsed if not KEY_RE.match(k)]
    if bad:
        raise Invalid(f"{bad[0]!r} is not an experiment key")
    return reply(render(store, caller, name, list(dict.fromkeys(parsed))))
