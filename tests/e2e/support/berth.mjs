// Test harness: a real redis-server and a real `berth` process (with the real dockerd), on free
// loopback ports, torn down afterwards: processes killed, every container of this run removed.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, "../../..");
export const buildDir = process.env.BERTH_BUILD_DIR || path.join(repoRoot, "build/release");

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

export async function startRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-e2e-redis-"));
  const proc = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir], {
    stdio: "ignore",
  });
  await waitFor(() => new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { s.end(); resolve(true); });
    s.on("error", () => resolve(false));
  }), 10000, "redis-server");
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      proc.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Starts berth; env overrides the test defaults; waits until `waitFor` answers 200 (readiness by
// default; "/health/live" for a berth that is meant to start degraded).
// Returns {url, port, replica, proc, logs(), kill(), stop()}.
export async function startBerth(env = {}, { waitFor: readyPath = "/health/ready" } = {}) {
  const port = await freePort();
  const replica = env.REPLICA_ID || `e2e-${process.pid}-${port}`;
  let output = "";
  const proc = spawn(path.join(buildDir, "src/app/berth"), [], {
    cwd: repoRoot,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      REPLICA_ID: replica,
      POOL_MIN_SIZE: "2",
      POOL_MAX_SIZE: "8",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => {
    if (proc.exitCode !== null) throw new Error(`berth exited: ${output.slice(-2000)}`);
    const r = await fetch(`${url}${readyPath}`);
    return r.status === 200;
  }, 60000, `berth ${readyPath}`);
  return {
    url,
    port,
    replica,
    proc,
    logs: () => output,
    async kill(signal = "SIGKILL") {
      if (proc.exitCode === null) proc.kill(signal);
      await exited;
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill("SIGTERM");
        await Promise.race([exited, new Promise((r) => setTimeout(r, 8000))]);
        if (proc.exitCode === null) proc.kill("SIGKILL");
      }
      removeContainers(replica);
    },
  };
}

// Removes every container a replica created (pooled, leased or kept for resume).
export function removeContainers(replica) {
  try {
    const ids = execFileSync("docker", ["ps", "-aq", "--filter", `label=berth.replica=${replica}`]).toString().split(/\s+/).filter(Boolean);
    if (ids.length) execFileSync("docker", ["rm", "-f", ...ids], { stdio: "ignore" });
  } catch {
    /* docker unavailable: nothing to remove */
  }
}

// Resolves with the first occurrence of `event` on a socket.io-client socket (rejects on timeout).
export function once(socket, event, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out waiting for '${event}'`)), timeoutMs);
    t.unref(); // the loser of a Promise.race must not keep the test process alive
    socket.once(event, (...args) => {
      clearTimeout(t);
      // With connection state recovery on, the server appends each event's offset as a last
      // string argument (socket.io-client remembers it in _pid/_lastOffset): not the payload.
      if (socket._pid && args.length > 1 && typeof args.at(-1) === "string") args = args.slice(0, -1);
      resolve(args.length <= 1 ? args[0] : args);
    });
  });
}

// Polls `check` every 50 ms until it is truthy; fails the test after `timeoutMs`.
export async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}`);
}

// The sum of a Prometheus metric's samples on a berth's /metrics (every label set).
export async function metric(berth, name) {
  const text = await (await fetch(`${berth.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) sum += Number(line.split(" ").pop());
  return sum;
}

// Processes in a container whose command line matches `pattern` (a grep -E pattern written so
// that it does not match its own command line).
export function processes(container, pattern) {
  const out = execFileSync("docker", ["exec", container, "/bin/sh", "-c",
    `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -cE '${pattern}' || true`]).toString();
  return Number(out.trim());
}
