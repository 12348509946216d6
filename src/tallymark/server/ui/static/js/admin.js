// The admin pages (/-/admin, /-/admin/audit): their writes go to the REST admin routes
// (/api/v1/admin/...) with fetch, the session's CSRF token in X-Tallymark-CSRF, and JSON bodies.
// After a write the page is fetched again and its server-rendered (escaped) body swapped in.
// Nothing here writes user data as HTML: text goes in with textContent only.
//
// A new API key is answered once by POST /api/v1/admin/keys and shown once, in #new-key (outside
// the swapped body). It is not kept anywhere else: "Done" (or leaving the page) forgets it.

const API = "/api/v1/admin";

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "tallymark_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function errorMessage(resp) {
  try {
    const body = await resp.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    /* not JSON */
  }
  return `${resp.status} ${resp.statusText}`;
}

async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const csrf = csrfToken();
  if (csrf) headers["X-Tallymark-CSRF"] = csrf;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(API + path, init);
  if (!resp.ok) throw new Error(await errorMessage(resp));
  return resp.json();
}

const enc = encodeURIComponent;

function statusBox() {
  return document.getElementById("admin-status") || document.getElementById("audit-status");
}

function say(message, isError = false) {
  const box = statusBox();
  if (!box) return;
  box.textContent = message;
  box.classList.toggle("error", isError);
  box.hidden = false;
}

// Fetch this page again and replace its body (#admin-body or #audit-body) with the fresh one.
async function reloadBody() {
  const id = document.getElementById("admin-body") ? "admin-body" : "audit-body";
  const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
  const current = document.getElementById(id);
  if (!resp.ok || !current) {
    window.location.reload();
    return;
  }
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = doc.getElementById(id);
  if (!fresh) {
    window.location.reload();
    return;
  }
  current.replaceWith(document.adoptNode(fresh));
}

// Run a write: disable the control, say what happened, refresh the body.
async function run(control, work, done) {
  if (control) control.disabled = true;
  const box = statusBox();
  if (box) box.hidden = true; // the previous message is not about this write
  try {
    const result = await work();
    await reloadBody();
    say(done(result));
    return result;
  } catch (exc) {
    say(exc.message || String(exc), true);
    return null;
  } finally {
    if (control && control.isConnected) control.disabled = false;
  }
}

// A destructive button asks again on its first click: its label becomes data-confirm for 4 s.
function confirmed(button) {
  if (button.dataset.armed === "1") return true;
  button.dataset.armed = "1";
  const label = button.textContent;
  button.textContent = button.dataset.confirm || "Sure?";
  button.classList.add("armed");
  setTimeout(() => {
    if (!button.isConnected) return;
    button.dataset.armed = "";
    button.textContent = label;
    button.classList.remove("armed");
  }, 4000);
  return false;
}

function showKey(created) {
  const box = document.getElementById("new-key");
  if (!box) return;
  document.getElementById("new-key-title").textContent =
    `New API key #${created.id} for ${created.user}` + (created.name ? ` (${created.name})` : "");
  document.getElementById("new-key-value").textContent = created.key;
  box.hidden = false;
}

function forgetKey() {
  const box = document.getElementById("new-key");
  if (!box) return;
  document.getElementById("new-key-value").textContent = "";
  box.hidden = true;
}

function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    out[el.name] = el.type === "checkbox" ? el.checked : el.value.trim();
  }
  return out;
}

const FORMS = {
  "add-user-form": (v) => [
    () => call("POST", "/users", { name: v.name, display_name: v.display_name || null, admin: v.admin }),
    (u) => `User ${u.name} added${u.isAdmin ? " (server admin)" : ""}.`,
  ],
  "create-workspace-form": (v) => [
    () => call("POST", "/workspaces", { name: v.name }),
    (w) => `Workspace ${w.name} created.`,
  ],
  "set-member-form": (v) => [
    () => call("PUT", `/workspaces/${enc(v.workspace)}/members/${enc(v.user)}`, { role: v.role, approver: v.approver }),
    (m) => `${m.user} is now ${m.role} of ${m.workspace}${m.approver ? ", approver" : ""}.`,
  ],
  "create-key-form": (v) => [
    () => call("POST", "/keys", { user: v.user, name: v.name || null, expires: v.expires || null }),
    (k) => `Key #${k.id} (${k.prefix}…) created for ${k.user}.`,
  ],
};

async function onSubmit(ev) {
  const form = ev.target;
  const make = FORMS[form.id];
  if (!make) return;
  ev.preventDefault();
  const [work, done] = make(formValues(form));
  const button = form.querySelector("button[type=submit]");
  if (form.id === "create-key-form") forgetKey();
  const result = await run(button, work, done);
  if (result && form.id === "create-key-form") showKey(result);
}

async function onClick(ev) {
  const t = ev.target.closest && ev.target.closest("button");
  if (!t) return;
  if (t.id === "new-key-copy") {
    const text = document.getElementById("new-key-value").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    t.textContent = "Copied";
    setTimeout(() => (t.textContent = "Copy"), 1200);
    return;
  }
  if (t.id === "new-key-dismiss") {
    forgetKey();
    return;
  }
  if (t.id === "sign-checkpoint") {
    await run(
      t,
      () => call("POST", "/audit/checkpoint"),
      (cp) => `Checkpoint signed: ${cp.size} entries, head ${cp.head.slice(0, 16)}… (verifier key ${cp.verifierKey}).`,
    );
    return;
  }
  if (t.dataset.revokeKey) {
    if (!confirmed(t)) return;
    const id = t.dataset.revokeKey;
    await run(t, () => call("POST", `/keys/${enc(id)}/revoke`), () => `Key #${id} revoked.`);
    return;
  }
  if (t.dataset.disableUser) {
    if (!confirmed(t)) return;
    const name = t.dataset.disableUser;
    await run(t, () => call("POST", `/users/${enc(name)}/disable`), () => `User ${name} disabled.`);
    return;
  }
  const row = t.closest("tr[data-member]");
  if (!row) return;
  const ws = row.dataset.workspace;
  const user = row.dataset.member;
  if (t.dataset.saveMember) {
    const role = row.querySelector("select[name=role]").value;
    const approver = row.querySelector("input[name=approver]").checked;
    await run(
      t,
      () => call("PUT", `/workspaces/${enc(ws)}/members/${enc(user)}`, { role, approver }),
      (m) => `${m.user} is now ${m.role} of ${m.workspace}${m.approver ? ", approver" : ""}.`,
    );
  } else if (t.dataset.removeMember) {
    if (!confirmed(t)) return;
    await run(t, () => call("DELETE", `/workspaces/${enc(ws)}/members/${enc(user)}`), () => `${user} removed from ${ws}.`);
  }
}

document.addEventListener("submit", onSubmit);
document.addEventListener("click", onClick);
