// How many new users per second can each load generator produce on this machine? Runs the
// light generator and Artillery, at each rate of CAL_RATES, through the guide's flow against
// lib/fake-berth.mjs (the official socket.io server answering like Berth, in its own process,
// no containers), and reports per run: achieved rate, failures, connect->ready p50/p99, the
// generator's start lag and event-loop delay (light), its CPU per session and % of a core, and
// the fake server's CPU. A generator "keeps up" at a rate when nothing failed, ready p99 stayed
// under 1 s and (light) users started within 100 ms of their slot. Read with capacity.mjs's
// results: a capacity figure is about Berth only while the generator keeps up at that rate.
//   node bench/capacity/calibrate.mjs      (run.sh MODE=calibrate)
//   env: CAL_RATES ["10,25,50,100"], CAL_DURATION_S [20], THINK_MS [5000], GENERATOR [both],
//        TRANSPORT [websocket], OUT_DIR
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { runArtillery, runLight } from "./lib/generators.mjs";
import { procCpuS, hostCpu } from "./lib/probe.mjs";
import { freePort } from "./lib/target.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rates = (env.CAL_RATES || "10,25,50,100").split(",").map(Number).filter((r) => r > 0);
const durationS = Number(env.CAL_DURATION_S || 20);
const generators = (env.GENERATOR || "both") === "both" ? ["light", "artillery"] : [env.GENERATOR];
const outDir = env.OUT_DIR || path.resolve(here, "../results/capacity");
const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
const base = {
  mode: "rate",
  transport: env.TRANSPORT || "websocket",
  thinkMs: Number(env.THINK_MS ?? 5000),
  readyTimeoutMs: 30000,
  turnTimeoutMs: 30000,
  connectTimeoutMs: 20000,
  rampRate: 0,
  rampS: 0,
  durationS,
  maxUsers: 1000000,
  genProcs: Number(env.GEN_PROCS || 1),
};

async function startFake() {
  const port = await freePort();
  const proc = spawn(process.execPath, [path.join(here, "lib/fake-berth.mjs"), String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("fake-berth did not start in 10 s")), 10000);
    proc.stdout.on("data", (d) => /listening/.test(d) && (clearTimeout(t), resolve()));
    proc.on("exit", (c) => reject(new Error(`fake-berth exited ${c}`)));
  });
  return { url: `http://127.0.0.1:${port}`, proc };
}

async function one(generator, rate) {
  const fake = await startFake();
  const runDir = path.join(outDir, `${stamp}-calibrate-${generator}-${rate}`);
  mkdirSync(runDir, { recursive: true });
  const ctx = { target: { url: fake.url }, runDir, genPids: [], lastTick: null, startSample: null };
  let w0 = null;
  ctx.markStart = () => {
    if (!w0) w0 = { t: performance.now(), fakeCpu: procCpuS(fake.proc.pid), host: hostCpu(), genCpu: null };
  };
  const cfg = { ...base, rate };
  const gen = generator === "light" ? runLight(ctx, cfg) : runArtillery(ctx, cfg);
  const bound = sleep((durationS + 240) * 1000).then(() => null);
  const r = await Promise.race([gen.done, bound]);
  if (!r) gen.kill();
  const t1 = performance.now();
  const fakeCpu = procCpuS(fake.proc.pid);
  const host = hostCpu();
  fake.proc.kill("SIGKILL");
  const wall = w0 ? (t1 - w0.t) / 1000 : null;
  const c = r?.counters ?? {};
  const genCpu = r?.generator === "light" ? r.selfCpuS : Number.isFinite(r?.totalCpuS) ? r.totalCpuS : null;
  const row = {
    generator,
    asked: rate,
    started: c.started ?? 0,
    failed: c.failed ?? null,
    errors: r?.errors ?? {},
    achieved: c.started ? c.started / durationS : 0,
    readyP50: r?.latency?.ready_ms?.p50 ?? null,
    readyP99: r?.latency?.ready_ms?.p99 ?? null,
    startLagP99: r?.latency?.start_lag_ms?.p99 ?? null,
    eventLoopP99: r?.eventLoopDelayMs?.p99 ?? null,
    genCpuS: genCpu,
    // Artillery's figure includes its start-up (it cannot be split off once it has exited).
    genCpuMsPerSession: genCpu !== null && c.started ? (1000 * genCpu) / c.started : null,
    genCpuPctOfCore: genCpu !== null && wall ? (100 * genCpu) / wall : null,
    fakeCpuPctOfCore: w0 && wall ? (100 * (fakeCpu - w0.fakeCpu)) / wall : null,
    hostBusyPct: w0 && wall ? (100 * (host.busyS - w0.host.busyS)) / (wall * os.cpus().length) : null,
    loadavg: os.loadavg()[0],
    crashed: r?.crashed ?? (r ? null : "bound exceeded"),
  };
  row.keepsUp = !row.crashed && row.failed === 0 && row.readyP99 !== null && row.readyP99 < 1000 &&
    (generator !== "light" || (row.startLagP99 ?? Infinity) < 100);
  return row;
}

mkdirSync(outDir, { recursive: true });
const rows = [];
for (const g of generators) for (const rate of rates) {
  console.error(`calibrate: ${g} at ${rate}/s for ${durationS} s ...`);
  rows.push(await one(g, rate));
}
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "n/a");
console.log(`\ngenerator calibration against lib/fake-berth.mjs (${new Date().toISOString()}, ${os.cpus().length} cores, think ${base.thinkMs} ms, ${durationS} s per rate)`);
console.log("| generator | asked/s | achieved/s | started | failed | ready p50 / p99 ms | start lag p99 ms | event loop p99 ms | generator CPU ms/session | generator % of a core | fake server % of a core | host busy % | load | keeps up |");
console.log("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
for (const r of rows)
  console.log(`| ${r.generator} | ${r.asked} | ${f(r.achieved)} | ${r.started} | ${r.failed ?? "n/a"} | ${f(r.readyP50)} / ${f(r.readyP99)} | ${f(r.startLagP99)} | ${f(r.eventLoopP99)} | ${f(r.genCpuMsPerSession, 2)} | ${f(r.genCpuPctOfCore)} | ${f(r.fakeCpuPctOfCore)} | ${f(r.hostBusyPct)} | ${f(r.loadavg)} | ${r.keepsUp ? "yes" : "no"}${r.crashed ? ` (${r.crashed})` : ""} |`);
const file = path.join(outDir, `calibrate-${stamp}.json`);
writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), config: { ...base, rates }, rows }, null, 1));
console.log(`\nresult: ${file}`);
process.exit(rows.every((r) => !r.crashed) ? 0 : 1);
