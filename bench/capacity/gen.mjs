// The light load generator of bench/capacity: many socket.io-client users in one Node process
// (an idle socket costs a few tens of KB and no CPU here, so one process holds thousands).
// Forked by capacity.mjs with its settings in CAPBENCH_GEN (JSON); talks to it over IPC:
//   -> {type:"tick", ...counters}  every second (the run's timeline)
//   -> {type:"holding", ...}       concurrency mode: every user is ready (or failed) and held
//   -> {type:"done", result}       at the end
//   <- {type:"release"}            concurrency mode: end the hold, disconnect everybody
//   <- {type:"abort", reason}      stop starting users, disconnect everybody, report
// Every loop is bounded: the schedule is a finite list, every user has deadlines, and the drain
// after the last start is bounded by drainTimeoutMs.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance, monitorEventLoopDelay } from "node:perf_hooks";
import { guideUser, heldUser } from "./lib/vu.mjs";
import { arrivalSchedule, summarize } from "./lib/stats.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = JSON.parse(process.env.CAPBENCH_GEN || "{}");

// The official client, from the repo's own npm trees (installed by scripts/install.sh).
function loadClient() {
  for (const dir of ["../../tests/e2e", "../artillery", "../../client"]) {
    const pkg = path.resolve(here, dir, "package.json");
    if (!existsSync(path.resolve(here, dir, "node_modules/socket.io-client"))) continue;
    return createRequire(pkg)("socket.io-client");
  }
  throw new Error("socket.io-client not found: run npm ci in tests/e2e (scripts/install.sh does)");
}
const { io } = loadClient();

const send = (msg) => (process.send ? process.send(msg) : console.log(JSON.stringify(msg)));
const T0 = performance.now();
const secs = () => (performance.now() - T0) / 1000;

// ---- the recorder: counters, error codes, latency samples, one timeline row per second
const counters = { started: 0, ready: 0, completed: 0, failed: 0, queued: 0, turns: 0, open: 0, peakOpen: 0 };
const errors = {};
const errorExamples = {};
const samples = { ready_ms: [], ack_ms: [], approval_wait_ms: [], tool_ms: [], answer_ms: [], turn_ms: [], start_lag_ms: [] };
const containers = new Set();
const MAX_SAMPLES = 500000; // per metric; a 100/s x 360 s run makes 36,000

function sample(name, ms) {
  const arr = samples[name];
  if (arr.length < MAX_SAMPLES) arr.push(ms);
}
function recorder() {
  let open = false;
  return {
    started() {
      counters.started++;
      counters.open++;
      open = true;
      counters.peakOpen = Math.max(counters.peakOpen, counters.open);
    },
    ready(ms, info) {
      counters.ready++;
      sample("ready_ms", ms);
      if (cfg.mode === "concurrency" && info?.containerId) containers.add(info.containerId);
    },
    sample,
    turn() {
      counters.turns++;
    },
    completed() {
      counters.completed++;
      this.gone();
    },
    failed(code, detail) {
      counters.failed++;
      errors[code] = (errors[code] || 0) + 1;
      if (!errorExamples[code]) errorExamples[code] = String(detail ?? "").slice(0, 200);
      this.gone();
    },
    queued() {
      counters.queued++;
    },
    gone() {
      if (open) counters.open--;
      open = false;
    },
  };
}

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
const tick = setInterval(() => send({ type: "tick", t: secs(), ...counters }), 1000);

let aborted = null;
let releaseHold;
const released = new Promise((r) => (releaseHold = r));
process.on("message", (m) => {
  if (m?.type === "abort") {
    aborted = m.reason || "aborted";
    releaseHold();
  }
  if (m?.type === "release") releaseHold();
});
process.on("disconnect", () => {
  aborted = "parent gone";
  releaseHold();
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const opt = {
  transport: cfg.transport,
  path: cfg.path,
  connectTimeoutMs: cfg.connectTimeoutMs,
  readyTimeoutMs: cfg.readyTimeoutMs,
  turnTimeoutMs: cfg.turnTimeoutMs,
  thinkMs: cfg.thinkMs,
  intervalMs: cfg.intervalMs,
};

// offsetMs: this process's slots start that much later (several processes interleave).
async function rateMode() {
  const schedule = arrivalSchedule({ rampRate: cfg.rampRate, rampS: cfg.rampS, rate: cfg.rate, durationS: cfg.durationS, maxUsers: cfg.maxUsers });
  const users = [];
  const begin = performance.now() + (cfg.offsetMs ?? 0);
  for (const slot of schedule) {
    if (aborted) break;
    const wait = begin + slot.at - performance.now();
    if (wait > 1) await sleep(wait);
    sample("start_lag_ms", performance.now() - (begin + slot.at));
    users.push(guideUser(io, cfg.url, opt, recorder()));
  }
  const startedFor = (performance.now() - begin) / 1000;
  // Drain: every user has its own deadlines; this bound only guards against a bug.
  await Promise.race([Promise.all(users), sleep(cfg.drainTimeoutMs)]);
  return { scheduled: schedule.length, startedForS: startedFor };
}

async function concurrencyMode() {
  const users = [];
  const begin = performance.now() + (cfg.offsetMs ?? 0);
  for (let i = 0; i < cfg.users && !aborted; i++) {
    const due = begin + (i * 1000) / cfg.connectRate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sample("start_lag_ms", performance.now() - due);
    users.push(heldUser(io, cfg.url, opt, recorder(), released));
  }
  // Hold starts when every user is ready or failed (bounded by the ready deadline + slack).
  const deadline = performance.now() + cfg.readyTimeoutMs + 5000;
  while (!aborted && counters.ready + counters.failed < users.length && performance.now() < deadline) await sleep(200);
  send({ type: "holding", t: secs(), ...counters, containers: [...containers] });
  await Promise.race([released, sleep(cfg.holdTimeoutMs)]);
  releaseHold();
  await Promise.race([Promise.all(users), sleep(cfg.drainTimeoutMs)]);
  return { scheduled: cfg.users, connectedForS: (performance.now() - begin) / 1000 };
}

const cpu0 = process.cpuUsage();
send({ type: "started", t: secs() });
let shape;
try {
  shape = cfg.mode === "concurrency" ? await concurrencyMode() : await rateMode();
} finally {
  clearInterval(tick);
}
loop.disable();
const cpu = process.cpuUsage(cpu0);
const latency = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, summarize(v)]));
const result = {
  generator: "light",
  ...shape,
  aborted,
  wallS: secs(),
  counters: { ...counters },
  errors,
  errorExamples,
  latency,
  eventLoopDelayMs: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
  selfCpuS: (cpu.user + cpu.system) / 1e6,
  rssBytes: process.memoryUsage().rss,
  rawSamples: samples, // for merging several generator processes
};
// Exit once the report is written to the IPC channel, even if a socket lingers.
if (process.send) process.send({ type: "done", result }, () => process.exit(0));
else {
  console.log(JSON.stringify({ type: "done", result }));
  process.exit(0);
}
