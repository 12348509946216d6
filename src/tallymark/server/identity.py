"""Who is asking: the identity seam every write goes through.

Until authentication lands (API keys → users), a ``--no-auth`` server is loopback-only and trusts the
``X-Tallymark-User`` header the SDK sends (``TALLYMARK_USER`` or the OS user); without the header the
actor is ``anonymous``. The auth work replaces :func:`actor` and nothing else.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request

from tallymark.service.errors import Invalid

_USER_RE = re.compile(r"[\w.@+-]{1,200}")


def actor(request: Request) -> str:
    user = request.headers.get("x-tallymark-user")
    if user is None:
        return request.app.state.user
    if not _USER_RE.fullmatch(user):
        raise Invalid("X-Tallymark-User must be 1–200 letters, digits or . @ + - _")
    return user


Actor = Annotated[str, Depends(actor)]
