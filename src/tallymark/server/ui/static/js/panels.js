// Custom Python panels on the compare page: each card asks the server to run its panel over the
// compared experiments and draws the answer (image, chart, table or text). A failing panel shows
// its error in its own card; the rest of the page never notices.
import { readJSON } from "./common.js";
import { color, makePlot, autoSize } from "./plot.js";
import { join } from "./series.js";

function node(tag, cls, text) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

function showError(body, message, traceback) {
  body.textContent = "";
  const box = node("div", "panel-error");
  box.appendChild(node("strong", null, message));
  if (traceback) box.appendChild(node("pre", null, traceback));
  body.appendChild(box);
  body.dataset.state = "error";
}

function drawTable(body, fig) {
  const wrap = node("div", "table-wrap");
  const table = node("table", "grid compact");
  const head = table.createTHead().insertRow();
  for (const c of fig.columns) head.appendChild(node("th", null, String(c)));
  const tbody = table.createTBody();
  for (const row of fig.rows) {
    const tr = tbody.insertRow();
    for (const v of row) tr.appendChild(node("td", typeof v === "number" ? "num" : null, v === null ? "" : String(v)));
  }
  wrap.appendChild(table);
  body.appendChild(wrap);
}

function drawChart(body, fig) {
  const box = node("div", "chart");
  body.appendChild(box);
  const bars = fig.series.filter((s) => s.kind === "bar").length;
  let barIndex = 0;
  const parts = fig.series.map((s) => {
    if (s.kind !== "bar" || bars < 2) return { x: s.x, y: s.y };
    const width = 0.8 / bars; // grouped bars: shift each bar series within its category
    const shift = (barIndex++ - (bars - 1) / 2) * width;
    return { x: s.x.map((x) => (x === null ? null : x + shift)), y: s.y };
  });
  const plot = makePlot(box, {
    data: join(parts),
    series: fig.series.map((s, i) => ({
      label: s.name,
      color: color(i),
      fill: s.kind === "bar" ? color(i, 0.75) : undefined,
      bars: s.kind === "bar",
      points: s.kind === "scatter",
      width: s.kind === "bar" ? 0 : 1.8,
    })),
    xLabel: fig.x_label,
    yLabel: fig.y_label,
    log: fig.log_y,
    categories: fig.categories,
    zeroBase: bars > 0,
    xRange: fig.categories ? [-0.6, fig.categories.length - 0.4] : undefined,
    height: 280,
  });
  autoSize(plot, box);
  box.dataset.series = String(fig.series.length);
}

function draw(body, result) {
  body.textContent = "";
  const fig = result.figure;
  if (fig.title && fig.title.toLowerCase() !== result.name.toLowerCase()) {
    body.appendChild(node("div", "panel-title", fig.title));
  }
  if (fig.type === "image") {
    const img = node("img", "panel-img");
    img.alt = result.name;
    img.src = `data:${fig.mime};base64,${fig.data}`;
    body.appendChild(img);
  } else if (fig.type === "chart") {
    drawChart(body, fig);
  } else if (fig.type === "table") {
    drawTable(body, fig);
  } else {
    body.appendChild(node("pre", "console", String(fig.text ?? "")));
  }
  body.dataset.state = "drawn";
}

async function renderPanel(card, keys) {
  const body = card.querySelector(".panel-body");
  const name = card.dataset.panel;
  try {
    const url = `/api/v1/panels/render?name=${encodeURIComponent(name)}&keys=${keys.join(",")}`;
    const resp = await fetch(url, { headers: { Accept: "application/json" } });
    const result = await resp.json();
    if (!resp.ok) return showError(body, (result.error && result.error.message) || `HTTP ${resp.status}`);
    if (!result.ok) return showError(body, result.error, result.traceback);
    draw(body, result);
  } catch (err) {
    showError(body, `could not render: ${err}`);
  }
}

export function initPanels() {
  const data = readJSON("tm-panels");
  if (!data || typeof uPlot === "undefined") return;
  for (const card of document.querySelectorAll(".panel-card[data-panel]")) renderPanel(card, data.keys);
}
