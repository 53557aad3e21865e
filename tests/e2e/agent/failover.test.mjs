// Redis without a single point of failure, end to end: two berth replicas find Redis through
// three sentinels (real redis-server / redis-sentinel on loopback); users chat on both while the
// Redis master is SIGKILLed. Prints one line "failover figures {...}" (sessions lost, errors seen
// by clients, time to recover) and fails if a session whose system:ready arrived is lost, if the
// users do not recover within 30 s, if a turn answered well before the kill is missing from the
// resumed history, or if a client saw anything but a clean protocol error.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startBerth, removeContainers } from "../support/berth.mjs";
import { startRedisHA } from "../support/redis-ha.mjs";
import { failoverUnderLoad } from "../support/failover-load.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const USERS = Number(process.env.BERTH_FAILOVER_USERS || 8);
const health = async (b) => (await (await fetch(`${b.url}/health`)).json()).redis;

test("SIGKILL of the Redis master under load: no session lost, clean errors, recovery in seconds", async () => {
  const ha = await startRedisHA();
  cleanups.push(() => ha.stop());
  const env = { REDIS_URL: "redis://mymaster", REDIS_SENTINELS: ha.sentinels, REDIS_SENTINEL_MASTER: ha.masterName,
    POOL_MIN_SIZE: String(Math.ceil(USERS / 2) + 1), POOL_MAX_SIZE: String(USERS + 4),
    // No token-budget trimming: every answered turn must be in the resumed history, however
    // many a fast machine answers before the kill.
    MAX_HISTORY_TOKENS: "10000000",
    // Each user chats as fast as the local model answers, over a socket's default 20 events/s,
    // a user's 40 and the LLM tokens a user may spend per minute: those limits are off here.
    SOCKET_EVENTS_PER_SECOND: "0", USER_EVENTS_PER_SECOND: "0", LLM_TOKENS_PER_USER_PER_MINUTE: "0" };
  const a = await startBerth(env);
  const b = await startBerth(env);
  cleanups.push(async () => {
    await a.stop();
    await b.stop();
    removeContainers(a.replica);
    removeContainers(b.replica);
  });
  const before = await health(a);
  assert.equal(before.sentinel, true);
  assert.equal(before.master, `127.0.0.1:${ha.master.port}`);

  const { figures, lost, recoveredAll, historyMissing } = await failoverUnderLoad({
    io, urls: [a.url, b.url], users: USERS, kill: async () => ha.master.crash() });
  const [ha_, hb] = [await health(a), await health(b)];
  figures.replicas = 2;
  figures.newMaster = ha_.master;
  figures.failoversFollowed = [ha_.failovers, hb.failovers];
  console.log("failover figures " + JSON.stringify(figures));

  assert.ok(recoveredAll, `not every user recovered within 30 s: ${JSON.stringify(figures)}`);
  assert.deepEqual(lost, [], "sessions lost");
  assert.equal(historyMissing, 0, "history entries answered before the kill are missing");
  assert.equal(ha_.master, `127.0.0.1:${ha.replica.port}`);
  assert.deepEqual(figures.failoversFollowed, [1, 1]);
  // Errors during the failover are clean protocol errors, never hangs (ACK_TIMEOUT, NO_ANSWER);
  // a history write that Redis refused is told as HISTORY_NOT_SAVED.
  for (const code of Object.keys(figures.errorCodes))
    assert.ok(["INTERNAL", "LLM_UNAVAILABLE", "HISTORY_NOT_SAVED"].includes(code), code);
});
