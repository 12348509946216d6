"""``tallymark admin``: set up and manage users, workspaces, memberships and API keys on a store.

These commands work directly on a store (``--home DIR`` for an embedded home, ``--db URL`` for a
server's database) and act as its local administrator: whoever can open the database can change it
anyway. They are thin shells over tallymark.service.{bootstrap,users,workspaces,memberships,apikeys,
presign,sessions}.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import typer
from rich.table import Table

from tallymark.cli import HomeOpt, _db_shown, _fail, _row, _settings, app, console, err
from tallymark.termsafe import markup

T = TypeVar("T")

UserArg = Annotated[str, typer.Argument(help="A user name (see `admin users list`).", show_default=False)]
WorkspaceArg = Annotated[str, typer.Argument(help="A workspace name.", show_default=False)]

admin_app = typer.Typer(
    help="Users, workspaces, roles and API keys (start with `admin init`).", no_args_is_help=True
)
users_app = typer.Typer(help="Add, list and disable users.", no_args_is_help=True)
workspaces_app = typer.Typer(help="Create and list workspaces.", no_args_is_help=True)
members_app = typer.Typer(
    help="Who has which role (admin, member, viewer) in a workspace, and who approves.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
sessions_app = typer.Typer(help="List and end users' UI sessions.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
admin_app.add_typer(users_app, name="users")
admin_app.add_typer(workspaces_app, name="workspaces")
admin_app.add_typer(members_app, name="members")
admin_app.add_typer(keys_app, name="keys")
admin_app.add_typer(sessions_app, name="sessions")

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL of a server's store: sqlite:///PATH or postgresql://… (default: the home's).",
        show_default=False,
    ),
]


@contextmanager
def _store(home: Path | None, db: str | None) -> Iterator[Any]:
    """The store's database, migrated, without touching its blob store (these commands need none)."""
    from tallymark.service.store import Store
    from tallymark.store import migrate
    from tallymark.store.blobfactory import open_blob_store
    from tallymark.store.db import Database

    settings = _settings(home, db)
    try:
        database = Database(settings.database_url)
    except (ValueError, OSError) as exc:
        _fail(f"cannot open the store {_db_shown(settings.database_url)}: {exc}")
    try:
        if database.dialect == "sqlite" and database.read_only is None:
            settings.home_path.mkdir(parents=True, exist_ok=True)
        if database.read_only is None:
            migrate.upgrade(database.engine)
        else:
            migrate.check(database.engine)
        # Building a blob store has no side effects (no folder, no network); it is never used here.
        store = Store(settings=settings, db=database, blobs=open_blob_store(settings.blobs_url))
    except Exception as exc:
        database.dispose()
        _fail(f"cannot open the store {_db_shown(settings.database_url)}: {exc}")
    try:
        yield store
    finally:
        database.dispose()


UrlOpt = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Administer this server over HTTP (/api/v1/admin) instead of a store; the admin's API key "
        "comes from $TALLYMARK_API_KEY.",
        show_default=False,
    ),
]

# (method, path under /api/v1/admin, JSON body or query, the reply's field holding the result)
Remote = tuple[str, str, dict[str, Any] | None, str | None]


def _remote(url: str, call: Remote) -> Any:
    """One admin request to a server, as the admin whose key is in the client settings."""
    import httpx

    from tallymark.settings import ClientSettings

    method, path, data, field = call
    key = ClientSettings.from_env().api_key
    if not key:
        _fail("--url needs a server admin's API key: set $TALLYMARK_API_KEY")
    target = url.rstrip("/") + "/api/v1/admin" + path
    kwargs: dict[str, Any] = {"params": data} if method == "GET" else {"json": data or {}}
    try:
        r = httpx.request(method, target, headers={"Authorization": f"Bearer {key}"}, timeout=30, **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach {url}: {exc}")
    try:
        body = r.json()
    except ValueError:
        body = None
    if r.status_code >= 400:
        err_ = (body or {}).get("error") if isinstance(body, dict) else None
        message = err_.get("message") if isinstance(err_, dict) else r.text[:300]
        if r.status_code == 404 and "/admin" in target and not message:
            message = "not found (or the key is not a server admin's)"
        _fail(f"{url}: {r.status_code} {message}")
    return body[field] if field else body


def _do(
    home: Path | None,
    db: str | None,
    fn: Callable[[Any, Any], T],
    url: str | None = None,
    remote: Remote | None = None,
) -> T:
    """Run ``fn(store, caller)`` as the store's local admin, or with ``url`` the same operation on a
    server over HTTP (``remote``); errors become a clean exit 1."""
    if url is not None:
        if home is not None or db is not None:
            _fail("give either --url (a server) or --home/--db (a store), not both")
        assert remote is not None
        result: T = _remote(url, remote)
        return result
    from tallymark.sdk.autolog.env import current_user
    from tallymark.service.caller import local_admin
    from tallymark.service.errors import ServiceError
    from tallymark.store.db import ReadOnlyDatabase

    with _store(home, db) as store:
        try:
            return fn(store, local_admin(current_user()))
        except ServiceError as exc:
            _fail(exc.message)
        except ReadOnlyDatabase as exc:
            _fail(str(exc))
    raise AssertionError("unreachable")  # _fail raises


def _when(ms: int | None) -> str:
    return "" if ms is None else dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _show_new_key(new: Any, holder: str) -> None:
    # The key goes alone to stdout (so `KEY=$(tallymark admin keys create …)` works); the rest to stderr.
    expiry = f"expires {_when(new.expires_at)}" if new.expires_at else "never expires"
    err.print(
        f"API key {new.id} ({markup(new.prefix)}…) for {markup(holder)}, {expiry}. "
        "[bold]It is shown only this once[/]: store it now (the store keeps only its SHA-256)."
    )
    typer.echo(new.secret)


@admin_app.command("init")
def admin_init(
    user: Annotated[
        str | None,
        typer.Option("--user", help="Name of the first admin (default: $TALLYMARK_USER or your OS user)."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(help="Key lifetime, e.g. 90d, 12h, 30m (default: never).")
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
) -> None:
    """Create the first server admin and print their API key, once.

    Refuses when the store has an admin already: there are no default credentials, and this cannot
    take over a server that is set up. Creates the schema on an empty database."""
    from tallymark.sdk.autolog.env import current_user
    from tallymark.service.bootstrap import init_admin

    name = user or current_user()
    if user is None:
        from tallymark.service.errors import Invalid
        from tallymark.service.users import check_user_name

        try:
            check_user_name(name)
        except Invalid as exc:
            _fail(f"{exc.message}; name the admin with --user NAME")
    new = _do(home, db, lambda store, _caller: init_admin(store, name, expires))
    err.print(f"server admin [bold]{markup(name)}[/] created.")
    _show_new_key(new, name)


# ----- users -----


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name: ASCII letters, digits and _ . @ + -.")],
    display_name: Annotated[str | None, typer.Option(help="Name shown in the UI.")] = None,
    admin: Annotated[
        bool, typer.Option("--admin", help="Make them a server admin (manages users and workspaces).")
    ] = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Add a user. They get no role and no key yet: see `admin members add` and `admin keys create`."""
    from tallymark.service.users import add_user

    body = {"name": name, "display_name": display_name, "admin": admin}
    u = _do(home, db, lambda store, caller: add_user(store, caller, name, display_name, admin), url,
            ("POST", "/users", body, None))  # fmt: skip
    console.print(f"added user {markup(u['name'])}" + (" (server admin)" if u["isAdmin"] else ""))


@users_app.command("list")
def users_list(home: HomeOpt = None, db: DbOpt = None, url: UrlOpt = None) -> None:
    """List users with their workspaces and usable keys."""
    from tallymark.service.users import list_users

    rows = _do(home, db, list_users, url, ("GET", "/users", None, "users"))
    t = Table(title=f"{len(rows)} user(s)")
    for c in ("name", "display name", "admin", "workspaces", "usable keys"):
        t.add_column(c, overflow="fold")
    for c in ("created", "disabled"):
        t.add_column(c, overflow="fold")
    for u in rows:
        _row(
            t,
            u["name"],
            u["displayName"] or "",
            "yes" if u["isAdmin"] else "",
            u["workspaces"],
            u["activeKeys"],
            _when(u["createdAt"]),
            _when(u["disabledAt"]),
        )
    console.print(t)


@users_app.command("disable")
def users_disable(name: UserArg, home: HomeOpt = None, db: DbOpt = None, url: UrlOpt = None) -> None:
    """Disable a user: none of their API keys authenticates from now on.

    The keys are not revoked (they stay listed as they were, state "user disabled"); revoke them
    with `admin keys revoke ID` if they may have leaked. The last enabled server admin cannot be
    disabled."""
    from tallymark.service.users import disable_user

    call: Remote = ("POST", f"/users/{quote(name, safe='')}/disable", None, None)
    u = _do(home, db, lambda store, caller: disable_user(store, caller, name), url, call)
    n = u["unrevokedKeys"]
    if n == 0:
        console.print(f"disabled {markup(u['name'])} (they hold no unrevoked key)")
    else:
        console.print(
            f"disabled {markup(u['name'])}: their {n} unrevoked key(s) no longer authenticate; they are "
            "not revoked (`tallymark admin keys revoke ID` does that)"
        )


# ----- workspaces -----


@workspaces_app.command("create")
def workspaces_create(
    name: Annotated[str, typer.Argument(help="Name: no / or \\, not . or .., at most 200 characters.")],
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create an empty workspace (then give people roles in it with `admin members add`)."""
    from tallymark.service.workspaces import create_workspace

    call: Remote = ("POST", "/workspaces", {"name": name}, None)
    w = _do(home, db, lambda store, caller: create_workspace(store, caller, name), url, call)
    console.print(f"created workspace {markup(w['name'])}")


@workspaces_app.command("list")
def workspaces_list(home: HomeOpt = None, db: DbOpt = None, url: UrlOpt = None) -> None:
    """List workspaces with their member and project counts."""
    from tallymark.service.workspaces import list_workspaces

    rows = _do(home, db, list_workspaces, url, ("GET", "/workspaces", None, "workspaces"))
    t = Table(title=f"{len(rows)} workspace(s)")
    for c in ("name", "members", "projects", "created"):
        t.add_column(c)
    for w in rows:
        _row(t, w["name"], w["members"], w["projects"], _when(w["createdAt"]))
    console.print(t)


# ----- members -----


@members_app.command("add")
def members_add(
    workspace: WorkspaceArg,
    user: UserArg,
    role: Annotated[
        str,
        typer.Option(
            help="admin (members, keys, delete), member (log, request promotions) or viewer (read)."
        ),
    ],
    approver: Annotated[
        bool,
        typer.Option("--approver", help="May approve others' production requests here (never their own)."),
    ] = False,
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Give USER a role in WORKSPACE, or change the role they have there."""
    from tallymark.service.memberships import add_member

    path = f"/workspaces/{quote(workspace, safe='')}/members/{quote(user, safe='')}"
    call: Remote = ("PUT", path, {"role": role, "approver": approver}, None)
    m = _do(
        home, db, lambda store, caller: add_member(store, caller, workspace, user, role, approver), url, call
    )
    what = f"{markup(m['role'])}{' and approver' if m['approver'] else ''}"
    if m["previous"] is None:
        console.print(f"{markup(m['user'])} is now {what} in {markup(m['workspace'])}")
    else:
        p = m["previous"]
        was = f"{markup(p['role'])}{' and approver' if p['approver'] else ''}"
        console.print(f"{markup(m['user'])} is now {what} in {markup(m['workspace'])} (was {was})")


@members_app.command("list")
def members_list(workspace: WorkspaceArg, home: HomeOpt = None, db: DbOpt = None, url: UrlOpt = None) -> None:
    """List the members of WORKSPACE with their roles."""
    from tallymark.service.memberships import list_members

    call: Remote = ("GET", f"/workspaces/{quote(workspace, safe='')}/members", None, "members")
    rows = _do(home, db, lambda store, caller: list_members(store, caller, workspace), url, call)
    t = Table(title=f"members of {markup(workspace)}")
    for c in ("user", "role", "approver", "added", "added by", "note"):
        t.add_column(c)
    for m in rows:
        note = "user disabled" if m["userDisabled"] else ""
        _row(
            t,
            m["user"],
            m["role"],
            "yes" if m["approver"] else "",
            _when(m["createdAt"]),
            m["createdBy"],
            note,
        )
    console.print(t)


@members_app.command("remove")
def members_remove(
    workspace: WorkspaceArg, user: UserArg, home: HomeOpt = None, db: DbOpt = None, url: UrlOpt = None
) -> None:
    """Take USER out of WORKSPACE (what they did there stays attributed to them)."""
    from tallymark.service.memberships import remove_member

    path = f"/workspaces/{quote(workspace, safe='')}/members/{quote(user, safe='')}"
    m = _do(home, db, lambda store, caller: remove_member(store, caller, workspace, user), url,
            ("DELETE", path, None, None))  # fmt: skip
    console.print(f"removed {markup(m['user'])} ({markup(m['role'])}) from {markup(m['workspace'])}")


# ----- keys -----


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option("--user", help="Whose key it is.")],
    name: Annotated[str | None, typer.Option(help="A label, e.g. 'laptop' or 'ci'.")] = None,
    expires: Annotated[
        str | None, typer.Option(help="Lifetime, e.g. 90d, 12h, 30m (default: never).")
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Create an API key for a user and print it, once (only its SHA-256 is stored)."""
    from tallymark.service.apikeys import create_key

    if url is not None:
        from types import SimpleNamespace

        body = {"user": user, "name": name, "expires": expires}
        made = _do(home, db, lambda store, caller: None, url, ("POST", "/keys", body, None))
        new = SimpleNamespace(
            id=made["id"],
            user=made["user"],
            prefix=made["prefix"],
            expires_at=made["expiresAt"],
            secret=made["key"],
        )
    else:
        new = _do(home, db, lambda store, caller: create_key(store, caller, user, name, expires))
    _show_new_key(new, new.user)


@keys_app.command("list")
def keys_list(
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """List API keys by id and prefix with their state and last use (never the keys themselves)."""
    from tallymark.service.apikeys import list_keys

    call: Remote = ("GET", "/keys", {"user": user} if user else None, "keys")
    rows = _do(home, db, lambda store, caller: list_keys(store, caller, user), url, call)
    t = Table(title=f"{len(rows)} API key(s)")
    for c in ("id", "user", "name", "prefix", "state"):
        t.add_column(c, overflow="fold", no_wrap=c in ("id", "prefix"))
    for c in ("created", "expires", "last used"):
        t.add_column(c, overflow="fold")
    for k in rows:
        _row(
            t,
            k["id"],
            k["user"],
            k["name"] or "",
            k["prefix"] + "…",
            k["state"],
            _when(k["createdAt"]),
            _when(k["expiresAt"]) or "never",
            _when(k["lastUsedAt"]) or "never",
        )
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (see `admin keys list`).")],
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Revoke an API key for good: it never authenticates again."""
    from tallymark.service.apikeys import revoke_key

    k = _do(home, db, lambda store, caller: revoke_key(store, caller, key_id), url,
            ("POST", f"/keys/{key_id}/revoke", None, None))  # fmt: skip
    console.print(f"revoked API key {k['id']} ({markup(k['prefix'])}…) of {markup(k['user'])}")


# ----- login links and sessions -----


@admin_app.command("presign")
def presign(
    user: Annotated[str, typer.Option("--user", help="Who the link logs in.")],
    workspace: Annotated[
        str | None, typer.Option(help="Land on this workspace (the user must be a member of it).")
    ] = None,
    path: Annotated[
        str | None, typer.Option(help="Land on this page of the UI, e.g. /risk/fraud (a local path).")
    ] = None,
    expires: Annotated[str, typer.Option(help="How long the link can be opened: 5s to 5m.")] = "5m",
    session: Annotated[str, typer.Option(help="How long the session it opens lasts: 30m to 12h.")] = "12h",
    public_url: Annotated[
        str | None,
        typer.Option(help="Base URL users reach the server at (default $TALLYMARK_PUBLIC_URL)."),
    ] = None,
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """Print a single-use login link that logs USER into the UI and lands on a page.

    The link is signed with the server secret (setting secret_path, default HOME/server.secret):
    use the server's --home, or set $TALLYMARK_SECRET_PATH to the server's file; or ask the server
    itself with --url and an admin's key (the link then starts with the server's public URL).
    Opening it a second time answers 410. Issuing, using and replaying it are audited."""
    from dataclasses import replace
    from types import SimpleNamespace

    from tallymark.service.presign import issue_link
    from tallymark.service.secret import SecretError

    if url is not None:
        if public_url:
            _fail("--public-url is the server's own setting with --url (its --public-url)")
        body = {"user": user, "workspace": workspace, "path": path, "expires": expires, "session": session}
        got = _do(home, db, lambda store, caller: None, url, ("POST", "/links", body, None))
        link = SimpleNamespace(
            url=got["url"],
            user=got["user"],
            path=got["path"],
            expires_at=got["expiresAt"],
            session_ms=got["sessionMs"],
        )
    else:

        def issue(store: Any, caller: Any) -> Any:
            if public_url:
                store.settings = replace(store.settings, public_url=public_url)
            try:
                return issue_link(store, caller, user, workspace, path, expires, session)
            except SecretError as exc:
                _fail(str(exc))

        link = _do(home, db, issue)
    err.print(
        f"login link for {markup(link.user)} to {markup(link.path)}: opens once, until "
        f"{_when(link.expires_at)}; the session lasts {_minutes(link.session_ms)}."
    )
    typer.echo(link.url)


def _minutes(ms: int) -> str:
    m = ms // 60_000
    return f"{m // 60} h" if m % 60 == 0 else f"{m} min"


@sessions_app.command("revoke")
def sessions_revoke(
    user: Annotated[str, typer.Option("--user", help="Whose sessions end.")],
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """End every UI session of a user now (their API keys are untouched)."""
    from tallymark.service.sessions import revoke_user_sessions

    call: Remote = ("POST", f"/users/{quote(user, safe='')}/sessions/revoke", None, "revoked")
    n = _do(home, db, lambda store, caller: revoke_user_sessions(store, caller, user), url, call)
    console.print(f"ended {n} session(s) of {markup(user)}")


@sessions_app.command("list")
def sessions_list(
    user: Annotated[str, typer.Option("--user", help="Whose live sessions.")],
    home: HomeOpt = None,
    db: DbOpt = None,
    url: UrlOpt = None,
) -> None:
    """List a user's live UI sessions: how they logged in, when, until when (never the cookie)."""
    from tallymark.service.sessions import list_user_sessions

    call: Remote = ("GET", f"/users/{quote(user, safe='')}/sessions", None, "sessions")
    rows = _do(home, db, lambda store, caller: list_user_sessions(store, caller, user), url, call)
    t = Table(title=f"{len(rows)} live session(s) of {markup(user)}")
    for c in ("id", "login", "created", "last seen", "expires"):
        t.add_column(c)
    for r in rows:
        how = f"key {r['keyId']}" if r["method"] == "key" and r["keyId"] else r["method"]
        _row(t, r["id"], how, _when(r["createdAt"]), _when(r["lastSeenAt"]), _when(r["expiresAt"]))
    console.print(t)
