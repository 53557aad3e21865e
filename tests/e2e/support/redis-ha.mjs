// Test harness: Redis without a single point of failure on loopback — a master, one replica and
// three sentinels (Debian's redis-server and redis-sentinel), on free ports in a temp dir.
// startRedisHA() resolves once the replica is in sync and every sentinel knows the replica and
// the two other sentinels (so a failover can be elected). Returns
// {sentinels: "127.0.0.1:p,...", master: {port, proc, crash()}, replica: {port}, role(port),
//  masterName, stop()}.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { freePort } from "./berth.mjs";

async function waitFor(check, timeoutMs, what) {
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

// One redis-cli call; its output lines (throws if redis-cli fails, e.g. nothing listens).
export function cli(port, ...args) {
  return execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", String(port), ...args], { timeout: 5000 })
    .toString()
    .trim()
    .split("\n");
}

export async function startRedisHA({ masterName = "mymaster", downAfterMs = 1000 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-e2e-redis-ha-"));
  const procs = [];
  const server = (name, port, extra = []) => {
    const d = path.join(dir, name);
    execFileSync("mkdir", ["-p", d]);
    const p = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
      "--dir", d, "--protected-mode", "no", ...extra], { stdio: "ignore" });
    procs.push(p);
    return p;
  };
  const masterPort = await freePort();
  const replicaPort = await freePort();
  const master = server("master", masterPort);
  server("replica", replicaPort, ["--replicaof", "127.0.0.1", String(masterPort)]);
  const sentinelPorts = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = path.join(dir, `sentinel-${i}.conf`);
    writeFileSync(conf, [
      `port ${port}`, "bind 127.0.0.1", "protected-mode no", `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} 10000`, "",
    ].join("\n"));
    procs.push(spawn("redis-sentinel", [conf], { stdio: "ignore" }));
    sentinelPorts.push(port);
  }
  const stop = async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => cli(replicaPort, "ROLE").includes("connected"), 15000, "the replica to sync");
    for (const port of sentinelPorts) {
      await waitFor(() => {
        const kv = cli(port, "SENTINEL", "master", masterName);
        const get = (k) => kv[kv.indexOf(k) + 1];
        return get("num-other-sentinels") === "2" && get("num-slaves") === "1";
      }, 20000, `sentinel ${port} to know the others`);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    masterName,
    sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(","),
    sentinelPorts,
    master: {
      port: masterPort,
      crash() {
        master.kill("SIGKILL");
      },
    },
    replica: { port: replicaPort },
    role: (port) => cli(port, "ROLE")[0],
    stop,
  };
}
