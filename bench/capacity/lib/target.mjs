// The system under test, three kinds behind one interface:
//   own     a berth this harness starts from build/<preset>/src/app/berth, with its own
//           redis-server (free loopback ports) and a unique REPLICA_ID; stopped and cleaned
//           afterwards (every container labelled berth.managed=true and that replica removed)
//   single  TARGET=url of a berth already running on this host (its pid from `ss -ltnp`, its
//           replica id from /health, its Redis from REDIS_URL in its environment)
//   scale   TARGET=url of the compose scale stack's nginx: the compose project is the one that
//           publishes TARGET's port; its `app` containers are the replicas (host pids from
//           `docker inspect`, /metrics on each container's own address on the project network),
//           its `redis` service is read with `docker exec <redis> redis-cli`
// Interface: {kind, url, replicas(), berthPids(), metricsUrls(), redisCli, close(), describe()}.
import { execFileSync, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { dockerGet, dockerRm, getJson, listenerPid, managedContainers, procEnv, procTree } from "./probe.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Whatever happens to the harness (an exception, a signal it does not survive), the processes it
// started die with it and the containers of its own replicas are removed: process 'exit' runs
// synchronous code only, so this uses kill and docker's CLI.
const owned = { procs: new Set(), replicas: new Set() };
process.on("exit", () => {
  for (const p of owned.procs) if (!exited(p)) p.kill("SIGKILL");
  for (const replica of owned.replicas) {
    try {
      const ids = execFileSync("docker", ["ps", "-aq", "--filter", "label=berth.managed=true", "--filter", `label=berth.replica=${replica}`], { timeout: 30000 })
        .toString().split(/\s+/).filter(Boolean);
      if (ids.length) execFileSync("docker", ["rm", "-f", ...ids], { stdio: "ignore", timeout: 120000 });
    } catch {
      /* nothing more can be done on the way out */
    }
  }
});

// spawn() that reports a failure to start as an exit (instead of an unhandled 'error' event).
function spawnOwned(cmd, args, opts) {
  const proc = spawn(cmd, args, opts);
  proc.spawnError = null;
  proc.on("error", (err) => {
    proc.spawnError = err;
  });
  owned.procs.add(proc);
  proc.once("exit", () => owned.procs.delete(proc));
  return proc;
}

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

async function waitUntil(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

function exited(proc) {
  return proc.exitCode !== null || proc.signalCode !== null || proc.spawnError !== null;
}

async function stopProcess(proc, graceMs) {
  if (!proc || exited(proc)) return;
  const gone = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await Promise.race([gone, sleep(graceMs)]);
  if (!exited(proc)) {
    proc.kill("SIGKILL");
    await Promise.race([gone, sleep(5000)]);
  }
}

// Removes every container labelled berth.managed=true of this replica; returns how many were left
// afterwards (0 expected). A daemon too busy to list is asked again; one that never answers
// leaves the count "unknown" (a failed verdict), never 0.
export async function removeReplicaContainers(replica) {
  const list = async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      const found = await managedContainers([replica]);
      if (found) return found;
      await sleep(2000);
    }
    return null;
  };
  const before = await list();
  let after = before;
  // A removal that Berth's own shutdown already started fails ("removal in progress"): ask again.
  for (let round = 0; round < 5 && after?.length; round++) {
    if (round > 0) await sleep(2000);
    dockerRm(after.map((c) => c.id));
    after = await list();
  }
  return { found: before ? before.length : "unknown", left: after ? after.length : "unknown" };
}

export async function startOwn({ berthBin, repoRoot, env, redisMaxmemory, logDir, readyTimeoutMs = 120000 }) {
  const redisPort = await freePort();
  const redisDir = mkdtempSync(path.join(os.tmpdir(), "capbench-redis-"));
  const redis = spawnOwned(
    "redis-server",
    ["--port", String(redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", redisDir,
      "--maxmemory", redisMaxmemory, "--maxmemory-policy", "volatile-lru"],
    { stdio: "ignore" },
  );
  const redisCli = ["redis-cli", "-h", "127.0.0.1", "-p", String(redisPort)];
  let berth;
  const port = await freePort();
  const replica = `capbench-${process.pid}-${port}`;
  const url = `http://127.0.0.1:${port}`;
  const logFile = path.join(logDir, `berth-${replica}.log`);
  owned.replicas.add(replica);
  const cleanup = async () => {
    await stopProcess(berth, 20000);
    const removed = await removeReplicaContainers(replica);
    if (!removed.left) owned.replicas.delete(replica);
    await stopProcess(redis, 5000);
    rmSync(redisDir, { recursive: true, force: true });
    return removed;
  };
  try {
    await waitUntil(() => new Promise((resolve) => {
      if (exited(redis)) throw new Error(`redis-server did not start: ${redis.spawnError?.message ?? redis.exitCode}`);
      const s = net.connect(redisPort, "127.0.0.1", () => { s.end(); resolve(true); });
      s.on("error", () => resolve(false));
    }), 10000, "redis-server");
    const log = createWriteStream(logFile);
    berth = spawnOwned(berthBin, [], {
      cwd: repoRoot,
      env: { ...process.env, ...env, PORT: String(port), HOST: "127.0.0.1", REPLICA_ID: replica, REDIS_URL: `redis://127.0.0.1:${redisPort}` },
      stdio: ["ignore", "pipe", "pipe"],
    });
    berth.stdout.pipe(log);
    berth.stderr.pipe(log);
    await waitUntil(async () => {
      if (exited(berth)) throw new Error(`berth exited with ${berth.spawnError?.message ?? berth.exitCode ?? berth.signalCode}; log: ${logFile}`);
      return (await fetch(`${url}/health/ready`).catch(() => null))?.status === 200;
    }, readyTimeoutMs, `${url}/health/ready`);
  } catch (err) {
    await cleanup();
    throw err;
  }
  return {
    kind: "own",
    url,
    logFile,
    replicas: async () => [replica],
    berthPids: () => (exited(berth) ? [] : [berth.pid]),
    metricsUrls: async () => [url],
    redisCli,
    alive: () => !exited(berth),
    close: cleanup,
    describe: () => ({ kind: "own", url, replica, berthBin, redisPort, redisMaxmemory, logFile }),
  };
}

async function composeReplicas(project) {
  const filters = encodeURIComponent(JSON.stringify({
    label: [`com.docker.compose.project=${project}`, "com.docker.compose.service=app"], status: ["running"],
  }));
  const list = (await dockerGet(`/containers/json?filters=${filters}`)) ?? [];
  const out = [];
  for (const c of list) {
    const info = await dockerGet(`/containers/${c.Id}/json`);
    if (!info) continue;
    const envReplica = (info.Config?.Env ?? []).find((e) => e.startsWith("REPLICA_ID="))?.slice(11);
    const ip = Object.values(info.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
    out.push({ id: c.Id, name: c.Names?.[0]?.replace(/^\//, ""), pid: info.State?.Pid, replica: envReplica || info.Config?.Hostname, ip });
  }
  return out;
}

export async function openExternal(url) {
  const port = Number(new URL(url).port || 80);
  const filters = encodeURIComponent(JSON.stringify({ publish: [String(port)] }));
  const publishers = (await dockerGet(`/containers/json?filters=${filters}`)) ?? [];
  const project = publishers[0]?.Labels?.["com.docker.compose.project"];
  if (project) {
    const redisFilters = encodeURIComponent(JSON.stringify({ label: [`com.docker.compose.project=${project}`, "com.docker.compose.service=redis"] }));
    const redisC = ((await dockerGet(`/containers/json?filters=${redisFilters}`)) ?? [])[0];
    let replicas = await composeReplicas(project);
    if (!replicas.length) throw new Error(`compose project ${project} publishes :${port} but has no running app container`);
    return {
      kind: "scale",
      url,
      // Re-read at every call: a replica can be restarted during a long run.
      replicas: async () => (replicas = await composeReplicas(project)).map((r) => r.replica),
      berthPids: () => replicas.flatMap((r) => (r.pid ? procTree(r.pid) : [])),
      metricsUrls: async () => replicas.filter((r) => r.ip).map((r) => `http://${r.ip}:3000`),
      redisCli: redisC ? ["docker", "exec", redisC.Names[0].replace(/^\//, ""), "redis-cli"] : null,
      alive: () => true,
      close: async () => ({ found: 0, left: 0 }),
      describe: () => ({ kind: "scale", url, project, replicas: replicas.map(({ name, replica, ip }) => ({ name, replica, ip })), redisContainer: redisC?.Names?.[0] }),
    };
  }
  const pid = Number(process.env.BERTH_PID) || listenerPid(port);
  if (!pid) throw new Error(`no process listens on :${port} on this host (set BERTH_PID)`);
  const health = await getJson(`${url}/health`);
  if (!health?.replica) throw new Error(`${url}/health did not answer with a replica id`);
  const redisUrl = procEnv(pid, "REDIS_URL") || process.env.REDIS_URL || "redis://127.0.0.1:6379";
  return {
    kind: "single",
    url,
    replicas: async () => [health.replica],
    berthPids: () => procTree(pid),
    metricsUrls: async () => [url],
    redisCli: ["redis-cli", "-u", redisUrl],
    alive: () => true,
    close: async () => ({ found: 0, left: 0 }),
    describe: () => ({ kind: "single", url, pid, replica: health.replica, redis: redisUrl.replace(/\/\/[^@]*@/, "//***@") }),
  };
}
