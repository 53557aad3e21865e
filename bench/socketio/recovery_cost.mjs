// What connection state recovery costs per disconnected socket (issue 16), with the state in
// Redis as the gateway keeps it and, in the same run, in memory (the peer): berth-conformance-server
// with RECOVERY_MAX_DISCONNECTION_MS on, and RECOVERY_REDIS_URL pointing at a redis-server this
// script starts (or not). For each store: CLIENTS official socket.io-clients connect (websocket),
// each gets EVENTS numbered events of PAYLOAD bytes (echoes of its own "message"), then every
// engine is closed under it (a "transport close": recoverable), the server seals each socket's
// state, and every client reconnects and must come back `recovered` with its socket id.
// Reported: Redis memory per disconnected socket (used_memory delta, MEMORY USAGE of a key) and per
// buffered event, server CPU per emitted event, per disconnect (reserve + seal) and per recovery
// (take + replay), and the time until every client was back.
// Usage: BUILD_DIR=build/release node bench/socketio/recovery_cost.mjs [clients=500] [events=50] [payload=64]
// (uses tests/e2e's node_modules: run `npm ci` there first). Loopback only; bounded in count and time.
import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const e2e = new URL("../../tests/e2e/", import.meta.url);
const require = createRequire(new URL("package.json", e2e));
const { io } = await import(pathToFileURL(require.resolve("socket.io-client")).href);
const { startRedis, freePort, waitFor } = await import(new URL("support/berth.mjs", e2e).href);

const clients = Math.max(1, Math.min(5000, Number(process.argv[2] || 500)));
const events = Math.max(1, Math.min(1000, Number(process.argv[3] || 50)));
const payload = "x".repeat(Math.max(1, Math.min(65536, Number(process.argv[4] || 64))));
const buildDir = process.env.BUILD_DIR || "build/release";
const serverBin = path.resolve(buildDir, "src/conformance/berth-conformance-server");
const deadline = Date.now() + 600_000;
const left = () => Math.max(1000, deadline - Date.now());

const ticks = 100; // USER_HZ
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / ticks; // utime + stime
}

function redisCli(port, ...args) {
  return execFileSync("redis-cli", ["-p", String(port), ...args]).toString().trim();
}
function usedMemory(port) {
  return Number(/used_memory:(\d+)/.exec(redisCli(port, "INFO", "memory"))[1]);
}

async function startServer(env) {
  const port = await freePort();
  const proc = spawn(serverBin, [String(port)], {
    env: { ...process.env, RECOVERY_MAX_DISCONNECTION_MS: "120000", PING_INTERVAL_MS: "25000", PING_TIMEOUT_MS: "20000",
      LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  await new Promise((resolve, reject) => {
    proc.stdout.on("data", (d) => String(d).includes("listening") && resolve());
    proc.on("exit", (code) => reject(new Error(`server exited ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.kill("SIGTERM") };
}

async function measure(label, env, redisPort) {
  const server = await startServer(env);
  const sockets = [];
  try {
    for (let i = 0; i < clients; ++i) {
      const s = io(server.url, { transports: ["websocket"], reconnection: false, forceNew: true });
      s.on("connect", () => (s.connects = (s.connects || 0) + 1));
      s.on("message-back", () => (s.got = (s.got || 0) + 1));
      sockets.push(s);
      if (i % 50 === 49) await waitFor(async () => sockets.every((x) => x.connected), left(), "connects");
    }
    await waitFor(async () => sockets.every((x) => x.connected), left(), "every client connected");
    if (!sockets.every((s) => s._pid)) throw new Error(`${label}: the server gave no pid: recovery is off`);
    const ids = sockets.map((s) => s.id);

    // Every client gets EVENTS numbered events.
    let cpu0 = cpuMs(server.pid);
    for (let k = 0; k < events; ++k) for (const s of sockets) s.emit("message", payload);
    await waitFor(async () => sockets.every((s) => s.got === events), left(), "every echo");
    const emitCpu = cpuMs(server.pid) - cpu0;
    const mem0 = redisPort ? usedMemory(redisPort) : 0;

    // Every engine closed under its socket: the server keeps (Redis: reserves, then seals) each state.
    cpu0 = cpuMs(server.pid);
    const t0 = performance.now();
    for (const s of sockets) s.io.engine.close();
    await waitFor(async () => sockets.every((s) => !s.connected), left(), "every disconnect");
    let keyBytes = 0;
    let memPerSocket = 0;
    if (redisPort) {
      await waitFor(async () => {
        const keys = redisCli(redisPort, "--scan", "--pattern", "berth:recovery:*").split("\n").filter(Boolean);
        if (keys.length < clients) return false;
        return redisCli(redisPort, "GET", keys[keys.length - 1]) !== "pending";
      }, left(), "every state sealed in Redis");
      await new Promise((r) => setTimeout(r, 500)); // the last seals
      const keys = redisCli(redisPort, "--scan", "--pattern", "berth:recovery:*").split("\n").filter(Boolean);
      const sample = keys.slice(0, 20);
      keyBytes = sample.reduce((n, k) => n + Number(redisCli(redisPort, "MEMORY", "USAGE", k)), 0) / sample.length;
      memPerSocket = (usedMemory(redisPort) - mem0) / clients;
    } else {
      await new Promise((r) => setTimeout(r, 500));
    }
    const disconnectCpu = cpuMs(server.pid) - cpu0;

    // Every client back: the same socket id, recovered.
    cpu0 = cpuMs(server.pid);
    const t1 = performance.now();
    for (const s of sockets) s.connect();
    await waitFor(async () => sockets.every((s) => s.connects === 2), left(), "every reconnect");
    const backMs = performance.now() - t1;
    const recoverCpu = cpuMs(server.pid) - cpu0;
    const recovered = sockets.filter((s, i) => s.recovered && s.id === ids[i]).length;
    const keysLeft = redisPort ? redisCli(redisPort, "--scan", "--pattern", "berth:recovery:*").split("\n").filter(Boolean).length : 0;
    return {
      label, clients, events, payloadBytes: payload.length, recovered, keysLeft,
      cpuUsPerEmittedEvent: (emitCpu * 1000) / (clients * events),
      cpuMsPerDisconnect: disconnectCpu / clients,
      cpuMsPerRecovery: recoverCpu / clients,
      allBackMs: Math.round(backMs), cycleMs: Math.round(performance.now() - t0),
      redisBytesPerSocket: Math.round(memPerSocket), redisKeyBytes: Math.round(keyBytes),
      redisBytesPerEvent: redisPort ? Math.round(keyBytes / events) : 0,
    };
  } finally {
    for (const s of sockets) s.close();
    server.stop();
  }
}

const redis = await startRedis();
try {
  const rows = [await measure("memory", {}, 0), await measure("redis", { RECOVERY_REDIS_URL: redis.url }, redis.port)];
  const commit = execFileSync("git", ["rev-parse", "--short=7", "HEAD"]).toString().trim();
  console.log(`recovery cost (${new Date().toISOString()}, ${commit}): ${clients} clients x ${events} events of ${payload.length} B`);
  console.table(rows);
  const bad = rows.filter((r) => r.recovered !== clients || r.keysLeft !== 0);
  if (bad.length) {
    console.error(`FAIL: ${bad.map((r) => `${r.label}: ${r.recovered}/${clients} recovered, ${r.keysLeft} keys left`).join("; ")}`);
    process.exitCode = 1;
  }
} finally {
  await redis.stop();
}
