// The chaos scenarios and their runner (see harness.mjs). Each scenario: users chat for `loadMs`,
// the fault is injected, the run waits (bounded) until every affected user has finished a tool
// turn again, lets the load run a little longer, stops it, then checks sessions, history,
// containers and limiter slots. Scenarios run one after another on the same stack and users.
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import {
  startDockerd, startDurableRedis, startReplica, Users, percentile, containersLeaked, limiterSlotsLeaked,
  checkSessions, sleep,
} from "./harness.mjs";
import { freePort } from "../e2e/support/berth.mjs";

// The containers some users hold now (a fifth of them, at least one), as their session records
// in Redis name them (a session may have changed container since its system:ready).
function someContainers(users, redis) {
  const n = Math.max(1, Math.floor(users.all.length / 5));
  return users.all.slice(0, n).map((u) => redis.cli("HGET", `berth:session:{${u.sessionId}}`, "container")).filter(Boolean);
}

// A process inside a container (as root unless `user`), through the chaos dockerd.
function execIn(docker, container, script, user = "0") {
  try {
    return docker.cli("exec", "-u", user, container, "/bin/sh", "-c", script);
  } catch (e) {
    return `exec failed: ${e.message.split("\n")[0]}`;
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
  // The kernel's OOM killer takes a fifth of the users' sandboxes: the container's first process
  // is made the OOM killer's first choice, then four processes of the sandbox user together
  // allocate past the memory limit (each smaller than the first process's score, so the kernel
  // kills the container rather than one of them).
  "sandbox-oom": async ({ docker, users, redis }) => {
    const ids = someContainers(users, redis);
    await Promise.all(ids.map(async (id) => {
      execIn(docker, id, "echo 1000 > /proc/1/oom_score_adj");
      execIn(docker, id, "for i in 1 2 3 4; do dd if=/dev/zero of=/dev/null bs=24M count=1 2>/dev/null & done; wait", "1000:1000");
    }));
    return { containers: ids.length, oomKilled: ids.filter((id) => {
      try {
        return docker.cli("inspect", "-f", "{{.State.OOMKilled}}", id).trim() === "true";
      } catch {
        return false;
      }
    }).length };
  },
  // The sandbox MCP server (`berth-sandbox mcp`, under the container's `berth-sandbox supervise`)
  // killed inside a fifth of the users' containers.
  "mcp-kill": async ({ docker, users, redis }) => {
    const ids = someContainers(users, redis);
    const killServer = "for p in $(pidof berth-sandbox); do if tr '\\0' ' ' < /proc/$p/cmdline | grep -q '^[^ ]* mcp '; then kill -9 $p && echo killed $p; fi; done";
    const killed = ids.filter((id) => /^killed/.test(execIn(docker, id, killServer)));
    return { containers: ids.length, serversKilled: killed.length };
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
      const injected = (await scenarios[name]({ docker, redis, replicas, users })) || {};
      const faultDoneAt = Date.now();
      log(`${name}: fault injected in ${faultDoneAt - faultAt} ms ${JSON.stringify(injected)}`);
      // Until every user who saw the fault has worked again (bounded).
      const deadline = faultDoneAt + recoverWithinMs;
      let rec = users.recovery(faultAt, faultAt);
      while (Date.now() < deadline) {
        await sleep(500);
        rec = users.recovery(faultAt, faultAt);
        if (Date.now() > faultDoneAt + 3000 && rec.unrecovered === 0) break;
      }
      await sleep(2000);
      await users.stop();
      rec = users.recovery(faultAt, faultAt);
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
        usersAffected: rec.affected,
        usersRecovered: rec.recovered,
        recoverMsP50: percentile(rec.ms, 50),
        recoverMsP95: percentile(rec.ms, 95),
        recoverMsMax: rec.ms.length ? rec.ms[rec.ms.length - 1] : null,
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
      if (process.env.BERTH_CHAOS_LOG_DIR)
        for (const r of replicas) writeFileSync(path.join(process.env.BERTH_CHAOS_LOG_DIR, `${name}-${r.replica}.log`), r.logs());
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
