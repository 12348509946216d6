// Pure data helpers for charts: values as numbers, the x column, smoothing, and joining several
// series onto one x column (what uPlot draws).

// The metric API writes non-finite values as "NaN", "Infinity", "-Infinity": gaps in a chart.
export function num(v) {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  return null;
}

// The x values of a metric series for an axis mode: step, epoch, time (ms), relative (seconds).
export function xColumn(s, mode) {
  if (mode === "epoch") return s.epochs ? s.epochs.map((e) => (e === null ? null : e)) : s.steps.map(() => null);
  if (mode === "time") return s.timestamps.slice();
  if (mode === "relative") {
    const t0 = s.timestamps.length ? Math.min(...s.timestamps.slice(0, 1000)) : 0;
    return s.timestamps.map((t) => (t - t0) / 1000);
  }
  return s.steps.slice();
}

// Exponential moving average with debiasing (the first points are not pulled towards 0).
export function ema(ys, weight) {
  if (!weight) return ys;
  const out = new Array(ys.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y === null) {
      out[i] = null;
      continue;
    }
    last = last * weight + (1 - weight) * y;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

// Join series [{x: [...], y: [...]}] onto one ascending x column. Points with an equal x join one
// row across series; a series with repeated x (a vertical ROC segment) gets one row per repeat, so
// its own order is kept. Returns [xs, ys1, ys2, …] with null where a series has no point.
export function join(series) {
  const rows = new Map(); // "x|dup" -> row
  const keys = [];
  series.forEach((s, si) => {
    const seen = new Map();
    const order = s.x.map((_, i) => i).filter((i) => s.x[i] !== null && s.x[i] !== undefined);
    order.sort((a, b) => s.x[a] - s.x[b] || a - b);
    for (const i of order) {
      const x = s.x[i];
      const dup = seen.get(x) || 0;
      seen.set(x, dup + 1);
      const id = `${x}|${dup}`;
      let row = rows.get(id);
      if (!row) {
        row = { x, dup, ys: new Array(series.length).fill(null) };
        rows.set(id, row);
        keys.push(row);
      }
      row.ys[si] = s.y[i];
    }
  });
  keys.sort((a, b) => a.x - b.x || a.dup - b.dup);
  const out = [keys.map((r) => r.x)];
  for (let si = 0; si < series.length; si++) out.push(keys.map((r) => r.ys[si]));
  return out;
}

// Index of the nearest non-null value of column ys around idx (hover over gaps).
export function nearest(ys, idx, reach = 2000) {
  if (ys[idx] !== null && ys[idx] !== undefined) return idx;
  for (let d = 1; d < reach; d++) {
    if (idx - d >= 0 && ys[idx - d] !== null && ys[idx - d] !== undefined) return idx - d;
    if (idx + d < ys.length && ys[idx + d] !== null && ys[idx + d] !== undefined) return idx + d;
  }
  return idx;
}
