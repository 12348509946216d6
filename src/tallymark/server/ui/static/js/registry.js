// Artifact and model pages: copy a full sha256 on click; on a model page, the "acting as" identity
// and the Approve/Reject buttons of pending status requests (POST /api/v1/requests/{id}/approve|reject).
// Nothing here writes user data as HTML: messages go in with textContent, and after a decision the
// page's own server-rendered (escaped) #model-body is fetched again and swapped in.

const USER_KEY = "tallymark.actingAs";
const USER_RE = /^[\w.@+-]{1,200}$/;

function storedUser() {
  try {
    return (window.localStorage.getItem(USER_KEY) || "").trim();
  } catch {
    return "";
  }
}

function initShaCopy() {
  document.addEventListener("click", (ev) => {
    const code = ev.target.closest && ev.target.closest("code.sha[data-sha]");
    if (!code) return;
    if (navigator.clipboard) navigator.clipboard.writeText(code.dataset.sha).catch(() => {});
    code.classList.add("copied");
    setTimeout(() => code.classList.remove("copied"), 900);
  });
}

function initActingAs() {
  const form = document.getElementById("acting-as");
  const input = document.getElementById("acting-as-user");
  if (!form || !input) return;
  input.value = storedUser();
  const save = () => {
    const user = input.value.trim();
    input.classList.toggle("invalid", user !== "" && !USER_RE.test(user));
    try {
      if (user) window.localStorage.setItem(USER_KEY, user);
      else window.localStorage.removeItem(USER_KEY);
    } catch {
      /* storage disabled: the value still applies to this page */
    }
  };
  input.addEventListener("input", save);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    save();
  });
}

function actingAs() {
  const input = document.getElementById("acting-as-user");
  return input ? input.value.trim() : storedUser();
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

// Fetch this page again and replace #model-body with the fresh one (statuses, requests, history).
async function reloadBody(message) {
  const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
  if (!resp.ok) {
    window.location.reload();
    return;
  }
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  const fresh = doc.getElementById("model-body");
  const current = document.getElementById("model-body");
  if (!fresh || !current) {
    window.location.reload();
    return;
  }
  current.replaceWith(document.adoptNode(fresh));
  const status = document.getElementById("decision-status");
  if (status) status.textContent = message;
}

// The session's CSRF token (set at login beside the HttpOnly session cookie; only this origin's
// scripts can read it): a write authenticated by the session cookie must carry it.
function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "tallymark_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

async function decide(button) {
  const row = button.closest("[data-request-id]");
  if (!row) return;
  const id = row.dataset.requestId;
  const action = button.dataset.action === "reject" ? "reject" : "approve";
  const error = row.querySelector(".decision-error");
  const comment = (row.querySelector("input.decision-comment") || { value: "" }).value.trim();
  const headers = { "Content-Type": "application/json", Accept: "application/json" };
  const user = actingAs();
  if (user) headers["X-Tallymark-User"] = user;
  const csrf = csrfToken();
  if (csrf) headers["X-Tallymark-CSRF"] = csrf;
  const buttons = row.querySelectorAll("button[data-action]");
  for (const b of buttons) b.disabled = true;
  error.hidden = true;
  error.textContent = "";
  try {
    const resp = await fetch(`/api/v1/requests/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      headers,
      body: JSON.stringify({ comment: comment || null }),
    });
    if (!resp.ok) {
      const message = await errorMessage(resp);
      error.textContent = resp.status === 403 ? `Refused: ${message}` : message;
      error.hidden = false;
      return;
    }
    const done = await resp.json();
    await reloadBody(`Request #${done.id} (${done.version} → ${done.toStatus}) ${done.state} by ${done.decidedBy}.`);
  } catch (exc) {
    error.textContent = `The request failed: ${exc}`;
    error.hidden = false;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

function initDecisions() {
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest && ev.target.closest("#model-body button[data-action]");
    if (button) decide(button);
  });
}

initShaCopy();
initActingAs();
initDecisions();
