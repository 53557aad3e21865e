// bench/capacity: capacity benchmark of Berth at the deployment guide's shape (issue 13).
// Started by run.sh (which documents every setting); see README.md for what is measured and how.
//
// One run = for each generator (light, artillery): open the target (start an own berth + redis,
// or discover a running single berth / scale stack), wait for the warm pool, take a baseline
// sample, run the generator while sampling the host every SAMPLE_S, take the final sample, wait
// (bounded) for the sessions that disconnected without session:end to be reaped, close the target
// (own: stop, remove every container of its replica), then judge the run and write
// OUT_DIR/capacity-<mode>-<stamp>.json plus a summary table on stdout.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { growthTest } from "./lib/stats.mjs";
import {
  containerMemoryBytes, containersCpuS, getJson, hostCpu, managedContainers, pidsByComm, procTree,
  procsSnapshot, redisInfo, scrapeMetrics, shimPids, smapsRollup,
} from "./lib/probe.mjs";
import { openExternal, startOwn } from "./lib/target.mjs";
import { runArtillery, runLight } from "./lib/generators.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../..");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const env = process.env;
const num = (name, dflt) => {
  const v = env[name];
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got '${v}'`);
  return n;
};

// ------------------------------------------------------------------ settings
const MODE = env.MODE || "rate";
if (!["rate", "soak", "concurrency"].includes(MODE)) throw new Error(`MODE must be rate, soak or concurrency, got '${MODE}'`);
const GENERATORS = (env.GENERATOR || "light") === "both" ? ["light", "artillery"] : [env.GENERATOR || "light"];
for (const g of GENERATORS) if (!["light", "artillery"].includes(g)) throw new Error(`GENERATOR must be light, artillery or both, got '${g}'`);
if (MODE === "concurrency" && GENERATORS.includes("artillery")) throw new Error("concurrency mode uses the light generator only (GENERATOR=light)");
const GUIDE = env.SHAPE === "guide"; // the guide's 50/s x 60 s then 100/s x 300 s

const cfg = {
  mode: MODE,
  benchNice: Number(env.BENCH_NICE || 0),  // run.sh: the autogroup priority of Berth, Redis and the generator
  target: (env.TARGET || "").replace(/\/$/, ""),
  transport: env.TRANSPORT || "websocket",
  thinkMs: num("THINK_MS", MODE === "concurrency" ? 1000 : 5000),
  // concurrency: users wait for containers being created (N distinct containers are needed)
  readyTimeoutMs: num("READY_TIMEOUT_MS", MODE === "concurrency" ? 120000 : 30000),
  turnTimeoutMs: num("TURN_TIMEOUT_MS", 30000),
  connectTimeoutMs: num("CONNECT_TIMEOUT_MS", 20000),
  sampleS: num("SAMPLE_S", MODE === "soak" ? 30 : 5),
  maxErrorRate: num("MAX_ERROR_RATE", 0.01),
  containerGuard: num("CONTAINER_GUARD", 3000),
  // rate / soak
  rampRate: num("RAMP_RATE", GUIDE ? 50 : MODE === "soak" ? 0 : 1),
  rampS: num("RAMP_S", GUIDE ? 60 : MODE === "soak" ? 0 : 10),
  rate: num("RATE", GUIDE ? 100 : MODE === "soak" ? 1 : 2),
  durationS: num("DURATION_S", GUIDE ? 300 : MODE === "soak" ? 1800 : 30),
  maxUsers: num("MAX_USERS", 1000000),
  // concurrency
  users: num("USERS", 20),
  connectRate: num("CONNECT_RATE", 5),
  // light generator processes (each a share of the users; >1 to use more than one core)
  genProcs: num("GEN_PROCS", 1),
  holdS: num("HOLD_S", 30),
  intervalMs: num("MSG_INTERVAL_MS", 5000),
  // after the run: wait for disconnected sessions to be reaped (own target) before cleaning up
  reapWaitS: num("REAP_WAIT_S", 0),
  outDir: env.OUT_DIR || path.join(repoRoot, "bench/results/capacity"),
};
if (cfg.connectRate <= 0) throw new Error("CONNECT_RATE must be > 0");
if (!["websocket", "polling-upgrade"].includes(cfg.transport)) throw new Error(`TRANSPORT must be websocket or polling-upgrade, got '${cfg.transport}'`);
if (cfg.target) {
  const host = new URL(cfg.target).hostname.replace(/^\[|\]$/g, "");
  if (env.ALLOW_NON_LOOPBACK !== "1" && !/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(host))
    throw new Error(`refusing non-loopback TARGET ${cfg.target} (ALLOW_NON_LOOPBACK=1 for a stack you own)`);
}

// The own berth: pool and session settings (any other Berth variable through BERTH_SET="K=V ...").
const ownEnv = () => {
  const users = MODE === "concurrency" ? cfg.users : 0;
  const e = {
    LLM_PROVIDER: "local",
    LOG_LEVEL: env.BERTH_LOG_LEVEL || "warn",
    POOL_MIN_SIZE: env.POOL_MIN_SIZE || String(MODE === "concurrency" ? Math.min(users, 100) : 10),
    POOL_MAX_SIZE: env.POOL_MAX_SIZE || String(Math.min(10000, Math.max(100, users + 20))),
    // The cluster-wide cap (default 1,000) must not be what a concurrency run of more users meets.
    MAX_CONTAINERS: env.MAX_CONTAINERS || String(Math.max(1000, users + 100)),
    // Sessions that disconnect without session:end keep their container this long: short by
    // default so a run cannot pile up thousands of containers (the product default is 15 min).
    SESSION_IDLE_TIMEOUT_MS: env.SESSION_IDLE_TIMEOUT_MS || "60000",
    // A disconnected session parks this long, then hibernates (its container recycled); it must
    // be below the idle timeout (Berth refuses to start otherwise): half of it, at most 30 s.
    SESSION_DETACH_GRACE_MS: env.SESSION_DETACH_GRACE_MS ||
      String(Math.min(30000, Math.floor(Number(env.SESSION_IDLE_TIMEOUT_MS || "60000") / 2))),
    CONTAINER_MEMORY: env.CONTAINER_MEMORY || "64m",
    // Below the generator's ready deadline, so a user who waited too long gets the server's own
    // POOL_EXHAUSTED rather than a client-side timeout.
    ACQUIRE_TIMEOUT_MS: env.ACQUIRE_TIMEOUT_MS || String(Math.max(1000, cfg.readyTimeoutMs - 5000)),
    MAX_CONNECTIONS: env.MAX_CONNECTIONS || "50000",
    // Every generated user comes from this one address: the per-address limits are off
    // (docs/HARDENING.md, "Load tests").
    MAX_CONNECTIONS_PER_ADDRESS: "0",
    MAX_ENGINEIO_SESSIONS_PER_ADDRESS: "0",
    NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE: "0",
    MAX_SESSIONS_PER_ADDRESS: "0",
  };
  for (const kv of (env.BERTH_SET || "").split(/\s+/).filter(Boolean)) {
    const i = kv.indexOf("=");
    if (i <= 0) throw new Error(`BERTH_SET: '${kv}' is not K=V`);
    e[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return e;
};

function berthBinary() {
  if (env.BERTH_BIN) return env.BERTH_BIN;
  const dirs = env.BERTH_BUILD_DIR ? [env.BERTH_BUILD_DIR] : ["build/release", "build/ci", "build/debug"].map((d) => path.join(repoRoot, d));
  for (const d of dirs) if (existsSync(path.join(d, "src/app/berth"))) return path.join(d, "src/app/berth");
  throw new Error(`no berth binary in ${dirs.join(", ")} (build it, or set BERTH_BIN / BERTH_BUILD_DIR)`);
}

function git(args) {
  try {
    return execFileSync("git", ["-C", repoRoot, ...args], { timeout: 5000 }).toString().trim();
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ sampling
// Berth counters read from /metrics (summed over replicas). The recycling/hibernation ones come
// with issue 13's pool work; absent ones are reported as "n/a".
const METRICS = [
  "berth_pool_creates_total", "berth_pool_destroyed_total", "berth_pool_recycled_total",
  "berth_pool_recycle_failures_total", "berth_sessions_hibernated_total", "berth_pool_exhausted_total",
  "berth_pool_create_failures_total", "berth_sessions_reaped_total", "berth_gateway_provision_failures_total",
  "berth_engineio_sessions", "berth_pool_idle", "berth_pool_active", "berth_pool_creating", "berth_pool_waiting",
  "berth_engineio_sessions_opened_total",
];

async function scrapeAll(target) {
  const urls = await target.metricsUrls();
  const all = await Promise.all(urls.map((u) => scrapeMetrics(u)));
  const ok = all.filter(Boolean);
  if (!ok.length) return null;
  const out = {};
  for (const name of METRICS) {
    const present = ok.filter((m) => name in m);
    out[name] = present.length ? present.reduce((a, m) => a + m[name], 0) : null;
  }
  out.$replicasScraped = ok.length;
  out.$perReplicaSessionsOpened = ok.map((m) => m.berth_engineio_sessions_opened_total ?? null);
  return out;
}

async function takeSample(ctx, label) {
  const t = (performance.now() - ctx.t0) / 1000;
  const replicas = await ctx.target.replicas();
  const [redis, containers, metrics] = await Promise.all([
    ctx.target.redisCli ? redisInfo(ctx.target.redisCli) : null,
    managedContainers(replicas),
    scrapeAll(ctx.target),
  ]);
  const shims = pidsByComm(["containerd-shim-runc-v2"]);
  const s = {
    t,
    label,
    at: new Date().toISOString(),
    berth: procsSnapshot(ctx.target.berthPids()),
    redis,
    containers: containers ? { alive: containers.filter((c) => c.state === "running").length, total: containers.length } : null,
    metrics,
    dockerd: procsSnapshot(ctx.dockerdPids),
    containerd: procsSnapshot(ctx.containerdPids),
    shims: { count: shims.length, ...(procsSnapshot(shims) ?? {}) },
    containersCpuS: containersCpuS(),
    host: hostCpu(),
    loadavg: os.loadavg()[0],
    gen: ctx.genPids?.length ? procsSnapshot(ctx.genPids.flatMap((pid) => procTree(pid))) : null,
    genTick: ctx.lastTick ?? null,
  };
  ctx.samples.push(s);
  const c = s.containers?.alive ?? "?";
  const open = s.metrics?.berth_engineio_sessions ?? "?";
  const tick = ctx.lastTick;
  console.error(
    `[${t.toFixed(0).padStart(5)} s] ${label.padEnd(8)} containers=${c} open=${open}` +
      (tick ? ` started=${tick.started} ready=${tick.ready} done=${tick.completed} failed=${tick.failed}` : "") +
      ` berthRSS=${mb(s.berth?.rssBytes)} redis=${mb(redis?.usedMemory)} load=${s.loadavg.toFixed(1)}`,
  );
  return s;
}

const mb = (b) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(1)}MB` : "n/a");

// ------------------------------------------------------------------ one run
let currentGen = null;
async function warmPool(target) {
  if (target.kind !== "own" || env.WARM === "0") return null;
  const want = Number(ownEnv().POOL_MIN_SIZE);
  const deadline = Date.now() + num("WARM_TIMEOUT_S", 900) * 1000;
  let stats = null;
  const t0 = Date.now();
  while (Date.now() < deadline) {
    stats = await getJson(`${target.url}/stats/pool`);
    if (stats && stats.idle >= want && (stats.prepared ?? stats.idle) >= want) break;
    await sleep(500);
  }
  console.error(`warm pool: idle=${stats?.idle} prepared=${stats?.prepared} after ${((Date.now() - t0) / 1000).toFixed(1)} s (wanted ${want})`);
  return { idle: stats?.idle, prepared: stats?.prepared, wanted: want, seconds: (Date.now() - t0) / 1000 };
}

async function runOnce(generator, stamp) {
  const runDir = path.join(cfg.outDir, `${stamp}-${MODE}-${generator}`);
  mkdirSync(runDir, { recursive: true });
  let target;
  try {
    target = cfg.target
      ? await openExternal(cfg.target)
      : await startOwn({ berthBin: berthBinary(), repoRoot, env: ownEnv(), redisMaxmemory: env.REDIS_MAXMEMORY || "512mb", logDir: runDir,
        // Berth reports ready once its pool has warmed or its start-up warm-up (120 s) gave up and
        // the pool carries on filling; the WARM wait below follows the rest.
        readyTimeoutMs: 180000 });
  } catch (err) {
    console.error(`target did not come up: ${err.message}`);
    return { generator, target: { kind: cfg.target ? "external" : "own", url: cfg.target || null }, error: `target did not come up: ${err.message}`, samples: [] };
  }
  console.error(`target: ${JSON.stringify(target.describe())}`);
  const ctx = {
    target, runDir, t0: performance.now(), samples: [], genPids: [], lastTick: null,
    dockerdPids: pidsByComm(["dockerd"]), containerdPids: pidsByComm(["containerd"]),
    startSample: null,
  };
  // The measured window opens when the generator starts its first user (not at its own start-up).
  ctx.markStart = () => {
    if (!ctx.startSample) ctx.startSample = takeSample(ctx, "start");
  };
  const run = { generator, target: target.describe(), guard: null };
  try {
    run.warm = await warmPool(target);
    const base = await takeSample(ctx, "baseline");
    const gen = generator === "light" ? runLight(ctx, cfg) : runArtillery(ctx, cfg);
    currentGen = gen;
    let holding = null;
    let memory = null;
    if (MODE === "concurrency") {
      ctx.onHolding = (m) => (holding = m);
    }
    // Sample until the generator is done; bounded by the run's planned length plus slack.
    const planned = MODE === "concurrency"
      ? cfg.users / cfg.connectRate + cfg.readyTimeoutMs / 1000 + cfg.holdS
      : cfg.rampS + cfg.durationS + (cfg.readyTimeoutMs + cfg.thinkMs + 3 * cfg.turnTimeoutMs) / 1000;
    const hardDeadline = performance.now() + (planned + 600) * 1000;
    let finished = null;
    gen.done.then((r) => (finished = r));
    let holdStart = null;
    let nextSample = performance.now() + cfg.sampleS * 1000;
    while (!finished && performance.now() < hardDeadline) {
      const holdEnd = holdStart && !memory ? holdStart + cfg.holdS * 1000 : Infinity;
      await Promise.race([gen.done, sleep(Math.max(0, Math.min(nextSample, holdEnd) - performance.now()))]);
      if (finished) break;
      if (holding && !holdStart) {
        holdStart = performance.now();
        await takeSample(ctx, "hold");
        nextSample = performance.now() + cfg.sampleS * 1000;
        continue;
      }
      if (holdStart && performance.now() >= holdStart + cfg.holdS * 1000 && !memory) {
        const s = await takeSample(ctx, "hold-end");
        memory = memoryPerUser(base, s, holding);
        gen.release();
        continue;
      }
      if (performance.now() >= nextSample) {
        const s = await takeSample(ctx, "run");
        nextSample += cfg.sampleS * 1000;
        if ((s.containers?.total ?? 0) > cfg.containerGuard && !run.guard) {
          run.guard = `containers of the target (${s.containers.total}) above CONTAINER_GUARD=${cfg.containerGuard}: run aborted`;
          console.error(run.guard);
          gen.abort(run.guard);
        }
        if (!target.alive()) {
          run.guard = "berth exited during the run";
          gen.abort(run.guard);
        }
      }
    }
    if (!finished) {
      gen.kill();
      run.guard = run.guard || "generator did not finish within its bound: killed";
      finished = await Promise.race([gen.done, sleep(10000).then(() => ({ generator, crashed: "killed" }))]);
    }
    run.result = finished;
    run.final = await takeSample(ctx, "final");
    run.baseline = base;
    run.start = (await ctx.startSample) ?? base;
    run.memory = memory;
    run.reap = await waitReaped(ctx);
  } catch (err) {
    run.error = String(err?.stack || err);
    console.error(`run failed: ${run.error}`);
  } finally {
    ctx.genPids = [];
    currentGen = null;
    run.cleanup = await target.close();
    run.samples = ctx.samples;
    if (target.kind === "own") console.error(`cleanup: removed ${run.cleanup.found} containers of ${run.target.replica}, ${run.cleanup.left} left`);
  }
  return run;
}

// Sessions that disconnected without session:end keep their container until the idle timeout;
// REAP_WAIT_S > 0 waits (bounded) until every container of the target is a pool container again
// (alive - pool total = 0), which shows the janitor reclaims what the run left.
async function waitReaped(ctx) {
  if (!cfg.reapWaitS) return null;
  const t0 = performance.now();
  const deadline = t0 + cfg.reapWaitS * 1000;
  let detached = null;
  while (performance.now() < deadline) {
    const urls = await ctx.target.metricsUrls();
    const [list, ...stats] = await Promise.all([managedContainers(await ctx.target.replicas()), ...urls.map((u) => getJson(`${u}/stats/pool`))]);
    if (list && stats.length && stats.every(Boolean)) {
      detached = Math.max(0, list.length - stats.reduce((a, st) => a + st.total, 0));
      if (detached === 0) break;
    }
    await sleep(1000);
  }
  const s = await takeSample(ctx, "reaped");
  return { seconds: (performance.now() - t0) / 1000, detachedLeft: detached, containers: s.containers };
}

// Concurrency mode: memory per held user from the baseline (warm pool, nobody connected) and the
// sample at the end of the hold, plus the users' own containers (cgroup) and their shims.
function memoryPerUser(base, held, holding) {
  const n = holding?.ready ?? 0;
  if (!n) return { users: 0 };
  const ids = holding.containers ?? [];
  const shimByContainer = shimPids();
  let cg = 0, cgN = 0, shimPss = 0, shimPriv = 0, shimN = 0;
  for (const id of ids) {
    const m = containerMemoryBytes(id);
    if (m !== null) {
      cg += m;
      cgN++;
    }
    const pid = shimByContainer.get(id);
    const r = pid && smapsRollup(pid);
    if (r) {
      shimPss += r.pss;
      shimPriv += r.privateDirty;
      shimN++;
    }
  }
  const berthDelta = (held.berth?.rssBytes ?? NaN) - (base.berth?.rssBytes ?? NaN);
  const redisDelta = (held.redis?.usedMemory ?? NaN) - (base.redis?.usedMemory ?? NaN);
  const perUser = {
    berthRss: berthDelta / n,
    redisUsedMemory: redisDelta / n,
    container: cgN ? cg / cgN : null,
    shimPss: shimN ? shimPss / shimN : null,
    shimPrivateDirty: shimN ? shimPriv / shimN : null,
  };
  perUser.totalWithoutShim = perUser.berthRss + perUser.redisUsedMemory + (perUser.container ?? 0);
  perUser.totalWithShim = perUser.totalWithoutShim + (perUser.shimPss ?? 0);
  return { users: n, containersMeasured: cgN, shimsMeasured: shimN, berthRssDelta: berthDelta, redisDelta, perUserBytes: perUser };
}

// ------------------------------------------------------------------ the report
const d = (a, b) => (Number.isFinite(a) && Number.isFinite(b) ? b - a : null);

function analyse(run) {
  const r = run.result ?? {};
  const c = r.counters ?? {};
  const base = run.baseline;
  const fin = run.final;
  const samples = run.samples.filter((s) => s.label !== "reaped");
  const started = c.started ?? 0;
  const failed = c.failed ?? 0;
  const errorRate = started ? failed / started : null;
  const perSession = (x) => (Number.isFinite(x) && started ? (x * 1000) / started : null);
  const metric = (name) => {
    const a = (run.start ?? base)?.metrics?.[name];
    const b = fin?.metrics?.[name];
    return a === null || a === undefined || b === null || b === undefined ? "n/a" : b - a;
  };
  const peak = (f) => samples.reduce((m, s) => Math.max(m, f(s) ?? -Infinity), -Infinity);
  // CPU and counters over the measured window (first user started -> final sample); memory
  // against the baseline (before any user).
  const w0 = run.start ?? base;
  const win = samples.filter((s) => s.t >= (w0?.t ?? 0));
  const wall = fin && w0 ? fin.t - w0.t : null;
  const berthCpu = d(w0?.berth?.cpuS, fin?.berth?.cpuS);
  const openSamples = win.filter((s) => Number.isFinite(s.metrics?.berth_engineio_sessions)).map((s) => s.metrics.berth_engineio_sessions);
  const avgOpen = openSamples.length ? openSamples.reduce((a, b) => a + b, 0) / openSamples.length : null;
  const peakOpen = openSamples.length ? Math.max(...openSamples) : null;
  // Generator CPU in the window: the light generator measures itself from its first user on;
  // Artillery's total (bash `times`) minus what it had used when its first phase started.
  const genCpu = r.generator === "light" ? r.selfCpuS ?? null
    : Number.isFinite(r.totalCpuS) ? r.totalCpuS - (w0?.gen?.cpuS ?? 0) : null;
  const genStartupCpu = r.generator === "artillery" ? w0?.gen?.cpuS ?? null : null;
  const redisMax = fin?.redis?.maxmemory || base?.redis?.maxmemory || null;
  const redisPeak = peak((s) => s.redis?.usedMemory);
  const hostBusy = d(w0?.host?.busyS, fin?.host?.busyS);
  const cores = os.cpus().length;
  const sustained = MODE !== "concurrency" && cfg.durationS > 0 ? (started - Math.round(cfg.rampRate * cfg.rampS)) / cfg.durationS : null;
  const out = {
    generator: run.generator,
    sessions: {
      scheduled: r.scheduled ?? null, started, ready: c.ready ?? 0, completed: c.completed ?? 0, failed,
      errorRate, errors: r.errors ?? {}, errorExamples: r.errorExamples ?? {}, queued: c.queued ?? 0, turns: c.turns ?? null,
    },
    latencyMs: r.latency ?? {},
    containers: {
      aliveBaseline: base?.containers?.alive ?? null,
      alivePeak: peak((s) => s.containers?.alive),
      aliveEnd: fin?.containers?.alive ?? null,
      created: metric("berth_pool_creates_total"),
      recycled: metric("berth_pool_recycled_total"),
      recycleFailures: metric("berth_pool_recycle_failures_total"),
      destroyed: metric("berth_pool_destroyed_total"),
      hibernated: metric("berth_sessions_hibernated_total"),
      poolExhausted: metric("berth_pool_exhausted_total"),
      createFailures: metric("berth_pool_create_failures_total"),
      sessionsReaped: metric("berth_sessions_reaped_total"),
    },
    berth: {
      rssBaseline: base?.berth?.rssBytes ?? null,
      rssPeak: peak((s) => s.berth?.rssBytes),
      rssEnd: fin?.berth?.rssBytes ?? null,
      fdsPeak: peak((s) => s.berth?.fds),
      cpuS: berthCpu,
      cpuPctOfCore: wall && berthCpu !== null ? (100 * berthCpu) / wall : null,
      cpuMsPerSession: perSession(berthCpu),
      openSocketsAvg: avgOpen,
      openSocketsPeak: peakOpen,
      rssPerOpenSocketBytes: peakOpen ? (peak((s) => s.berth?.rssBytes) - (base?.berth?.rssBytes ?? 0)) / peakOpen : null,
      cpuPctPerOpenSocket: avgOpen && wall && berthCpu !== null ? (100 * berthCpu) / wall / avgOpen : null,
      replicasScraped: fin?.metrics?.$replicasScraped ?? null,
      sessionsOpenedPerReplica: fin?.metrics?.$perReplicaSessionsOpened?.map((v, i) => d(w0?.metrics?.$perReplicaSessionsOpened?.[i], v)) ?? null,
    },
    redis: {
      usedMemoryBaseline: base?.redis?.usedMemory ?? null,
      usedMemoryPeak: redisPeak,
      usedMemoryEnd: fin?.redis?.usedMemory ?? null,
      maxmemory: redisMax,
      peakPctOfMaxmemory: redisMax ? (100 * redisPeak) / redisMax : null,
      keysPeak: peak((s) => s.redis?.keys),
      keysEnd: fin?.redis?.keys ?? null,
      evictedKeys: d(w0?.redis?.evictedKeys, fin?.redis?.evictedKeys),
      cpuS: d(w0?.redis?.cpuS, fin?.redis?.cpuS),
      cpuMsPerSession: perSession(d(w0?.redis?.cpuS, fin?.redis?.cpuS)),
    },
    docker: {
      dockerdCpuS: d(w0?.dockerd?.cpuS, fin?.dockerd?.cpuS),
      dockerdCpuMsPerSession: perSession(d(w0?.dockerd?.cpuS, fin?.dockerd?.cpuS)),
      containerdCpuS: d(w0?.containerd?.cpuS, fin?.containerd?.cpuS),
      containerdCpuMsPerSession: perSession(d(w0?.containerd?.cpuS, fin?.containerd?.cpuS)),
      containersCpuS: d(w0?.containersCpuS, fin?.containersCpuS),
      containersCpuMsPerSession: perSession(d(w0?.containersCpuS, fin?.containersCpuS)),
      shimsAtEnd: fin?.shims?.count ?? null,
    },
    loadGenerator: {
      cpuS: genCpu,
      cpuPctOfCore: wall && genCpu !== null ? (100 * genCpu) / wall : null,
      cpuMsPerSession: perSession(genCpu),
      startupCpuS: genStartupCpu,
      eventLoopDelayMs: r.eventLoopDelayMs ?? null,
      startLagMs: r.latency?.start_lag_ms ?? null,
    },
    host: {
      cores,
      wallS: wall,
      busyPctOfAllCores: wall && hostBusy !== null ? (100 * hostBusy) / (wall * cores) : null,
      busyCpuMsPerSession: perSession(hostBusy),
      loadavgPeak: peak((s) => s.loadavg),
    },
    achievedSustainedRate: sustained,
    memory: run.memory,
    reap: run.reap,
    cleanup: run.cleanup,
    guard: run.guard,
    error: run.error ?? r.crashed ?? null,
  };
  if (MODE === "soak") out.soak = soakVerdict(run.samples.filter((s) => s.label === "run" || s.label === "final"));
  out.verdict = verdict(out);
  return out;
}

// The soak's growth test over the second half (see lib/stats.mjs growthTest and README).
const SOAK_SERIES = [
  ["berth RSS (bytes)", (s) => s.berth?.rssBytes, 8 * 1048576, 0.05],
  ["berth open fds", (s) => s.berth?.fds, 32, 0.05],
  ["redis keys", (s) => s.redis?.keys, 100, 0.10],
  ["redis used_memory (bytes)", (s) => s.redis?.usedMemory, 4 * 1048576, 0.10],
  ["containers alive", (s) => s.containers?.alive, 10, 0.10],
];
function soakVerdict(samples) {
  const tests = {};
  for (const [name, f, absTolerance, relTolerance] of SOAK_SERIES) {
    tests[name] = growthTest(samples.map((s) => ({ t: s.t, y: f(s) })), { absTolerance, relTolerance });
  }
  return { tests, grows: Object.entries(tests).filter(([, t]) => t.verdict === "grows").map(([k]) => k) };
}

function verdict(a) {
  const reasons = [];
  if (a.error) reasons.push(`harness error: ${a.error.split("\n")[0]}`);
  if (a.guard) reasons.push(a.guard);
  if (!a.sessions.started) reasons.push("no session started");
  if (!a.sessions.completed) reasons.push("no session completed");
  if (a.sessions.errorRate !== null && a.sessions.errorRate > cfg.maxErrorRate)
    reasons.push(`error rate ${(100 * a.sessions.errorRate).toFixed(2)} % > ${(100 * cfg.maxErrorRate).toFixed(2)} %`);
  if (a.soak?.grows.length) reasons.push(`soak: grows without bound: ${a.soak.grows.join(", ")}`);
  if (a.soak && Object.values(a.soak.tests).some((t) => t.verdict === "too-few-samples")) reasons.push("soak: too few samples in the second half (need 6)");
  if (a.reap && a.reap.detachedLeft !== 0)
    reasons.push(`containers of disconnected sessions not reaped within REAP_WAIT_S=${cfg.reapWaitS} s (left: ${a.reap.detachedLeft ?? "unknown"})`);
  if (a.cleanup?.left) reasons.push(`${a.cleanup.left} containers of the run could not be removed`);
  const p95max = num("READY_P95_MAX_MS", 0);
  if (p95max && (a.latencyMs.ready_ms?.p95 ?? Infinity) > p95max) reasons.push(`connect->ready p95 ${a.latencyMs.ready_ms?.p95?.toFixed(1)} ms > ${p95max} ms`);
  return { ok: reasons.length === 0, reasons };
}

// ------------------------------------------------------------------ printing
const f1 = (x, unit = "") => (x === null || x === undefined || x === "n/a" || !Number.isFinite(Number(x)) ? "n/a" : `${Number(x).toFixed(1)}${unit}`);
const pct3 = (l) => (l && l.count ? `${f1(l.p50)} / ${f1(l.p95)} / ${f1(l.p99)} (max ${f1(l.max)}, n=${l.count})` : "n/a");
const mib = (b) => (Number.isFinite(b) ? `${(b / 1048576).toFixed(1)} MiB` : "n/a");
const kib = (b) => (Number.isFinite(b) ? `${(b / 1024).toFixed(1)} KiB` : "n/a");

function table(a) {
  const s = a.sessions;
  const rows = [
    ["generator", a.generator],
    ["sessions started / ready / completed / failed", `${s.started} / ${s.ready} / ${s.completed} / ${s.failed}`],
    ["error rate", s.errorRate === null ? "n/a" : `${(100 * s.errorRate).toFixed(2)} %`],
    ["errors by code", Object.keys(s.errors).length ? Object.entries(s.errors).map(([k, v]) => `${k}=${v}`).join(", ") : "none"],
    ["users that saw system:queued", s.queued],
  ];
  if (MODE !== "concurrency") rows.push(["achieved sustained arrival rate", `${f1(a.achievedSustainedRate)}/s (asked ${cfg.rate}/s)`]);
  else rows.push(["tool turns while held (per ready user)", `${s.turns ?? "n/a"} (${f1(s.ready ? s.turns / s.ready : null)})`]);
  rows.push(
    ["connect -> system:ready p50/p95/p99 ms", pct3(a.latencyMs.ready_ms)],
    ["message -> tool:approval_required ms", pct3(a.latencyMs.approval_wait_ms)],
    ["tool:approval -> tool:output ms", pct3(a.latencyMs.tool_ms)],
    ["tool:approval -> agent:response ms", pct3(a.latencyMs.answer_ms)],
    [`message -> agent:response ms (incl. ${cfg.thinkMs} ms think)`, pct3(a.latencyMs.turn_ms)],
    ["containers alive baseline / peak / end", `${a.containers.aliveBaseline} / ${a.containers.alivePeak} / ${a.containers.aliveEnd}`],
    ["containers created / recycled / destroyed", `${a.containers.created} / ${a.containers.recycled} / ${a.containers.destroyed}`],
    ["recycle failures / hibernated / pool exhausted", `${a.containers.recycleFailures} / ${a.containers.hibernated} / ${a.containers.poolExhausted}`],
    ["berth RSS baseline / peak / end", `${mib(a.berth.rssBaseline)} / ${mib(a.berth.rssPeak)} / ${mib(a.berth.rssEnd)}`],
    ["berth open sockets avg / peak", `${f1(a.berth.openSocketsAvg)} / ${a.berth.openSocketsPeak ?? "n/a"}`],
    ["berth RSS per open socket (peak delta)", kib(a.berth.rssPerOpenSocketBytes)],
    ["berth CPU: % of a core / per session / per open socket", `${f1(a.berth.cpuPctOfCore, " %")} / ${f1(a.berth.cpuMsPerSession, " ms")} / ${Number.isFinite(a.berth.cpuPctPerOpenSocket) ? a.berth.cpuPctPerOpenSocket.toFixed(4) + " %" : "n/a"}`],
    ["redis used_memory peak / maxmemory", `${mib(a.redis.usedMemoryPeak)} / ${mib(a.redis.maxmemory)} (${f1(a.redis.peakPctOfMaxmemory, " %")})`],
    ["redis keys peak / end; CPU per session", `${a.redis.keysPeak} / ${a.redis.keysEnd}; ${f1(a.redis.cpuMsPerSession, " ms")}`],
    ["dockerd / containerd CPU per session", `${f1(a.docker.dockerdCpuMsPerSession, " ms")} / ${f1(a.docker.containerdCpuMsPerSession, " ms")}`],
    ["containers' own CPU per session (cgroup)", f1(a.docker.containersCpuMsPerSession, " ms")],
    ["load generator CPU: % of a core / per session", `${f1(a.loadGenerator.cpuPctOfCore, " %")} / ${f1(a.loadGenerator.cpuMsPerSession, " ms")}`],
    ["generator start lag p99 / event-loop delay p99", `${f1(a.loadGenerator.startLagMs?.p99, " ms")} / ${f1(a.loadGenerator.eventLoopDelayMs?.p99, " ms")}`],
    ["host busy (all cores) / per session; load peak", `${f1(a.host.busyPctOfAllCores, " %")} / ${f1(a.host.busyCpuMsPerSession, " ms")}; ${f1(a.host.loadavgPeak)}`],
  );
  if (a.memory?.perUserBytes) {
    const m = a.memory.perUserBytes;
    rows.push(
      ["memory per held user: berth RSS + redis + container", `${kib(m.berthRss)} + ${kib(m.redisUsedMemory)} + ${kib(m.container)} = ${mib(m.totalWithoutShim)}`],
      ["  + containerd-shim per container (PSS / private dirty)", `${mib(m.shimPss)} / ${mib(m.shimPrivateDirty)} -> ${mib(m.totalWithShim)} per user (guide: 8-10 MB)`],
    );
  }
  if (a.reap) rows.push(["disconnected sessions reaped after", `${f1(a.reap.seconds, " s")} (left: ${a.reap.detachedLeft})`]);
  if (a.soak) for (const [k, t] of Object.entries(a.soak.tests))
    rows.push([`soak: ${k}`, t.verdict === "too-few-samples" ? `too few samples (${t.samples})` : `${t.verdict}: growth ${f1(t.growth)} over ${f1(t.window)} s (tolerance ${f1(t.tolerance)})`]);
  rows.push(["cleanup: containers removed / left", `${a.cleanup?.found ?? "n/a"} / ${a.cleanup?.left ?? "n/a"}`]);
  rows.push(["verdict", a.verdict.ok ? "PASS" : `FAIL: ${a.verdict.reasons.join("; ")}`]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n");
}

// ------------------------------------------------------------------ main
const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
mkdirSync(cfg.outDir, { recursive: true });
const header = {
  date: new Date().toISOString(),
  commit: git(["rev-parse", "HEAD"]),
  branch: git(["rev-parse", "--abbrev-ref", "HEAD"]),
  dirty: Boolean(git(["status", "--porcelain", "--untracked-files=no"])),
  host: { cores: os.cpus().length, cpu: os.cpus()[0]?.model, memBytes: os.totalmem(), kernel: os.release(), loadavg: os.loadavg() },
  config: { ...cfg, ownBerthEnv: cfg.target ? null : ownEnv() },
};
console.error(`capacity: mode=${MODE} generators=${GENERATORS.join(",")} target=${cfg.target || "own berth"} commit=${header.commit?.slice(0, 12)}`);
const runs = [];
let stop = false;
// SIGINT/SIGTERM (also run.sh's time bound): stop the generator, then report and clean up as usual.
const onSignal = () => {
  stop = true;
  currentGen?.abort("signal");
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);
for (const g of GENERATORS) {
  if (stop) break;
  const run = await runOnce(g, stamp);
  runs.push({ ...analyse(run), target: run.target, warm: run.warm, samples: run.samples, timelineSource: "samples[].genTick" });
}
const file = path.join(cfg.outDir, `capacity-${MODE}-${stamp}.json`);
writeFileSync(file, JSON.stringify({ ...header, runs }, null, 1));
for (const r of runs) {
  console.log(`\n== ${MODE} / ${r.generator} / ${r.target?.kind} ${r.target?.url} (${header.date}, ${header.commit?.slice(0, 12)}${header.dirty ? "+dirty" : ""})`);
  console.log(table(r));
}
console.log(`\nresult: ${file}`);
process.exit(runs.length && runs.every((r) => r.verdict.ok) ? 0 : 1);
