// Job and endpoint pages: the Stop button of a running job (POST /api/v1/workspaces/{ws}/jobs/{name}/stop),
// following a running job's log and status, and the endpoints page's requests-per-minute chart.
// Nothing here writes user data as HTML: log text goes in with textContent (append-only text
// nodes); after a change the page's own server-rendered (escaped) #job-body is fetched and swapped.
import { makePlot, autoSize, color } from "./plot.js";

const USER_KEY = "tallymark.actingAs";
const POLL_MS = 1500;
const MAX_LOG_CHARS = 1 << 20; // what the page keeps while following; the download has it all

function readJSON(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

function csrfToken() {
  for (const part of document.cookie.split(";")) {
    const [name, ...rest] = part.trim().split("=");
    if (name === "tallymark_csrf") return decodeURIComponent(rest.join("="));
  }
  return "";
}

function headers(json) {
  const h = { Accept: "application/json" };
  if (json) h["Content-Type"] = "application/json";
  let user = "";
  try {
    user = (window.localStorage.getItem(USER_KEY) || "").trim();
  } catch {
    /* storage disabled */
  }
  if (user) h["X-Tallymark-User"] = user;
  const csrf = csrfToken();
  if (csrf) h["X-Tallymark-CSRF"] = csrf;
  return h;
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

function say(text, isError = false) {
  const p = document.getElementById("job-message");
  if (!p) return;
  p.textContent = text;
  p.classList.toggle("error-text", isError);
}

// Fetch this page again and replace #job-body (status, facts, failure, attempts, lineage).
async function reloadBody() {
  const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
  if (!resp.ok) return;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const id of ["job-body"]) {
    const fresh = doc.getElementById(id);
    const current = document.getElementById(id);
    if (fresh && current) current.replaceWith(document.adoptNode(fresh));
  }
  const title = document.querySelector(".title-row");
  const freshTitle = doc.querySelector(".title-row");
  if (title && freshTitle) title.replaceWith(document.adoptNode(freshTitle));
  wireStop();
}

// While it runs: the status (secondary status: Downloading, Training, …), facts and timeline.
async function refreshStatus() {
  const resp = await fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" });
  if (!resp.ok) return;
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  for (const sel of [".title-row", "#job-facts", "#timeline"]) {
    const fresh = doc.querySelector(sel);
    const current = document.querySelector(sel);
    if (fresh && current) current.replaceWith(document.adoptNode(fresh));
  }
  wireStop();
}

function decode(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

// Follow a running job: new log chunks appended as text, the page body refreshed when it ends.
function follow(job) {
  let next = job.logNext;
  let busy = false;
  let ticks = 0;
  const live = document.getElementById("log-live");
  if (live) live.hidden = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const resp = await fetch(`${job.api}/logs?after=${encodeURIComponent(next)}`, {
        headers: headers(false),
        cache: "no-store",
      });
      if (!resp.ok) return;
      const got = await resp.json();
      const pre = document.getElementById("job-log");
      if (got.data_b64 && pre) {
        if (pre.classList.contains("empty-log")) {
          pre.textContent = "";
          pre.classList.remove("empty-log");
        }
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(document.createTextNode(decode(got.data_b64).replace(ANSI, "")));
        if (pre.textContent.length > MAX_LOG_CHARS) pre.textContent = pre.textContent.slice(-MAX_LOG_CHARS);
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
      next = got.next;
      ticks += 1;
      if (!got.done && ticks % 4 === 0) await refreshStatus();
      if (got.done) {
        clearInterval(timer);
        await reloadBody();
        const l = document.getElementById("log-live");
        if (l) l.hidden = true;
      }
    } catch {
      /* the server restarted or the network blinked: try again at the next tick */
    } finally {
      busy = false;
    }
  }, POLL_MS);
}

async function stop(button) {
  button.disabled = true;
  say("Asking the job to stop…");
  try {
    const resp = await fetch(button.dataset.url, { method: "POST", headers: headers(true), body: "{}" });
    if (!resp.ok) {
      const message = await errorMessage(resp);
      say(resp.status === 403 ? `Refused: ${message}` : message, true);
      button.disabled = false;
      return;
    }
    const done = await resp.json();
    button.textContent = "Stop requested";
    say(
      done.stop_requested_at
        ? "Stop requested: the job's supervisor ends its processes within seconds (SIGTERM, then SIGKILL after the grace period)."
        : `The job has ended already (${done.status}).`,
    );
  } catch (exc) {
    say(`The request failed: ${exc}`, true);
    button.disabled = false;
  }
}

function wireStop() {
  const button = document.getElementById("stop-job");
  if (button && !button.dataset.wired) {
    button.dataset.wired = "1";
    button.addEventListener("click", () => stop(button));
  }
}

function initJob() {
  const job = readJSON("tm-job");
  if (!job) return;
  wireStop();
  if (job.running) follow(job);
  const pre = document.getElementById("job-log");
  if (pre) pre.scrollTop = pre.scrollHeight; // the newest output first in view, as a terminal
}

function initRequests() {
  for (const box of document.querySelectorAll("input.autosubmit-check")) {
    box.addEventListener("change", () => box.form && box.form.submit());
  }
  const data = readJSON("tm-requests");
  const target = document.getElementById("requests-chart");
  if (!data || !target || typeof uPlot === "undefined") return;
  const series = data.series.map((s, i) => ({
    label: s.name,
    color: color(i),
    fill: color(i, data.series.length > 1 ? 0.35 : 0.6),
    width: 1,
    bars: true,
  }));
  const plot = makePlot(target, {
    data: [data.t, ...data.series.map((s) => s.counts)],
    series,
    time: true,
    xName: "minute",
    yLabel: "rows / min",
    zeroBase: true,
    height: 220,
  });
  autoSize(plot, target);
}

const page = document.body.dataset.page;
if (page === "job") initJob();
if (page === "endpoints") initRequests();
