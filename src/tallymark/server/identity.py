"""Who is asking, as a name for the service layer (the actor recorded on writes).

With auth on, the name is the authenticated caller's (:mod:`tallymark.server.auth`) and
``X-Tallymark-User`` is ignored. On a ``--no-auth`` server (loopback only) the ``X-Tallymark-User``
header the SDK sends (``TALLYMARK_USER`` or the OS user) is trusted; without it the actor is the
server's user.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from tallymark.service.errors import Invalid

_USER_RE = re.compile(r"[\w.@+-]{1,200}")


def header_user(request: Request) -> str:
    """The ``--no-auth`` identity: ``X-Tallymark-User``, else the server's user."""
    user = request.headers.get("x-tallymark-user")
    if user is None:
        return request.app.state.user
    if not _USER_RE.fullmatch(user):
        raise Invalid("X-Tallymark-User must be 1–200 letters, digits or . @ + - _")
    return user


def actor(request: Request) -> str:
    from tallymark.server.auth import auth_enabled, require_caller

    if auth_enabled(request):
        return require_caller(request).name
    return header_user(request)


Actor = Annotated[str, Depends(actor)]
