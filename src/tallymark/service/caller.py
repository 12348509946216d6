"""Who is calling: the one object every service function will receive (issue 9's "caller" seam).

A :class:`Caller` is built once per request (by the server's auth middleware from an API key or a
session, see :func:`tallymark.service.apikeys.authenticate`) or once per process (the SDK's local
transport and the CLI working on a store, which act as :func:`local_admin`). No service function
reads identity from anywhere else: not from a header, not from the environment.

It is immutable and holds only what permission checks need: the user, whether they are a server
admin, their role in each workspace they belong to (``admin`` | ``member`` | ``viewer``), the
workspaces where they may approve someone else's production request, and how they authenticated.
Workspaces are named, not numbered: a workspace's name is unique and never changes.

A workspace the caller is no member of has no role: :meth:`Caller.role` is None there, and a check
must treat that exactly like an object that does not exist (404, not 403), so membership of one
workspace says nothing about another's contents.

>>> c = Caller(user_id=7, name="dana", roles={"risk": "member"}, approver=frozenset({"risk"}))
>>> c.has_role("risk", "viewer"), c.has_role("risk", "admin"), c.role("other")
(True, False, None)
>>> c.may_approve("risk")
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = ["ROLES", "AuthMethod", "Caller", "Role", "local_admin", "require_server_admin"]

Role = Literal["admin", "member", "viewer"]
AuthMethod = Literal["api_key", "session", "local", "none"]

# Highest first: each role may do everything the roles after it may.
ROLES: tuple[Role, ...] = ("admin", "member", "viewer")
_RANK = {r: len(ROLES) - i for i, r in enumerate(ROLES)}


@dataclass(frozen=True)
class Caller:
    """An authenticated user as the service layer sees them (see the module docstring)."""

    user_id: int | None  # None for the embedded home's local admin, which has no users row
    name: str
    is_admin: bool = False  # server admin: manages users, workspaces, memberships and keys
    roles: Mapping[str, Role] = field(default_factory=dict)  # workspace name → role
    approver: frozenset[str] = frozenset()  # workspaces where the approver flag is set
    auth_method: AuthMethod = "api_key"
    key_id: int | None = None  # the API key that authenticated this caller, if one did
    request_id: str | None = None

    def __post_init__(self) -> None:
        # Read-only views: a caller handed to a service function cannot gain a role on the way.
        object.__setattr__(self, "roles", MappingProxyType(dict(self.roles)))
        object.__setattr__(self, "approver", frozenset(self.approver))

    def role(self, workspace: str) -> Role | None:
        """The caller's role in ``workspace``, or None when they are no member of it."""
        return self.roles.get(workspace)

    def has_role(self, workspace: str, needed: Role) -> bool:
        """True when the caller's role in ``workspace`` is ``needed`` or a higher one.

        A server admin is not silently a member of every workspace: server admins manage users,
        workspaces and memberships, and give themselves a role where they need one (so what they
        did inside a workspace is attributable to a membership, like anyone else's).
        """
        if self.auth_method == "local":
            return True
        have = self.roles.get(workspace)
        return have is not None and _RANK[have] >= _RANK[needed]

    def may_approve(self, workspace: str) -> bool:
        """The approver flag in ``workspace`` (never a licence to approve one's own request)."""
        if self.auth_method == "local":
            return True
        return workspace in self.approver and workspace in self.roles


def local_admin(name: str) -> Caller:
    """The caller of the embedded home and of the CLI working directly on a store.

    Whoever can open the database file can change every row in it anyway, so permission checks
    would protect nothing there: a local caller has every role in every workspace and may approve
    (still never their own request: that rule is about the name). The name is recorded as the actor.
    """
    return Caller(user_id=None, name=name, is_admin=True, auth_method="local")


def require_server_admin(caller: Caller, what: str) -> None:
    """Raise Forbidden unless ``caller`` is a server admin (``what`` names the refused operation)."""
    from tallymark.service.errors import Forbidden

    if not caller.is_admin:
        raise Forbidden(f"{what} needs a server admin; {caller.name} is not one")
