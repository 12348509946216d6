"""``/-/admin``: users, workspaces and their members, API keys (server admins only; 404 to others).

What a server admin does with ``tallymark admin …``, on one page: every user (admin?, disabled,
created, workspaces, usable keys) with a Disable button; every workspace with its members (role,
approver) that can be changed or removed; every API key (id, user, name, prefix, created, last
used, expires, state) with a Revoke button; forms to add a user, create a workspace, add a member
and create a key.

The page only reads. Its writes are the REST admin routes (``/api/v1/admin/...``, the same checks
and audit entries as the CLI), sent by ``static/js/admin.js`` with ``fetch`` and the session's CSRF
token; after each write the script fetches this page again and swaps ``#admin-body``. A new key is
answered once by ``POST /api/v1/admin/keys`` and shown once, in ``#new-key`` (outside the swapped
body, with a Copy button); the server never has it again, so no reload can show it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tallymark.server.permissions import need
from tallymark.server.routes.deps import CallerDep
from tallymark.server.ui import assets, fmt, urls
from tallymark.server.ui.html import Markup, el
from tallymark.server.ui.layout import page
from tallymark.service import apikeys, memberships, users, workspaces
from tallymark.service.caller import ROLES, Caller
from tallymark.service.store import Store

__all__ = ["admin_page", "admin_tabs", "router"]

router = APIRouter(include_in_schema=False)


def admin_tabs(current: str) -> Markup:
    """The two admin pages' tabs (``current``: "admin" or "audit")."""
    tabs = (("admin", "/-/admin", "Users, workspaces and keys"), ("audit", "/-/admin/audit", "Audit log"))
    return el(
        "nav",
        {"class": "tabs admin-tabs"},
        [
            el("a", {"href": href, "class": "tab current" if name == current else "tab"}, label)
            for name, href, label in tabs
        ],
    )


def admin_script() -> Markup:
    return el("script", {"type": "module", "src": urls.static("js/admin.js", assets.version())})


def _yes(flag: bool) -> Markup:
    return el("span", {"class": "flag yes"}, "yes") if flag else el("span", {"class": "muted"}, "no")


def _confirm_button(label: str, attrs: dict[str, Any]) -> Markup:
    """A button that asks again on its first click (admin.js): no dialog, no accidental revoke."""
    return el("button", {"type": "button", "class": "small danger", **attrs}, label)


def _users_table(rows: list[dict[str, Any]], me: str) -> Markup:
    head = el(
        "tr",
        None,
        [el("th", None, h) for h in ("user", "display name", "server admin", "disabled", "created")],
        el("th", {"class": "num"}, "workspaces"),
        el("th", {"class": "num"}, "usable keys"),
        el("th", None, ""),
    )
    body = [
        el(
            "tr",
            {"data-user": u["name"], "class": "disabled" if u["disabledAt"] else None},
            el("td", {"class": "name"}, u["name"]),
            el("td", None, u["displayName"] or ""),
            el("td", None, _yes(u["isAdmin"])),
            el(
                "td",
                None,
                fmt.when(u["disabledAt"]) if u["disabledAt"] else el("span", {"class": "muted"}, "no"),
            ),
            el("td", {"class": "nowrap"}, fmt.when(u["createdAt"]), _by(u.get("createdBy"))),
            el("td", {"class": "num"}, fmt.number(u["workspaces"])),
            el("td", {"class": "num"}, fmt.number(u["activeKeys"])),
            el(
                "td",
                {"class": "actions"},
                None
                if u["disabledAt"] or u["name"] == me  # no locking oneself out from here
                else _confirm_button(
                    "Disable", {"data-disable-user": u["name"], "data-confirm": "Disable for good?"}
                ),
            ),
        )
        for u in rows
    ]
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table",
            {"class": "grid compact", "id": "users"},
            el("thead", None, head),
            el("tbody", None, body),
        ),
    )


def _by(who: str | None) -> Markup | None:
    return el("span", {"class": "muted by"}, f" by {who}") if who else None


def _role_select(current: str, attrs: dict[str, Any] | None = None) -> Markup:
    return el(
        "select",
        {"name": "role", **(attrs or {})},
        [el("option", {"value": r, "selected": r == current}, r) for r in ROLES],
    )


def _members_table(ws: str, rows: list[dict[str, Any]]) -> Markup:
    if not rows:
        return el("p", {"class": "muted empty-note"}, "No members yet.")
    head = el("tr", None, [el("th", None, h) for h in ("user", "role", "approver", "added", "")])
    body = []
    for m in rows:
        body.append(
            el(
                "tr",
                {"data-workspace": ws, "data-member": m["user"]},
                el(
                    "td",
                    {"class": "name"},
                    m["user"],
                    el("span", {"class": "muted"}, " (disabled)") if m["userDisabled"] else None,
                ),
                el("td", None, _role_select(m["role"], {"aria-label": f"role of {m['user']} in {ws}"})),
                el(
                    "td",
                    None,
                    el(
                        "input",
                        {
                            "type": "checkbox",
                            "name": "approver",
                            "checked": m["approver"],
                            "aria-label": f"{m['user']} approves in {ws}",
                        },
                    ),
                ),
                el("td", {"class": "nowrap"}, fmt.when(m["createdAt"]), _by(m.get("createdBy"))),
                el(
                    "td",
                    {"class": "actions"},
                    el("button", {"type": "button", "class": "small", "data-save-member": "1"}, "Save"),
                    " ",
                    _confirm_button("Remove", {"data-remove-member": "1", "data-confirm": "Remove?"}),
                ),
            )
        )
    return el(
        "table",
        {"class": "grid compact members", "data-workspace": ws},
        el("thead", None, head),
        el("tbody", None, body),
    )


def _workspaces_section(ws_rows: list[dict[str, Any]], members: dict[str, list[dict[str, Any]]]) -> Markup:
    if not ws_rows:
        return el("p", {"class": "muted empty-note"}, "No workspaces yet: create one below.")
    cards = []
    for w in ws_rows:
        cards.append(
            el(
                "section",
                {"class": "ws-card", "data-workspace": w["name"]},
                el(
                    "h3",
                    None,
                    el("a", {"href": urls.workspace(w["name"])}, w["name"]),
                    el(
                        "span",
                        {"class": "muted"},
                        f" · {fmt.number(w.get('members', 0))} member(s)"
                        f" · {fmt.number(w.get('projects', 0))} project(s)",
                    ),
                ),
                _members_table(w["name"], members.get(w["name"], [])),
            )
        )
    return el("div", {"class": "ws-cards", "id": "workspaces"}, cards)


def _keys_table(rows: list[dict[str, Any]]) -> Markup:
    if not rows:
        return el("p", {"class": "muted empty-note"}, "No API keys yet.")
    cols = ("id", "user", "name", "prefix", "created", "last used", "expires", "state", "")
    head = el("tr", None, [el("th", {"class": "num"} if c == "id" else None, c) for c in cols])
    body = []
    for k in rows:
        state = k["state"]
        body.append(
            el(
                "tr",
                {"data-key-id": k["id"], "class": f"key-{state.replace(' ', '-')}"},
                el("td", {"class": "num"}, str(k["id"])),
                el("td", {"class": "name"}, k["user"]),
                el("td", None, k["name"] or ""),
                el("td", None, el("code", None, k["prefix"] + "…")),
                el("td", {"class": "nowrap"}, fmt.when(k["createdAt"]), _by(k.get("createdBy"))),
                el(
                    "td",
                    {"class": "nowrap"},
                    fmt.when(k["lastUsedAt"]) or el("span", {"class": "muted"}, "never"),
                ),
                el(
                    "td",
                    {"class": "nowrap"},
                    fmt.when(k["expiresAt"]) or el("span", {"class": "muted"}, "never"),
                ),
                el(
                    "td",
                    {"class": "nowrap"},
                    el("span", {"class": f"state state-{state.replace(' ', '-')}"}, state),
                    el("span", {"class": "muted"}, f" {fmt.when(k['revokedAt'])}")
                    if k["revokedAt"]
                    else None,
                ),
                el(
                    "td",
                    {"class": "actions"},
                    None
                    if k["revokedAt"]
                    else _confirm_button(
                        "Revoke", {"data-revoke-key": k["id"], "data-confirm": "Revoke for good?"}
                    ),
                ),
            )
        )
    return el(
        "div",
        {"class": "table-wrap"},
        el(
            "table", {"class": "grid compact", "id": "keys"}, el("thead", None, head), el("tbody", None, body)
        ),
    )


def _field(label: str, control: Markup) -> Markup:
    return el("label", {"class": "field"}, el("span", None, label), control)


def _options(names: list[str]) -> list[Markup]:
    return [el("option", {"value": n}, n) for n in names]


def _forms(user_names: list[str], ws_names: list[str]) -> Markup:
    add_user = el(
        "form",
        {"class": "admin-form", "id": "add-user-form"},
        el("h3", None, "Add a user"),
        _field(
            "name", el("input", {"name": "name", "required": True, "maxlength": 200, "autocomplete": "off"})
        ),
        _field(
            "display name", el("input", {"name": "display_name", "maxlength": 200, "autocomplete": "off"})
        ),
        el("label", {"class": "check"}, el("input", {"type": "checkbox", "name": "admin"}), " server admin"),
        el("button", {"type": "submit", "class": "primary"}, "Add user"),
    )
    create_ws = el(
        "form",
        {"class": "admin-form", "id": "create-workspace-form"},
        el("h3", None, "Create a workspace"),
        _field(
            "name", el("input", {"name": "name", "required": True, "maxlength": 200, "autocomplete": "off"})
        ),
        el("button", {"type": "submit", "class": "primary"}, "Create workspace"),
    )
    add_member = el(
        "form",
        {"class": "admin-form", "id": "set-member-form"},
        el("h3", None, "Add a member (or change their role)"),
        _field("workspace", el("select", {"name": "workspace", "required": True}, _options(ws_names))),
        _field("user", el("select", {"name": "user", "required": True}, _options(user_names))),
        _field("role", _role_select("member")),
        el("label", {"class": "check"}, el("input", {"type": "checkbox", "name": "approver"}), " approver"),
        el("button", {"type": "submit", "class": "primary"}, "Save member"),
    )
    create_key = el(
        "form",
        {"class": "admin-form", "id": "create-key-form"},
        el("h3", None, "Create an API key"),
        _field("user", el("select", {"name": "user", "required": True}, _options(user_names))),
        _field(
            "name",
            el("input", {"name": "name", "maxlength": 200, "autocomplete": "off", "placeholder": "laptop"}),
        ),
        _field(
            "expires after",
            el(
                "input",
                {
                    "name": "expires",
                    "maxlength": 20,
                    "autocomplete": "off",
                    "placeholder": "90d (empty: never)",
                },
            ),
        ),
        el("button", {"type": "submit", "class": "primary"}, "Create key"),
    )
    return el("div", {"class": "admin-forms"}, add_user, create_ws, add_member, create_key)


def admin_body(store: Store, caller: Caller) -> Markup:
    """``#admin-body``: everything the page's scripts swap after a write."""
    user_rows = users.list_users(store, caller)
    ws_rows = workspaces.list_workspaces(store, caller)
    members = {w["name"]: memberships.list_members(store, caller, w["name"]) for w in ws_rows}
    key_rows = apikeys.list_keys(store, caller)
    live_users = [u["name"] for u in user_rows if not u["disabledAt"]]
    return el(
        "div",
        {"id": "admin-body"},
        el("h2", None, f"Users ({len(user_rows)})"),
        _users_table(user_rows, caller.name),
        el("h2", None, f"Workspaces and members ({len(ws_rows)})"),
        _workspaces_section(ws_rows, members),
        el("h2", None, f"API keys ({len(key_rows)})"),
        _keys_table(key_rows),
        el("h2", None, "Add"),
        _forms(live_users, [w["name"] for w in ws_rows]),
    )


def admin_page(store: Store, caller: Caller) -> HTMLResponse:
    new_key = el(
        "div",
        {"id": "new-key", "class": "new-key", "hidden": True, "role": "status"},
        el(
            "p",
            None,
            el("strong", {"id": "new-key-title"}, "New API key"),
            " — copy it now: it is not stored and will not be shown again.",
        ),
        el(
            "div",
            {"class": "new-key-row"},
            el("code", {"id": "new-key-value", "class": "secret"}, ""),
            el("button", {"type": "button", "id": "new-key-copy", "class": "small"}, "Copy"),
            el("button", {"type": "button", "id": "new-key-dismiss", "class": "small"}, "Done"),
        ),
    )
    body = [
        el("h1", None, "Administration"),
        admin_tabs("admin"),
        el(
            "p",
            {"class": "hint"},
            "The same operations as ",
            el("code", None, "tallymark admin …"),
            "; every change is recorded in the audit log.",
        ),
        el("noscript", None, el("p", {"class": "error-text"}, "Changes on this page need JavaScript.")),
        el("p", {"id": "admin-status", "class": "admin-status", "role": "status", "hidden": True}),
        new_key,
        admin_body(store, caller),
        admin_script(),
    ]
    return page("Administration", [("admin", None)], body, page_id="admin")


@router.get("/-/admin", dependencies=[need("ui.admin")])
def admin(request: Request, caller: CallerDep) -> HTMLResponse:
    return admin_page(request.app.state.store, caller)
