// Tests of the capacity harness's pure parts: `node --test bench/capacity/stats.test.mjs`
// (run by scripts/test.sh before the short capacity run).
import { test } from "node:test";
import assert from "node:assert/strict";
import { arrivalSchedule, growthTest, leastSquares, parsePrometheus, percentile, summarize } from "./lib/stats.mjs";

test("percentile is nearest-rank", () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(v, 50), 50);
  assert.equal(percentile(v, 95), 95);
  assert.equal(percentile(v, 99), 99);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.ok(Number.isNaN(percentile([], 50)));
  const s = summarize([3, 1, 2, NaN]);
  assert.deepEqual([s.count, s.p50, s.max, s.mean], [3, 2, 3, 2]);
  assert.equal(summarize([]).p99, null);
});

test("least squares recovers a line", () => {
  const { slope, intercept } = leastSquares([0, 1, 2, 3].map((x) => ({ x, y: 5 + 2 * x })));
  assert.equal(slope, 2);
  assert.equal(intercept, 5);
  assert.ok(Number.isNaN(leastSquares([{ x: 1, y: 1 }]).slope));
});

// 30 minutes sampled every 30 s, as the soak does.
const series = (f) => Array.from({ length: 61 }, (_, i) => ({ t: i * 30, y: f(i * 30, i) }));
const noise = (i) => ((i * 7919) % 13) / 13 - 0.5; // deterministic, in [-0.5, 0.5)
const MiB = 1048576;

test("growth test: a plateau with noise passes", () => {
  // fills during the first 10 minutes, then flat with +-1 MiB noise
  const s = series((t, i) => 50 * MiB * Math.min(1, t / 600) + 2 * MiB * noise(i));
  assert.equal(growthTest(s, { absTolerance: 8 * MiB, relTolerance: 0.05 }).verdict, "ok");
});

test("growth test: a slow steady leak fails", () => {
  // 2 KiB per session at 5 sessions/s = 10 KiB/s: +9 MiB over the judged 15 minutes
  const s = series((t, i) => 50 * MiB + 10240 * t + 1 * MiB * noise(i));
  const r = growthTest(s, { absTolerance: 8 * MiB, relTolerance: 0.05 });
  assert.equal(r.verdict, "grows", JSON.stringify(r));
  assert.ok(r.growth > 8 * MiB && r.growth < 10 * MiB);
});

test("growth test: one spike at the end does not fail a flat series", () => {
  const s = series((t, i) => (i === 60 ? 70 : 50) * MiB);
  assert.equal(growthTest(s, { absTolerance: 8 * MiB, relTolerance: 0.05 }).verdict, "ok");
});

test("growth test: the first half (warm-up) is not judged", () => {
  const s = series((t) => (t < 900 ? t * 1000 : 900 * 1000));
  assert.equal(growthTest(s, { absTolerance: 10, relTolerance: 0.01 }).verdict, "ok");
});

test("growth test: too few samples is its own verdict", () => {
  assert.equal(growthTest(series(() => 1).slice(0, 8), { absTolerance: 1, relTolerance: 0 }).verdict, "too-few-samples");
  assert.equal(growthTest([], { absTolerance: 1, relTolerance: 0 }).verdict, "too-few-samples");
});

test("arrival schedule: ramp then sustained, evenly spaced, capped", () => {
  const s = arrivalSchedule({ rampRate: 50, rampS: 60, rate: 100, durationS: 300 });
  assert.equal(s.length, 50 * 60 + 100 * 300);
  assert.equal(s[1].at - s[0].at, 20);
  assert.equal(s[3000].at, 60000);
  assert.equal(s[3000].phase, "sustained");
  assert.equal(s[3001].at - s[3000].at, 10);
  assert.ok(s.at(-1).at < 360000);
  assert.equal(arrivalSchedule({ rate: 2, durationS: 10, maxUsers: 7 }).length, 7);
  assert.equal(arrivalSchedule({ rampRate: 0, rampS: 10, rate: 2, durationS: 10 })[0].phase, "sustained");
});

test("prometheus text: values summed per name, comments and junk skipped", () => {
  const m = parsePrometheus([
    "# HELP berth_pool_creates_total Containers created",
    "# TYPE berth_pool_creates_total counter",
    "berth_pool_creates_total 12",
    'berth_llm_requests_total{provider="local"} 3',
    'berth_llm_requests_total{provider="gemini"} 4',
    "garbage line",
    "berth_pool_idle 2.5",
  ].join("\n"));
  assert.deepEqual(m, { berth_pool_creates_total: 12, berth_llm_requests_total: 7, berth_pool_idle: 2.5 });
});
