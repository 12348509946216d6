// The experiment table: selection for compare, the query error caret, column-picker search.

function initSelection() {
  const boxes = Array.from(document.querySelectorAll("input.row-check"));
  const all = document.getElementById("select-all");
  const button = document.getElementById("compare-btn");
  const count = document.getElementById("selected-count");
  const form = document.getElementById("compare-form");
  if (!button || !form) return;
  const update = () => {
    const n = boxes.filter((b) => b.checked).length;
    button.disabled = n < 2;
    count.textContent = n === 0 ? "tick two or more rows" : `${n} selected`;
    for (const b of boxes) b.closest("tr").classList.toggle("selected", b.checked);
    if (all) all.checked = n > 0 && n === boxes.length;
  };
  for (const b of boxes) b.addEventListener("change", update);
  if (all) {
    all.addEventListener("change", () => {
      for (const b of boxes) b.checked = all.checked;
      update();
    });
  }
  // Send the shareable form ?keys=a,b directly instead of keys=a&keys=b and a redirect.
  form.addEventListener("submit", (ev) => {
    const keys = boxes.filter((b) => b.checked).map((b) => b.value);
    if (keys.length < 2) {
      ev.preventDefault();
      return;
    }
    ev.preventDefault();
    window.location.href = `${form.action}?keys=${keys.join(",")}`;
  });
  update();
}

function initQueryBox() {
  const q = document.getElementById("q");
  if (!q) return;
  const column = parseInt(q.dataset.column || "", 10);
  if (!Number.isNaN(column)) {
    q.focus();
    const at = Math.max(0, Math.min(column - 1, q.value.length));
    q.setSelectionRange(at, Math.min(at + 1, q.value.length));
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && document.activeElement.tagName !== "INPUT") {
      ev.preventDefault();
      q.focus();
    }
  });
}

// A field as the query language writes it: bare names when they are plain, else backquoted.
function fieldText(kind, name) {
  if (/^[A-Za-z0-9_.\-/]+$/.test(name) && !name.endsWith(".")) return `${kind}.${name}`;
  return `${kind}.\`${name.replace(/\\/g, "\\\\").replace(/`/g, "\\`")}\``;
}

function pickBox(kind, name) {
  const label = document.createElement("label");
  label.className = "pick";
  label.dataset.name = name.toLowerCase();
  label.dataset.exact = name;
  const input = document.createElement("input");
  input.type = "checkbox";
  input.name = "col";
  input.value = fieldText(kind, name);
  label.append(input, " ", name);
  return label;
}

// The server lists the names on the current page; on first open, add every name of the project.
async function loadAllColumns(picker) {
  const url = picker.dataset.columnsUrl;
  if (!url || picker.dataset.loaded) return;
  picker.dataset.loaded = "1";
  const resp = await fetch(url, { headers: { Accept: "application/json" } });
  if (!resp.ok) return;
  const all = await resp.json();
  for (const kind of ["params", "metrics", "others"]) {
    const group = picker.querySelector(`fieldset[data-group="${kind}"]`);
    if (!group) continue;
    const have = new Set(Array.from(group.querySelectorAll("label.pick")).map((l) => l.dataset.exact));
    for (const name of all[kind] || []) if (!have.has(name)) group.appendChild(pickBox(kind, name));
    const labels = Array.from(group.querySelectorAll("label.pick"));
    labels.sort((a, b) => (a.dataset.name < b.dataset.name ? -1 : a.dataset.name > b.dataset.name ? 1 : 0));
    for (const l of labels) group.appendChild(l);
    group.hidden = labels.length === 0;
  }
}

function initPicker() {
  const picker = document.getElementById("column-picker");
  const search = document.querySelector(".pick-search");
  if (!picker || !search) return;
  picker.addEventListener("toggle", () => {
    if (picker.open) loadAllColumns(picker).then(() => search.dispatchEvent(new Event("input")));
  });
  search.addEventListener("input", () => {
    const needle = search.value.trim().toLowerCase();
    for (const p of picker.querySelectorAll("label.pick")) p.hidden = needle !== "" && !p.dataset.name.includes(needle);
  });
}

export function initTable() {
  initSelection();
  initQueryBox();
  initPicker();
}
