// Metric and curve charts. Metric series come from the server already downsampled (LTTB):
// GET /api/v1/experiments/{key}/metric?name=&points=N (or /-/series for several experiments at
// once), fetched when a chart scrolls into view; the first charts' series are preloaded by the page.
// Controls (smoothing, log scale, x axis, chart filter) redraw from cached series and keep their
// state in the URL (?smooth=&log=&x=&metric=).
import { readJSON, setURLParams } from "./common.js";
import { color, makePlot, autoSize } from "./plot.js";
import { ema, join, num, xColumn } from "./series.js";

const cache = new Map(); // URL -> Promise<[series | null, …]>
const charts = []; // {card, metric, plot, loaded, points}
let state = null;
let experiments = [];
let preload = {}; // metric -> URL the page preloads (the first request of the first charts)
let firstDrawn = false;

function seriesURL(metric, points) {
  if (experiments.length === 1) {
    return `/api/v1/experiments/${experiments[0].key}/metric?name=${encodeURIComponent(metric)}&points=${points}`;
  }
  return `/-/series?name=${encodeURIComponent(metric)}&points=${points}&keys=${experiments.map((e) => e.key).join(",")}`;
}

// One metric of every experiment on the page, downsampled by the server: GET …/metric for one
// experiment, GET /-/series (POST /api/v1/metrics/series as a preloadable GET) for several.
// Resolves to an array aligned with `experiments` (null where an experiment lacks the metric).
function fetchSeries(url) {
  if (!cache.has(url)) {
    const request = fetch(url, { headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((body) => {
        if (experiments.length === 1) return [body];
        const got = (body && body.series) || {};
        return experiments.map((e) => got[e.key] || null);
      });
    cache.set(url, request);
  }
  return cache.get(url);
}

function pointsOf(url) {
  return parseInt(new URL(url, window.location.href).searchParams.get("points"), 10);
}

// For the benchmark and the tests: when the first metric chart (series fetched from the server)
// was drawn, in ms since navigation start.
function markFirst() {
  if (firstDrawn) return;
  firstDrawn = true;
  performance.mark("tm-first-chart");
  window.__tmFirstChart = performance.now();
}

function setStatus(box, text, cls) {
  box.textContent = "";
  const p = document.createElement("p");
  p.className = cls || "muted";
  p.textContent = text;
  box.appendChild(p);
}

// Points asked of the server: about one per horizontal pixel (LTTB keeps peaks and dips).
function fullPoints(box) {
  const px = (box.clientWidth || 600) * Math.min(window.devicePixelRatio || 1, 2);
  return Math.max(state.coarse || 100, Math.min(state.points, Math.round(px)));
}

// Charts load one at a time, each with all its experiments' series in one request, so the first
// chart is not slowed down by the others. With many experiments (state.coarse set) a chart is
// first drawn from a coarse series (state.coarse points each), then every chart is refined.
const queue = [];
let busy = false;

function enqueue(chart, url) {
  queue.push([chart, url]);
  if (!busy) pump();
}

async function pump() {
  busy = true;
  while (queue.length) {
    const [chart, url] = queue.shift();
    const box = chart.card.querySelector(".chart");
    try {
      if (!chart.plot) box.dataset.state = "loading";
      const results = await fetchSeries(url);
      chart.points = pointsOf(url);
      chart.url = url;
      render(chart, results);
      const total = results.reduce((n, s) => n + (s && s.count ? s.count : 0), 0);
      const shown = results.reduce((n, s) => n + (s && s.steps ? s.steps.length : 0), 0);
      const want = fullPoints(box);
      if (chart.points < want && shown < total) queue.push([chart, seriesURL(chart.metric, want)]);
      else box.dataset.resolution = "full";
    } catch (err) {
      setStatus(box, `could not load: ${err}`, "error-text");
    }
  }
  busy = false;
}

function drawMetric(chart) {
  const box = chart.card.querySelector(".chart");
  const first = preload[chart.metric] || seriesURL(chart.metric, state.coarse || fullPoints(box));
  enqueue(chart, first);
}

function render(chart, results) {
  const box = chart.card.querySelector(".chart");
  const parts = [];
  const series = [];
  results.forEach((s, i) => {
    if (!s || !s.steps || s.steps.length === 0) return;
    let x = xColumn(s, state.x);
    let y = s.values.map(num);
    if (state.log) y = y.map((v) => (v !== null && v > 0 ? v : null));
    const label = experiments[i].name;
    if (state.smooth > 0) {
      parts.push({ x, y });
      series.push({ label: `${label} (raw)`, color: color(i, 0.22), width: 1, legend: false });
      parts.push({ x, y: ema(y, state.smooth) });
      series.push({ label, color: color(i), width: 1.8 });
    } else {
      parts.push({ x, y });
      series.push({ label, color: color(i) });
    }
  });
  if (chart.plot) {
    chart.plot.destroy();
    chart.plot = null;
  }
  box.textContent = "";
  if (!parts.length) {
    setStatus(box, "no points");
    box.dataset.state = "empty";
    return;
  }
  if (state.x === "epoch" && parts.every((p) => p.x.every((v) => v === null))) {
    setStatus(box, "no epochs logged for this metric; choose step or time");
    box.dataset.state = "empty";
    return;
  }
  const xName = { step: "step", epoch: "epoch", time: "time", relative: "seconds" }[state.x];
  chart.plot = makePlot(box, {
    data: join(parts),
    series,
    log: state.log,
    time: state.x === "time",
    xName,
    xLabel: state.x === "time" ? "" : xName,
  });
  autoSize(chart.plot, box);
  const counts = results.filter((s) => s && s.steps && s.steps.length).map((s) => s.count);
  box.dataset.state = "drawn";
  box.dataset.series = String(counts.length);
  box.dataset.points = String(counts.reduce((a, b) => a + b, 0));
  markFirst();
}

function redrawAll() {
  for (const chart of charts) {
    if (!chart.loaded) continue;
    if (chart.url) fetchSeries(chart.url).then((r) => render(chart, r));
  }
}

function initControls() {
  const smooth = document.getElementById("smooth");
  const out = document.getElementById("smooth-value");
  const logY = document.getElementById("log-y");
  const xAxis = document.getElementById("x-axis");
  const filter = document.getElementById("metric-filter");
  let timer = null;
  if (smooth) {
    smooth.addEventListener("input", () => {
      state.smooth = parseFloat(smooth.value);
      out.textContent = state.smooth.toFixed(2);
      setURLParams({ smooth: state.smooth > 0 ? state.smooth : null });
      clearTimeout(timer);
      timer = setTimeout(redrawAll, 60);
    });
  }
  if (logY) {
    logY.addEventListener("change", () => {
      state.log = logY.checked;
      setURLParams({ log: state.log ? 1 : null });
      redrawAll();
    });
  }
  if (xAxis) {
    xAxis.addEventListener("change", () => {
      state.x = xAxis.value;
      setURLParams({ x: state.x });
      redrawAll();
    });
  }
  if (filter) {
    const apply = () => {
      const needle = filter.value.trim().toLowerCase();
      for (const c of charts) c.card.hidden = needle !== "" && !c.metric.toLowerCase().includes(needle);
      setURLParams({ metric: filter.value.trim() || null });
    };
    filter.addEventListener("input", apply);
    apply();
  }
}

function initMetricCharts() {
  const data = readJSON("tm-charts");
  if (!data) return;
  state = data.state;
  experiments = data.experiments;
  preload = data.preload || {};
  for (const card of document.querySelectorAll(".chart-card[data-metric]")) {
    charts.push({ card, metric: card.dataset.metric, plot: null, loaded: false, points: state.points });
  }
  initControls();
  const load = (chart) => {
    if (chart.loaded) return;
    chart.loaded = true;
    drawMetric(chart);
  };
  // Charts already on screen start at once (no wait for the observer's first callback).
  const visible = charts.filter((c) => c.card.getBoundingClientRect().top < window.innerHeight);
  visible.forEach(load);
  if ("IntersectionObserver" in window) {
    const io = new IntersectionObserver(
      (entries) => {
        for (const en of entries) {
          if (!en.isIntersecting) continue;
          const chart = charts.find((c) => c.card === en.target);
          io.unobserve(en.target);
          if (chart) load(chart);
        }
      },
      { rootMargin: "400px 0px" },
    );
    for (const c of charts) if (!c.loaded) io.observe(c.card);
  } else {
    charts.forEach(load);
  }
}

const CURVE_AXES = [
  [/roc/i, "false positive rate", "true positive rate", true],
  [/(^|_)pr(_|$)|precision|recall/i, "recall", "precision", false],
];

function initCurves() {
  const data = readJSON("tm-curves");
  if (!data) return;
  for (const card of document.querySelectorAll(".chart-card[data-curve]")) {
    const curve = data.curves.find((c) => c.name === card.dataset.curve);
    const box = card.querySelector(".chart");
    if (!curve) continue;
    const axes = CURVE_AXES.find(([re]) => re.test(curve.name));
    const parts = curve.series.map((s) => ({ x: s.x.map(num), y: s.y.map(num) }));
    const series = curve.series.map((s) => ({ label: s.name, color: color(s.exp), width: 2 }));
    let unit = true;
    for (const p of parts) for (const v of [...p.x, ...p.y]) if (v !== null && (v < 0 || v > 1)) unit = false;
    if (axes && axes[3]) {
      parts.push({ x: [0, 1], y: [0, 1] });
      series.push({ label: "chance", color: "#9aa3b2", width: 1, dash: [4, 4] });
    }
    box.textContent = "";
    const plot = makePlot(box, {
      data: join(parts),
      series,
      xLabel: axes ? axes[1] : "x",
      yLabel: axes ? axes[2] : "y",
      xName: axes ? axes[1] : "x",
      xRange: unit ? [0, 1] : undefined,
      yRange: unit ? [0, 1.02] : undefined,
      height: 300,
    });
    autoSize(plot, box);
    box.dataset.state = "drawn";
    box.dataset.series = String(curve.series.length);
  }
}

export function initCharts() {
  if (typeof uPlot === "undefined") return;
  initMetricCharts();
  initCurves();
}
