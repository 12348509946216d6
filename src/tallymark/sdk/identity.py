"""Who the SDK acts as: ``TALLYMARK_USER`` if set, else the OS user (the embedded home's identity,
and the ``X-Tallymark-User`` a ``--no-auth`` server trusts until authentication lands)."""

from __future__ import annotations

import getpass
import os


def current_user() -> str:
    user = os.environ.get("TALLYMARK_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
