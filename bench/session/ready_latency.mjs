// bench/session/ready_latency.mjs: connect -> `system:ready` latency with a warm pool.
// A real berth (BERTH_BUILD_DIR, default build/release) with a real redis-server and the real
// dockerd; USERS socket.io-client users (websocket) connect at RATE per second and each waits for
// system:ready (new session: lease a warm container, write the session to Redis). All users stay
// connected until the last one is ready, so USERS containers are leased at once.
// Two modes, each on a fresh berth and pool, in the same run (MODES to pick):
//   prepared    POOL_PREPARE_MCP=true (the default): the pool opened each idle container's sandbox
//               MCP exec in advance, so the ramp costs dockerd nothing;
//   after-ready POOL_PREPARE_MCP=false (the peer): each session opens its exec right after
//               system:ready, so 20 execs/s load dockerd while users arrive (not in the figure
//               itself, but in the CPU the figure competes for). Afterwards every session is ended (session:end destroys
// its container), berth is stopped and every container of the run is removed; the count left is
// printed (0 expected). Every loop is bounded in count and time.
// Usage: BERTH_BUILD_DIR=build-rel node bench/session/ready_latency.mjs
//   env: USERS (200), RATE (20 per s), POOL_MIN_SIZE / POOL_MAX_SIZE (USERS), CONTAINER_MEMORY
//   (64m), WARM_TIMEOUT_S (600: wait for the warm pool), READY_TIMEOUT_MS (30000 per user),
//   MODES ("prepared,after-ready").
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const e2e = path.resolve(here, "../../tests/e2e");
const { io } = createRequire(path.join(e2e, "package.json"))("socket.io-client");
const { startBerth, startRedis, removeContainers } = await import(path.join(e2e, "support/berth.mjs"));

const USERS = Number(process.env.USERS || 200);
const RATE = Number(process.env.RATE || 20);
const POOL_MIN = process.env.POOL_MIN_SIZE || String(USERS);
const POOL_MAX = process.env.POOL_MAX_SIZE || String(Math.max(USERS, Number(POOL_MIN)));
const WARM_TIMEOUT_MS = Number(process.env.WARM_TIMEOUT_S || 600) * 1000;
const READY_TIMEOUT_MS = Number(process.env.READY_TIMEOUT_MS || 30000);
const MODES = (process.env.MODES || "prepared,after-ready").split(",").filter(Boolean);
const PREPARE = { prepared: "true", "after-ready": "false" };
for (const m of MODES) if (!(m in PREPARE)) throw new Error(`MODES: unknown mode ${m} (prepared, after-ready)`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a");
const countContainers = (replica) =>
  execFileSync("docker", ["ps", "-aq", "--filter", `label=berth.replica=${replica}`]).toString().split(/\s+/).filter(Boolean).length;

// One user: connect, wait for system:ready (or an error / the deadline). Resolves, never rejects.
function user(url) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = io(url, { transports: ["websocket"], reconnection: false, timeout: READY_TIMEOUT_MS });
    const timer = setTimeout(() => resolve({ socket, error: "timeout" }), READY_TIMEOUT_MS);
    socket.once("system:ready", (r) => {
      clearTimeout(timer);
      resolve({ socket, ms: performance.now() - t0, container: r.containerId });
    });
    socket.once("connect_error", (e) => {
      clearTimeout(timer);
      resolve({ socket, error: `connect_error ${e?.data?.code || e.message}` });
    });
  });
}

// One mode on a fresh berth: warm the pool, ramp USERS users, report, clean up. Returns the summary.
async function runMode(redis, mode) {
  console.log(`== mode ${mode} (POOL_PREPARE_MCP=${PREPARE[mode]})`);
  let berth;
  let summary = { mode, errors: USERS };
  try {
    berth = await startBerth(
      {
        REDIS_URL: redis.url,
        POOL_MIN_SIZE: POOL_MIN,
        POOL_MAX_SIZE: POOL_MAX,
        POOL_PREPARE_MCP: PREPARE[mode],
        CONTAINER_MEMORY: process.env.CONTAINER_MEMORY || "64m",
        ACQUIRE_TIMEOUT_MS: String(READY_TIMEOUT_MS),
        LOG_LEVEL: "warn",
      },
      { waitFor: "/health/live" },
    );
    // Warm pool: wait (bounded) until POOL_MIN idle containers exist (prepared ones, if so).
    const warmStart = Date.now();
    let stats = {};
    while (Date.now() - warmStart < WARM_TIMEOUT_MS) {
      stats = await (await fetch(`${berth.url}/stats/pool`)).json();
      if (stats.idle >= Number(POOL_MIN)) break;
      await sleep(500);
    }
    console.log(`warm pool: idle=${stats.idle} prepared=${stats.prepared} total=${stats.total} after ${((Date.now() - warmStart) / 1000).toFixed(1)} s`);
    if (stats.idle < Number(POOL_MIN)) console.log(`WARNING: pool did not reach ${POOL_MIN} idle containers`);

    // Ramp: user i starts at i / RATE seconds.
    const began = performance.now();
    const runs = [];
    for (let i = 0; i < USERS; i++) {
      const due = began + (i * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      runs.push(user(berth.url));
    }
    const results = await Promise.all(runs);
    const rampS = (performance.now() - began) / 1000;
    const ok = results.filter((r) => r.ms !== undefined).map((r) => r.ms).sort((a, b) => a - b);
    const errors = results.filter((r) => r.error);
    const distinct = new Set(results.filter((r) => r.container).map((r) => r.container)).size;
    const after = await (await fetch(`${berth.url}/stats/pool`)).json();
    console.log(`users=${USERS} rate=${RATE}/s ready=${ok.length} errors=${errors.length} distinct_containers=${distinct} wall=${rampS.toFixed(1)} s`);
    if (errors.length) console.log(`errors: ${[...new Set(errors.map((e) => e.error))].join(", ")}`);
    console.log(`connect -> system:ready ms: p50=${fmt(pct(ok, 50))} p95=${fmt(pct(ok, 95))} p99=${fmt(pct(ok, 99))} max=${fmt(ok.at(-1))} min=${fmt(ok[0])}`);
    console.log(`server acquireMs: ${JSON.stringify(after.acquireMs)} pool after: idle=${after.idle} active=${after.active} total=${after.total}`);
    summary = { mode, users: USERS, rate: RATE, ready: ok.length, errors: errors.length, p50: pct(ok, 50), p95: pct(ok, 95), p99: pct(ok, 99), max: ok.at(-1) };
    console.log(JSON.stringify(summary));

    // Tidy up: end every session (destroys its container), bounded, then close the sockets.
    await Promise.all(
      results.map(async (r) => {
        try {
          if (r.socket.connected) await r.socket.timeout(10000).emitWithAck("session:end");
        } catch {
          /* the stop + removeContainers below catch what is left */
        }
        r.socket.disconnect();
      }),
    );
  } finally {
    if (berth) {
      // Berth's own clean-up first (SIGTERM: idle containers removed), bounded; then the harness's.
      await Promise.race([berth.kill("SIGTERM"), sleep(20000)]);
      const left = countContainers(berth.replica);
      await berth.stop(); // SIGKILL if still running, then removes every container of its replica
      removeContainers(berth.replica);
      // (With POOL_MIN_SIZE = USERS the pool refills behind every session:end, and SIGTERM's bounded
      // clean-up cannot remove hundreds of idle containers in time: the harness removes the rest.)
      console.log(`containers present after SIGTERM: ${left}; after the harness clean-up: ${countContainers(berth.replica)} (must be 0)`);
    }
  }
  return summary;
}

const redis = await startRedis();
const summaries = [];
try {
  for (const mode of MODES) summaries.push(await runMode(redis, mode));
} finally {
  await redis.stop();
}
console.log(`\nconnect -> system:ready, ${USERS} users at ${RATE}/s, warm pool of ${POOL_MIN} (ms)`);
console.log("mode          ready errors    p50    p95    p99    max");
for (const s of summaries)
  console.log(`${s.mode.padEnd(12)} ${String(s.ready ?? 0).padStart(6)} ${String(s.errors).padStart(6)} ${fmt(s.p50).padStart(6)} ${fmt(s.p95).padStart(6)} ${fmt(s.p99).padStart(6)} ${fmt(s.max).padStart(6)}`);
process.exit(summaries.some((s) => s.errors) ? 1 : 0);
