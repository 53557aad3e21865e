// The chaos scenarios and their runner (see harness.mjs). Each scenario: users chat for `loadMs`,
// the fault is injected, the run waits (bounded) until every affected user has finished a tool
// turn again, lets the load run a little longer, stops it, then checks sessions, history,
// containers and limiter slots. Scenarios run one after another on the same stack and users.
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { writeFileSync } from "node:fs";
import path from "node:path";
import {
  startDockerd, startDurableRedis, startReplica, Users, percentile, containersLeaked, limiterSlotsLeaked,
  checkSessions, sleep,
} from "./harness.mjs";
import { freePort } from "../e2e/support/berth.mjs";

const execFileP = promisify(execFile);

// The containers some users hold now (a fifth of them, at least one), as their session records
// in Redis name them (a session may have changed container since its system:ready): [{user, id}].
function someContainers(users, redis) {
  const n = Math.max(1, Math.floor(users.all.length / 5));
  return users.all.slice(0, n)
    .map((u) => ({ user: u.id, id: redis.cli("HGET", `berth:session:{${u.sessionId}}`, "container") }))
    .filter((c) => c.id);
}

// The run's docker CLI without blocking: the users' clients share this process's event loop, and
// a synchronous exec would freeze every one of them for as long as it runs (a sequential
// injection into 10 sandboxes froze them all for 8-17 s and that time was counted as recovery).
async function dockerAsync(docker, args, timeout = 60000) {
  const { stdout } = await execFileP("docker", ["-H", docker.host, ...args], { timeout });
  return stdout.toString();
}

// A process inside a container (as root unless `user`), through the chaos dockerd.
async function execIn(docker, container, script, user = "0") {
  try {
    return await dockerAsync(docker, ["exec", "-u", user, container, "/bin/sh", "-c", script]);
  } catch (e) {
    return `exec failed: ${e.message.split("\n")[0]}`;
  }
}

// When a container stopped, by its daemon's clock (this host's): `.State.FinishedAt` in epoch ms,
// with whether the kernel OOM-killed it; null if the container is gone, `ms` null while it runs.
async function containerEnd(docker, id) {
  try {
    const [finished, oom] = (await dockerAsync(docker, ["inspect", "-f", "{{.State.FinishedAt}} {{.State.OOMKilled}}", id])).trim().split(" ");
    // RFC 3339 with nanoseconds; "0001-01-01T00:00:00Z" while it runs.
    const ms = Date.parse(finished.replace(/(\.\d{3})\d*/, "$1"));
    return { ms: Number.isFinite(ms) && ms > 0 ? ms : null, oomKilled: oom === "true" };
  } catch {
    return null;
  }
}

export const scenarios = {
  // Redis SIGKILLed and started again on its append-only file (the scale stack's persistence).
  "redis-restart": async ({ redis }) => {
    await redis.crashAndRestart();
  },
  // A replica SIGKILLed and started again with the same REPLICA_ID and port; its users resume on
  // the other one.
  "replica-kill": async ({ replicas }) => {
    await replicas[0].crashAndRestart();
  },
  // dockerd stopped and started as an operator restarts it (without live-restore it stops every
  // container on the way down; with CHAOS_LIVE_RESTORE=1 they keep running).
  "dockerd-restart": async ({ docker }) => {
    await docker.restart();
  },
  // The kernel's OOM killer takes a fifth of the users' sandboxes, all at once: the container's
  // first process is made the OOM killer's first choice, then four processes of the sandbox user
  // together allocate past the memory limit (each smaller than the first process's score, so the
  // kernel kills the container rather than one of them). Each user's fault time is its own
  // container's death (`.State.FinishedAt`, read once the exec that killed it and a `docker wait`
  // have returned; if the container is already gone, the time the wait, or else the exec, returned).
  "sandbox-oom": async ({ docker, users, redis }) => {
    const targets = someContainers(users, redis);
    const ends = await Promise.all(targets.map(async ({ user, id }) => {
      await execIn(docker, id, "echo 1000 > /proc/1/oom_score_adj");
      await execIn(docker, id, "for i in 1 2 3 4; do dd if=/dev/zero of=/dev/null bs=24M count=20 2>/dev/null & done; wait", "1000:1000");
      // The exec returns as its processes die; dockerd records the container's exit a moment
      // later: `docker wait` returns once it has (or once the container is gone).
      let returned = Date.now();
      try {
        await dockerAsync(docker, ["wait", id], 15000);
        returned = Date.now();
      } catch {
        /* already removed (the gateway replaced it), or still running after 15 s (not killed) */
      }
      return { user, returned, end: await containerEnd(docker, id) };
    }));
    const userFaultAt = {};
    for (const { user, returned, end } of ends) userFaultAt[user] = end?.ms ?? returned;
    return {
      containers: targets.length,
      oomKilled: ends.filter((e) => e.end?.oomKilled).length,
      finishedAtFromDaemon: ends.filter((e) => e.end?.ms).length,
      userFaultAt,
    };
  },
  // The sandbox MCP server (`berth-sandbox mcp`, under the container's `berth-sandbox supervise`)
  // killed inside a fifth of the users' containers, all at once; each user's fault time is the
  // return of the exec that killed its server.
  "mcp-kill": async ({ docker, users, redis }) => {
    const targets = someContainers(users, redis);
    const killServer = "for p in $(pidof berth-sandbox); do if tr '\\0' ' ' < /proc/$p/cmdline | grep -q '^[^ ]* mcp '; then kill -9 $p && echo killed $p; fi; done";
    const kills = await Promise.all(targets.map(async ({ user, id }) => {
      const killed = /^killed/.test(await execIn(docker, id, killServer));
      return { user, killed, at: Date.now() };
    }));
    return {
      containers: targets.length,
      serversKilled: kills.filter((k) => k.killed).length,
      userFaultAt: Object.fromEntries(kills.map((k) => [k.user, k.at])),
    };
  },
};

// Starts the stack, connects `userCount` users, runs the named scenarios; returns the figures.
// `log` receives progress lines.
export async function runChaos({ io, userCount = 50, names = Object.keys(scenarios), pauseMs = 1000, loadMs = 3000,
  recoverWithinMs = 60000, log = () => {} }) {
  const cleanups = [];
  const result = { users: userCount, scenarios: {} };
  try {
    const docker = await startDockerd();
    cleanups.push(() => docker.stop());
    const redis = await startDurableRedis();
    cleanups.push(() => redis.stop());
    const env = {
      DOCKER_HOST: docker.host,
      REDIS_URL: redis.url,
      SANDBOX_IMAGE: docker.image,
      POOL_MIN_SIZE: String(Math.ceil(userCount / 2) + 2),
      POOL_MAX_SIZE: String(userCount + 10),
      CONTAINER_MEMORY: "64m",
      // Every user chats from 127.0.0.1 as fast as the local model answers.
      SOCKET_EVENTS_PER_SECOND: "0",
      MAX_SESSIONS_PER_ADDRESS: "0",
      MAX_CONNECTIONS_PER_ADDRESS: "0",
      MAX_ENGINEIO_SESSIONS_PER_ADDRESS: "0",
      NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE: "0",
      // Every answered turn must stay in the history (no token-budget trimming).
      MAX_HISTORY_TOKENS: "10000000",
      LOG_LEVEL: "info",
      // Containers that a fault left without an owner are found by the orphan reaper (a create
      // or a removal that a dockerd restart cut short); every 10 s here instead of every minute.
      ORPHAN_REAP_INTERVAL_MS: "10000",
    };
    const tag = `chaos-${process.pid}`;
    const replicas = [];
    for (const name of ["a", "b"]) {
      const r = await startReplica({ replica: `${tag}-${name}`, port: await freePort(), env });
      replicas.push(r);
      cleanups.push(() => r.stop());
    }
    log(`stack up: dockerd ${docker.host}, redis ${redis.url}, replicas ${replicas.map((r) => r.url).join(" ")}`);
    const users = new Users({ io, urls: replicas.map((r) => r.url), count: userCount, pauseMs });
    cleanups.push(() => users.closeAll());
    await users.connectAll();
    log(`${userCount} users ready`);

    for (const name of names) {
      users.start();
      await sleep(loadMs);
      const faultAt = Date.now();
      // A scenario that breaks users one after another says when each one's fault happened
      // (`userFaultAt`: user id -> ms); their recovery is timed from that, everyone else's from
      // `faultAt`.
      const { userFaultAt = null, ...injected } = (await scenarios[name]({ docker, redis, replicas, users })) || {};
      const faultDoneAt = Date.now();
      log(`${name}: fault injected in ${faultDoneAt - faultAt} ms ${JSON.stringify(injected)}`);
      // Until every user who saw the fault has worked again (bounded).
      const deadline = faultDoneAt + recoverWithinMs;
      let rec = users.recovery(faultAt, faultAt, userFaultAt);
      while (Date.now() < deadline) {
        await sleep(500);
        rec = users.recovery(faultAt, faultAt, userFaultAt);
        if (Date.now() > faultDoneAt + 3000 && rec.unrecovered === 0) break;
      }
      await sleep(2000);
      await users.stop();
      rec = users.recovery(faultAt, faultAt, userFaultAt);
      const fromStart = userFaultAt ? users.recovery(faultAt, faultAt) : null;
      const slots = await limiterSlotsLeaked(redis);
      const { lost, historyMissing } = await checkSessions(users, faultAt, 1500);
      const containers = await containersLeaked(docker, replicas, 10000);
      const counters = {};
      for (const m of ["berth_mcp_restarts_total", "berth_gateway_dead_containers_replaced_total", "berth_gateway_containers_replaced_total"]) {
        let sum = 0;
        for (const r of replicas) sum += await r.metric(m).catch(() => 0);
        counters[m.replace(/^berth_|_total$/g, "")] = sum;
      }
      const turns = users.all.flatMap((u) => u.turns.filter((t) => t.start >= faultAt - loadMs));
      const fig = {
        injected,
        faultMs: faultDoneAt - faultAt,
        turns: turns.length,
        turnsFailed: turns.filter((t) => !t.ok).length,
        errorCodes: users.errorCodes(faultAt),
        errorExamples: users.errorExamples(faultAt),
        noticeCodes: users.noticeCodes(faultAt),
        usersAffected: rec.affected,
        usersRecovered: rec.recovered,
        recoverMsP50: percentile(rec.ms, 50),
        recoverMsP95: percentile(rec.ms, 95),
        recoverMsMax: rec.ms.length ? rec.ms[rec.ms.length - 1] : null,
        // The same users timed from the start of the injection (only where per-user fault times
        // exist): what the figure was before, when a sequential injection's duration counted.
        ...(fromStart && {
          recoverFromInjectionStartMsP50: percentile(fromStart.ms, 50),
          recoverFromInjectionStartMsP95: percentile(fromStart.ms, 95),
          userFaultSpreadMs: Object.keys(userFaultAt).length ? Math.max(...Object.values(userFaultAt)) - Math.min(...Object.values(userFaultAt)) : null,
        }),
        sessionsLost: lost.length,
        lostExamples: lost.slice(0, 3),
        historyMissing,
        containersUnaccounted: containers?.leaked ?? null,  // right after; the final check below judges leaks
        containers,
        limiterSlotsLeaked: slots,
        counters,
        containerNotices: users.all.reduce((n, u) => n + u.resumes.filter((r) => r.at >= faultAt && r.containerChanged).length, 0),
      };
      result.scenarios[name] = fig;
      if (process.env.BERTH_CHAOS_LOG_DIR) {
        for (const r of replicas) writeFileSync(path.join(process.env.BERTH_CHAOS_LOG_DIR, `${name}-${r.replica}.log`), r.logs());
        // Each user's turns (times as ISO strings, to match the replicas' logs by session id).
        const iso = (ms) => new Date(ms).toISOString();
        writeFileSync(path.join(process.env.BERTH_CHAOS_LOG_DIR, `${name}-users.json`), JSON.stringify({
          faultAt: iso(faultAt), faultDoneAt: iso(faultDoneAt),
          users: users.all.map((u) => ({
            id: u.id, sessionId: u.sessionId, faultAt: userFaultAt?.[u.id] ? iso(userFaultAt[u.id]) : undefined, lost: u.lost || undefined,
            turns: u.turns.map((t) => ({ start: iso(t.start), ms: t.end - t.start, ok: t.ok, code: t.code, message: t.message, notices: t.notices })),
          })),
        }, null, 1));
      }
      log(`${name}: ${JSON.stringify(fig)}`);
      // Start the next scenario from a clean slate of turns.
      for (const u of users.all) u.turns = [];
      if (lost.length) for (const u of users.all) if (u.lost) u.lost = null;
    }
    // Leaks: once the reaper had its chance (a container is an orphan 60 s after its creation).
    const final = await containersLeaked(docker, replicas, 120000);
    result.containersLeaked = final?.leaked ?? null;
    result.containersAtEnd = final;
    log(`containers at the end: ${JSON.stringify(final)}`);
  } finally {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        log(`cleanup: ${e.message}`);
      }
    }
  }
  return result;
}

export function dockerdAvailable() {
  try {
    execFileSync("sh", ["-c", "command -v dockerd && [ \"$(id -u)\" = 0 ] && docker image inspect berth-sandbox:latest"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
