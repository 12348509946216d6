// Small behaviours shared by pages: row filters, auto-submitting selects, URL state helpers.

export function readJSON(id) {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
}

// Replace some query parameters of the current URL without reloading (shareable view state).
export function setURLParams(changes) {
  const url = new URL(window.location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "" || v === false) url.searchParams.delete(k);
    else url.searchParams.set(k, String(v));
  }
  window.history.replaceState(null, "", url);
}

function initRowFilters() {
  for (const input of document.querySelectorAll("input.row-filter")) {
    const table = document.getElementById(input.dataset.target);
    if (!table) continue;
    const rows = Array.from(table.tBodies[0].rows);
    const apply = () => {
      const needle = input.value.trim().toLowerCase();
      for (const tr of rows) tr.hidden = needle !== "" && !tr.textContent.toLowerCase().includes(needle);
    };
    input.addEventListener("input", apply);
    apply();
  }
}

function initAutosubmit() {
  for (const select of document.querySelectorAll("select.autosubmit")) {
    select.addEventListener("change", () => select.form && select.form.submit());
  }
}

function initCopy() {
  for (const code of document.querySelectorAll("code.copy")) {
    code.title = "click to copy";
    code.addEventListener("click", () => {
      if (navigator.clipboard) navigator.clipboard.writeText(code.textContent).catch(() => {});
      code.classList.add("copied");
      setTimeout(() => code.classList.remove("copied"), 900);
    });
  }
}

export function initCommon() {
  initRowFilters();
  initAutosubmit();
  initCopy();
}
