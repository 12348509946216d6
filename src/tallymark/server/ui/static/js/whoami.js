// The header badge (who is logged in, their role in this workspace, log out) and role-aware
// buttons: with authentication on, the Approve/Reject buttons are shown only to approvers of the
// page's workspace. The server refuses what a role may not do anyway; this only spares the click.
// Text is set with textContent only.

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "tallymark_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

function pageWorkspace() {
  const first = window.location.pathname.split("/").filter(Boolean)[0] || "";
  return ["-", "api", "clientlib", "login", "docs"].includes(first) ? "" : decodeURIComponent(first);
}

function badge(me, workspace) {
  const box = document.createElement("span");
  box.id = "whoami";
  box.className = "whoami";
  const name = document.createElement("strong");
  name.textContent = me.user;
  box.append(name);
  const role = workspace ? (me.roles || {})[workspace] : null;
  const parts = [];
  if (role) parts.push(role + ((me.approver || []).includes(workspace) ? ", approver" : ""));
  if (me.admin) parts.push("server admin");
  if (parts.length) {
    const r = document.createElement("span");
    r.className = "role";
    r.textContent = ` · ${parts.join(" · ")}`;
    box.append(r);
  }
  if (me.method === "session") {
    const form = document.createElement("form");
    form.method = "post";
    form.action = "/logout";
    const csrf = document.createElement("input");
    csrf.type = "hidden";
    csrf.name = "csrf";
    csrf.value = csrfToken();
    const out = document.createElement("button");
    out.type = "submit";
    out.textContent = "Log out";
    form.append(csrf, out);
    box.append(form);
  }
  return box;
}

function loginLink() {
  const a = document.createElement("a");
  a.id = "whoami";
  a.href = `/login?next=${encodeURIComponent(window.location.pathname)}`;
  a.textContent = "Log in";
  return a;
}

// Server admins get a link to the admin pages (/-/admin answers 404 to everyone else).
function adminLink() {
  const a = document.createElement("a");
  a.id = "admin-link";
  a.href = "/-/admin";
  a.textContent = "Admin";
  return a;
}

function applyRoles(me, workspace) {
  if (!workspace) return;
  const approver = (me.approver || []).includes(workspace);
  if (approver) return;
  for (const cell of document.querySelectorAll("td.decide")) {
    for (const el of cell.querySelectorAll("button[data-action], input.decision-comment")) el.hidden = true;
    const note = document.createElement("span");
    note.className = "muted not-approver";
    note.textContent = `only an approver of ${workspace} other than the requester decides`;
    cell.append(note);
  }
}

export async function initWhoami() {
  const nav = document.querySelector("header.top nav.links");
  if (!nav) return;
  let me;
  try {
    const resp = await fetch("/-/me", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (!resp.ok) return;
    me = await resp.json();
  } catch {
    return;
  }
  if (!me.auth) return; // a --no-auth server or `tallymark ui`: the local identity, nothing to show
  const workspace = pageWorkspace();
  nav.prepend(me.user ? badge(me, workspace) : loginLink());
  if (me.admin) nav.prepend(adminLink());
  // The "acting as" field is the --no-auth identity: with authentication on, who you are is the login.
  const acting = document.getElementById("acting-as");
  if (acting) acting.hidden = true;
  if (me.user) applyRoles(me, workspace);
}
