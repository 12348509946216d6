// One place that builds uPlot charts the same way for metrics, curves and panels.
import { nearest } from "./series.js";

let palette = null;

// Experiment colours: CSS custom properties --c0 … --c19 (the page's swatches use the same).
export function color(i, alpha = 1) {
  if (!palette) {
    const css = getComputedStyle(document.documentElement);
    palette = [];
    for (let k = 0; k < 20; k++) palette.push(css.getPropertyValue(`--c${k}`).trim() || "#4269d0");
  }
  const hex = palette[i % palette.length];
  if (alpha >= 1) return hex;
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
  return Number(v.toPrecision(6)).toString();
}

// spec: {data: [xs, ...ys], series: [{label, color, width, dash, legend, bars, points}], xLabel,
//        yLabel, xName, log, time, categories, xRange, yRange, zeroBase (bars start at 0), height}
export function makePlot(target, spec) {
  const width = Math.max(240, target.clientWidth || 480);
  const axisStroke = "#5b6472";
  const grid = { stroke: "#e7eaf0", width: 1 };
  const xAxis = { stroke: axisStroke, grid, ticks: grid, label: spec.xLabel || "", labelSize: spec.xLabel ? 18 : 0 };
  if (spec.categories) {
    xAxis.values = (u, splits) => splits.map((v) => (Number.isInteger(v) ? spec.categories[v] ?? "" : ""));
    xAxis.splits = () => spec.categories.map((_, i) => i);
  }
  const opts = {
    width,
    height: spec.height || 260,
    ms: 1,
    scales: {
      x: { time: !!spec.time, range: spec.xRange || undefined },
      y: spec.log
        ? { distr: 3, range: spec.yRange || undefined }
        : { range: spec.yRange || (spec.zeroBase ? (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.08 : 1] : undefined) },
    },
    axes: [xAxis, { stroke: axisStroke, grid, ticks: grid, label: spec.yLabel || "", labelSize: spec.yLabel ? 18 : 0, size: 58, values: (u, splits) => splits.map(fmtValue) }],
    legend: { live: true },
    cursor: {
      dataIdx: (u, si, idx) => nearest(u.data[si], idx),
      points: { size: 7 },
      focus: { prox: 24 },
    },
    focus: { alpha: 0.35 },
    series: [
      { label: spec.xName || "x", value: spec.time ? "{YYYY}-{MM}-{DD} {HH}:{mm}:{ss}" : (u, v) => (spec.categories ? spec.categories[v] ?? "" : fmtValue(v)) },
      ...spec.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        fill: s.fill,
        width: s.width || 1.6,
        dash: s.dash,
        spanGaps: true,
        points: { show: s.points ?? false, size: 5, fill: s.color },
        paths: s.bars ? uPlot.paths.bars({ size: [0.7, 60] }) : s.points && !s.line ? () => null : undefined,
        value: (u, v) => fmtValue(v),
      })),
    ],
  };
  const plot = new uPlot(opts, spec.data, target);
  spec.series.forEach((s, i) => {
    if (s.legend === false) {
      const row = plot.root.querySelectorAll(".u-legend .u-series")[i + 1];
      if (row) row.classList.add("legend-hidden");
    }
  });
  return plot;
}

// Keep a chart as wide as its card.
export function autoSize(plot, target) {
  if (!window.ResizeObserver) return;
  let last = target.clientWidth;
  new ResizeObserver(() => {
    const w = target.clientWidth;
    if (w > 0 && Math.abs(w - last) > 2) {
      last = w;
      plot.setSize({ width: w, height: plot.height });
    }
  }).observe(target);
}
