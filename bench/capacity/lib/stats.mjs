// Pure helpers of the capacity harness: percentiles, least-squares slope and the soak's growth
// test. No I/O, so bench/capacity/stats.test.mjs checks them directly.

// Nearest-rank percentile of an ascending array (p in 0..100); NaN when empty.
export function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

// {count, p50, p95, p99, max, mean} of a list of numbers (ms); nulls when empty.
export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return { count: 0, p50: null, p95: null, p99: null, max: null, mean: null };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { count: v.length, p50: percentile(v, 50), p95: percentile(v, 95), p99: percentile(v, 99), max: v.at(-1), mean };
}

// Ordinary least squares y = a + b x over points [{x, y}]; returns {slope, intercept, n}.
// Fewer than two distinct x: slope NaN.
export function leastSquares(points) {
  const pts = points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const n = pts.length;
  if (n < 2) return { slope: NaN, intercept: NaN, n };
  const mx = pts.reduce((a, p) => a + p.x, 0) / n;
  const my = pts.reduce((a, p) => a + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of pts) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  if (sxx === 0) return { slope: NaN, intercept: NaN, n };
  const slope = sxy / sxx;
  return { slope, intercept: my - slope * mx, n };
}

// The soak's "grows without bound" test for one series of samples [{t (s), y}].
// Only the second half of the run is judged (the first half is warm-up: pools fill, sessions
// that disconnected wait out their idle timeout, allocators reach their working set). Over that
// half a bounded series is flat apart from noise; a leak rises steadily. The series fails when
// its least-squares slope, projected over the judged window, is more than
//   max(absTolerance, relTolerance × mean of the window)
// i.e. "over the second half it grew by more than the tolerance, and not as one outlier" (a
// single spike moves a least-squares slope over 30 points far less than a steady rise).
// Returns {verdict: "ok"|"grows"|"too-few-samples", slope (per s), growth (over the window),
// tolerance, mean, samples}.
export function growthTest(samples, { absTolerance, relTolerance, minSamples = 6 }) {
  const pts = samples.filter((s) => Number.isFinite(s.t) && Number.isFinite(s.y));
  if (!pts.length) return { verdict: "too-few-samples", samples: 0 };
  const t0 = pts[0].t;
  const t1 = pts.at(-1).t;
  const half = pts.filter((s) => s.t >= t0 + (t1 - t0) / 2);
  if (half.length < minSamples) return { verdict: "too-few-samples", samples: half.length };
  const { slope } = leastSquares(half.map((s) => ({ x: s.t, y: s.y })));
  const window = half.at(-1).t - half[0].t;
  const mean = half.reduce((a, s) => a + s.y, 0) / half.length;
  const growth = slope * window;
  const tolerance = Math.max(absTolerance, relTolerance * Math.abs(mean));
  return { verdict: growth > tolerance ? "grows" : "ok", slope, growth, tolerance, mean, window, samples: half.length };
}

// The arrival schedule of rate mode: start times (ms from the run's start) of every user of a
// ramp phase (rampRate/s for rampS s) followed by a sustained phase (rate/s for durationS s),
// evenly spaced within each phase (as Artillery's arrivalRate does). Capped at maxUsers.
export function arrivalSchedule({ rampRate = 0, rampS = 0, rate = 0, durationS = 0, maxUsers = Infinity }) {
  const out = [];
  const phase = (name, perS, seconds, offsetMs) => {
    if (!(perS > 0 && seconds > 0)) return;
    const n = Math.round(perS * seconds);
    for (let i = 0; i < n && out.length < maxUsers; i++) out.push({ at: offsetMs + (i * 1000) / perS, phase: name });
  };
  phase("ramp", rampRate, rampS, 0);
  phase("sustained", rate, durationS, rampRate > 0 && rampS > 0 ? rampS * 1000 : 0);
  return out;
}

// Parses Prometheus text exposition into {name: value} (label sets summed per name; enough for
// the counters and gauges the harness reads, which Berth exports without labels or with one).
export function parsePrometheus(text) {
  const out = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    out[m[1]] = (out[m[1]] ?? 0) + v;
  }
  return out;
}
