// The two load generators of bench/capacity behind one interface, used by capacity.mjs and
// calibrate.mjs: runLight (gen.mjs, forked, IPC) and runArtillery (Artillery 2 with
// bench/artillery's processor). Each returns {done: Promise<result>, release(), abort(), kill()}
// and sets ctx.genPids; ctx.lastTick / ctx.onHolding / ctx.markStart receive the generator's events.
// cfg: the harness settings (mode, rates, timeouts, thinkMs, transport, runDir in ctx).
import { fork, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { summarize } from "./stats.mjs";
import { procTree } from "./probe.mjs";

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(benchDir, "../..");
const env = process.env;

// The light generator: cfg.genProcs processes (default 1), each with an equal share of the users,
// their arrival slots interleaved (process i starts i/rate s later), merged into one result.
// More than one process lets the generator use more than one core, or, on a shared host, get
// more than one process's share of the CPU.
export function runLight(ctx, cfg) {
  const procs = Math.max(1, Math.floor(cfg.genProcs || 1));
  const common = {
    mode: cfg.mode === "concurrency" ? "concurrency" : "rate",
    url: ctx.target.url,
    transport: cfg.transport,
    connectTimeoutMs: cfg.connectTimeoutMs,
    readyTimeoutMs: cfg.readyTimeoutMs,
    turnTimeoutMs: cfg.turnTimeoutMs,
    thinkMs: cfg.thinkMs,
    intervalMs: cfg.intervalMs,
    durationS: cfg.durationS,
    rampS: cfg.rampS,
    holdTimeoutMs: (cfg.holdS + 600) * 1000,
    drainTimeoutMs: cfg.readyTimeoutMs + cfg.thinkMs + 3 * cfg.turnTimeoutMs + 10000,
  };
  const children = [];
  const ticks = new Array(procs).fill(null);
  const holdings = new Array(procs).fill(null);
  const results = new Array(procs).fill(null);
  for (let i = 0; i < procs; i++) {
    const share = (total) => Math.floor(total / procs) + (i < total % procs ? 1 : 0);
    const genCfg = {
      ...common,
      rampRate: cfg.rampRate / procs,
      rate: cfg.rate / procs,
      maxUsers: Number.isFinite(cfg.maxUsers) ? share(cfg.maxUsers) : cfg.maxUsers,
      users: share(cfg.users ?? 0),
      connectRate: (cfg.connectRate ?? 1) / procs,
      // interleave: process i's slots fall i/N of the way between process 0's
      offsetMs: cfg.mode === "concurrency" ? (i * 1000) / (cfg.connectRate ?? 1) : cfg.rate > 0 || cfg.rampRate > 0 ? (i * 1000) / (cfg.rampS > 0 && cfg.rampRate > 0 ? cfg.rampRate : cfg.rate) : 0,
    };
    const child = fork(path.join(benchDir, "gen.mjs"), [], {
      env: { ...env, CAPBENCH_GEN: JSON.stringify(genCfg) },
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child.on("message", (m) => {
      if (m.type === "tick") {
        ticks[i] = m;
        ctx.lastTick = sumTicks(ticks);
      } else if (m.type === "started") ctx.markStart();
      else if (m.type === "holding") {
        holdings[i] = m;
        if (holdings.every(Boolean)) ctx.onHolding?.({ ...sumTicks(holdings), containers: holdings.flatMap((h) => h.containers ?? []) });
      } else if (m.type === "done") results[i] = m.result;
    });
    children.push({ child, exited: new Promise((resolve) => child.on("exit", (code, sig) => resolve(code ?? sig))) });
  }
  ctx.genPids = children.map((c) => c.child.pid);
  const done = Promise.all(children.map((c) => c.exited)).then((codes) => {
    if (results.some((r) => !r)) return { generator: "light", crashed: `generator process exit ${codes.join(",")}` };
    return mergeLight(results);
  });
  const send = (msg) => children.forEach(({ child }) => child.connected && child.send(msg));
  return {
    done,
    release: () => send({ type: "release" }),
    abort: (reason) => send({ type: "abort", reason }),
    kill: () => children.forEach(({ child }) => child.kill("SIGKILL")),
  };
}

const COUNTERS = ["started", "ready", "completed", "failed", "queued", "turns", "open", "peakOpen"];
function sumTicks(list) {
  const out = { t: 0 };
  for (const k of COUNTERS) out[k] = 0;
  for (const x of list) {
    if (!x) continue;
    out.t = Math.max(out.t, x.t);
    for (const k of COUNTERS) out[k] += x[k] ?? 0;
  }
  return out;
}

function mergeLight(results) {
  if (results.length === 1) return results[0];
  const errors = {};
  const errorExamples = {};
  const raw = {};
  for (const r of results) {
    for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] || 0) + v;
    Object.assign(errorExamples, r.errorExamples);
    for (const [k, v] of Object.entries(r.rawSamples)) (raw[k] ??= []).push(...v);
  }
  const sum = (f) => results.reduce((a, r) => a + (f(r) ?? 0), 0);
  return {
    generator: "light",
    processes: results.length,
    scheduled: sum((r) => r.scheduled),
    aborted: results.find((r) => r.aborted)?.aborted ?? null,
    wallS: Math.max(...results.map((r) => r.wallS)),
    counters: sumTicks(results.map((r) => r.counters)),
    errors,
    errorExamples,
    latency: Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, summarize(v)])),
    eventLoopDelayMs: {
      p50: Math.max(...results.map((r) => r.eventLoopDelayMs.p50)),
      p99: Math.max(...results.map((r) => r.eventLoopDelayMs.p99)),
      max: Math.max(...results.map((r) => r.eventLoopDelayMs.max)),
    },
    selfCpuS: sum((r) => r.selfCpuS),
    rssBytes: sum((r) => r.rssBytes),
  };
}

// Artillery: the guide's scenario with bench/artillery's processor (the shared inbox and
// metrics), a think step before the approval, no session:end. Phases written into a generated
// script so that a missing ramp is simply left out.
export function runArtillery(ctx, cfg) {
  const bin = path.join(repoRoot, "bench/artillery/node_modules/.bin/artillery");
  if (!existsSync(bin)) throw new Error("artillery is not installed: npm ci in bench/artillery (scripts/install.sh does)");
  const phases = [];
  if (cfg.rampRate > 0 && cfg.rampS > 0) phases.push({ name: "ramp", duration: cfg.rampS, arrivalRate: cfg.rampRate, maxVusers: 1000000 });
  if (cfg.rate > 0 && cfg.durationS > 0) phases.push({ name: "sustained", duration: cfg.durationS, arrivalRate: cfg.rate, maxVusers: 1000000 });
  const script = {
    config: {
      target: ctx.target.url,
      phases,
      socketio: cfg.transport === "websocket" ? { transports: ["websocket"] } : {},
      processor: path.join(benchDir, "artillery-processor.mjs"),
    },
    scenarios: [{
      name: "guide flow, disconnect without session:end",
      engine: "socketio",
      flow: [
        { function: "waitReady" },
        { function: "markTurnStart" },
        { emit: { channel: "message", data: "List all files in /workspace" }, acknowledge: { match: { json: "$.0.ok", value: true } } },
        { function: "captureCallId" },
        ...(cfg.thinkMs > 0 ? [{ think: cfg.thinkMs / 1000 }] : []),
        { function: "markApproval" },
        { emit: { channel: "tool:approval", data: { callId: "{{ callId }}", approved: true } }, acknowledge: { match: { json: "$.0.ok", value: true } } },
        { function: "waitAnswer" },
      ],
    }],
  };
  const scriptPath = path.join(ctx.runDir, "artillery-script.json");
  const reportPath = path.join(ctx.runDir, "artillery-report.json");
  writeFileSync(scriptPath, JSON.stringify(script, null, 2));
  // Through bash, whose `times` reports Artillery's whole CPU (all its threads, start-up included)
  // once it has exited: /proc cannot be read after the exit.
  const child = spawn("bash", ["-c", '"$@"; rc=$?; echo "capbench-times:"; times; exit $rc', "capbench-artillery", bin, "run", scriptPath, "-o", reportPath], {
    cwd: path.join(repoRoot, "bench/artillery"),
    env: { ...env, ARTILLERY_DISABLE_TELEMETRY: "true", KEEP_SESSIONS: "1", READY_TIMEOUT_MS: String(cfg.readyTimeoutMs), TURN_TIMEOUT_MS: String(cfg.turnTimeoutMs) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  ctx.genPids = [child.pid];
  const logPath = path.join(ctx.runDir, "artillery.log");
  let log = "";
  const keep = (d) => (log = (log + d).slice(-2000000));
  // Artillery takes seconds to start: the measured window opens with its first phase.
  child.stdout.on("data", (d) => {
    if (!ctx.startSample && /Phase started/.test(d)) ctx.markStart();
  });
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  const t0 = performance.now();
  const done = new Promise((resolve) => {
    child.on("exit", (code, sig) => {
      writeFileSync(logPath, log);
      let report = null;
      try {
        report = JSON.parse(readFileSync(reportPath, "utf8"));
      } catch {
        /* no report */
      }
      if (!report) return resolve({ generator: "artillery", crashed: `exit ${code ?? sig}, no report (log: ${logPath})` });
      const times = /capbench-times:\s*\S+\s+\S+\s+(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s/.exec(log);
      const totalCpuS = times ? 60 * Number(times[1]) + Number(times[2]) + 60 * Number(times[3]) + Number(times[4]) : null;
      resolve(fromArtillery(report, (performance.now() - t0) / 1000, code, totalCpuS));
    });
  });
  const signalTree = (sig) => {
    for (const pid of procTree(child.pid).reverse()) {
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  };
  return { done, release: () => {}, abort: () => signalTree("SIGINT"), kill: () => signalTree("SIGKILL") };
}

// Artillery's aggregate report in the light generator's shape.
function fromArtillery(report, wallS, exitCode, totalCpuS) {
  const c = report.aggregate?.counters ?? {};
  const s = report.aggregate?.summaries ?? {};
  const lat = (name) => {
    const x = s[name];
    return x ? { count: x.count, p50: x.p50 ?? x.median, p95: x.p95, p99: x.p99, max: x.max, mean: x.mean } : summarize([]);
  };
  const errors = {};
  for (const [k, v] of Object.entries(c)) {
    if (!k.startsWith("errors.")) continue;
    const msg = k.slice(7);
    const m = /agent:error (\S+)/.exec(msg) || /^(timeout) waiting for (\S+)/.exec(msg) || /^(disconnected) before/.exec(msg);
    const code = m ? (m[1] === "timeout" ? `TIMEOUT_${m[2]}` : m[1] === "disconnected" ? "DISCONNECTED" : m[1]) : msg.slice(0, 60);
    errors[code] = (errors[code] || 0) + v;
  }
  const created = c["vusers.created"] ?? 0;
  return {
    generator: "artillery",
    exitCode,
    wallS,
    totalCpuS,
    scheduled: created,
    counters: {
      started: created,
      ready: s["berth.ready_ms"]?.count ?? 0,
      completed: c["vusers.completed"] ?? 0,
      failed: c["vusers.failed"] ?? 0,
      queued: c["berth.queued"] ?? 0,
    },
    errors,
    latency: {
      ready_ms: lat("berth.ready_ms"),
      approval_wait_ms: lat("berth.approval_wait_ms"),
      tool_ms: lat("berth.tool_roundtrip_ms"),
      turn_ms: lat("berth.turn_ms"),
      ack_ms: lat("socketio.response_time"),
    },
  };
}

