"""Who the SDK acts as: ``ClientSettings.user`` (``TALLYMARK_USER`` if set, else the OS user) — the
embedded home's identity, and the ``X-Tallymark-User`` a ``--no-auth`` server trusts."""

from __future__ import annotations

from tallymark.settings import ClientSettings


def current_user() -> str:
    """The user of settings read from the environment now (an Experiment or API keeps its own)."""
    return ClientSettings.from_env().user
