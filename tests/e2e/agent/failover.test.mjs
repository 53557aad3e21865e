// Redis without a single point of failure, end to end: two berth replicas find Redis through
// three sentinels; users chat on both while the Redis master is SIGKILLed. Reports (one JSON
// line, "failover figures") sessions lost, errors seen by clients and the time to recover, and
// fails if any session whose system:ready arrived is lost, if the replicas do not recover within
// 30 s, or if messages answered well before the kill are missing from the resumed history.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startBerth, once, removeContainers } from "../support/berth.mjs";
import { startRedisHA } from "../support/redis-ha.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

const USERS = Number(process.env.BERTH_FAILOVER_USERS || 8);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One user: sends "note <n>" turns back to back and records what was answered and what failed.
function chat(user, stopAt) {
  const s = user.socket;
  const turn = async (n) => {
    const text = `note ${user.id}-${n}`;
    const answered = new Promise((resolve) => {
      const ok = (t) => { s.off("agent:error", bad); resolve({ ok: true, t }); };
      const bad = (e) => { s.off("agent:response", ok); resolve({ ok: false, e }); };
      s.once("agent:response", ok);
      s.once("agent:error", bad);
      setTimeout(() => { s.off("agent:response", ok); s.off("agent:error", bad); resolve({ ok: false, e: { code: "NO_ANSWER" } }); }, 10000).unref();
    });
    let ack;
    try {
      ack = await s.timeout(10000).emitWithAck("message", text);
    } catch {
      ack = { ok: false, code: "ACK_TIMEOUT" };
    }
    if (!ack.ok) return { ok: false, code: ack.code };
    const r = await answered;
    return r.ok ? { ok: true, text } : { ok: false, code: r.e?.code };
  };
  return (async () => {
    for (let n = 0; Date.now() < stopAt() && n < 10000; n++) {
      const at = Date.now();
      const r = await turn(n);
      if (r.ok) user.answered.push({ text: r.text, at: Date.now() });
      else {
        user.errors.push({ code: r.code, at });
        await sleep(100); // a client that retries, not one that spins
      }
    }
  })();
}

test("SIGKILL of the Redis master under load: no session lost, clean errors, recovery in seconds", async () => {
  const ha = await startRedisHA();
  cleanups.push(() => ha.stop());
  const env = { REDIS_URL: "redis://mymaster", REDIS_SENTINELS: ha.sentinels, REDIS_SENTINEL_MASTER: ha.masterName,
    POOL_MIN_SIZE: String(Math.ceil(USERS / 2) + 1), POOL_MAX_SIZE: String(USERS + 4) };
  const a = await startBerth(env);
  const b = await startBerth(env);
  cleanups.push(async () => { await a.stop(); await b.stop(); });
  const health = await (await fetch(`${a.url}/health`)).json();
  assert.equal(health.redis.sentinel, true);
  assert.equal(health.redis.master, `127.0.0.1:${ha.master.port}`);

  const users = [];
  for (let i = 0; i < USERS; i++) {
    const url = i % 2 ? b.url : a.url;
    const socket = io(url, { transports: ["websocket"], reconnection: false });
    users.push({ id: i, url, socket, answered: [], errors: [] });
  }
  cleanups.push(async () => { for (const u of users) u.socket.close(); });
  const readies = await Promise.all(users.map((u) => once(u.socket, "system:ready", 60000)));
  users.forEach((u, i) => { u.ready = readies[i]; });

  let stopping = false;
  const stopAt = () => (stopping ? 0 : Infinity);
  const loads = users.map((u) => chat(u, stopAt));
  await sleep(2000);
  const killedAt = Date.now();
  ha.master.crash();
  // Recovered: every user has had a turn answered after the kill (bounded: 30 s).
  const deadline = killedAt + 30000;
  while (Date.now() < deadline && !users.every((u) => u.answered.some((x) => x.at > killedAt))) await sleep(100);
  const recoveredAll = users.every((u) => u.answered.some((x) => x.at > killedAt));
  await sleep(1000);
  stopping = true;
  await Promise.all(loads);

  // Resume every session on the other replica with its token: a session is lost if it does not
  // come back with the same container, or if a turn answered >= 1 s before the kill is missing
  // from its history (its history write had long been acknowledged by then).
  const lost = [];
  let historyMissing = 0;
  for (const u of users) {
    u.socket.close();
    const other = u.url === a.url ? b.url : a.url;
    const s = io(other, { transports: ["websocket"], reconnection: false, query: { sessionId: u.ready.sessionId },
      auth: { resumeToken: u.ready.resumeToken } });
    try {
      const readyP = once(s, "system:ready", 30000);
      readyP.catch(() => {}); // the loser of the race must not reject unobserved
      const refusedP = once(s, "connect_error", 30000).then((e) => ({ error: e }), () => ({ error: { message: "no answer in 30 s" } }));
      const r = await Promise.race([readyP, refusedP]);
      if (r.error || !r.resumed || r.containerId !== u.ready.containerId) {
        lost.push({ sid: u.ready.sessionId, why: r.error ? r.error.message : `resumed=${r.resumed}` });
        continue;
      }
      const texts = new Set((r.history || []).map((h) => h.content));
      historyMissing += u.answered.filter((x) => x.at < killedAt - 1000 && !texts.has(x.text)).length;
    } finally {
      s.close();
    }
  }
  const recoverMs = users.map((u) => Math.min(...u.answered.filter((x) => x.at > killedAt).map((x) => x.at)) - killedAt);
  const errors = users.flatMap((u) => u.errors);
  const codes = {};
  for (const e of errors) codes[e.code] = (codes[e.code] || 0) + 1;
  const figures = {
    users: USERS,
    replicas: 2,
    sessionsLost: lost.length,
    turnsAnswered: users.reduce((n, u) => n + u.answered.length, 0),
    clientErrors: errors.length,
    errorCodes: codes,
    recoverMsMax: Math.max(...recoverMs),
    recoverMsMedian: recoverMs.sort((x, y) => x - y)[Math.floor(recoverMs.length / 2)],
    historyMissingBeforeKill: historyMissing,
    newMaster: (await (await fetch(`${a.url}/health`)).json()).redis.master,
    failoversFollowed: [(await (await fetch(`${a.url}/health`)).json()).redis.failovers,
      (await (await fetch(`${b.url}/health`)).json()).redis.failovers],
  };
  console.log("failover figures " + JSON.stringify(figures));
  cleanups.push(async () => { removeContainers(a.replica); removeContainers(b.replica); });

  assert.ok(recoveredAll, `not every user recovered within 30 s: ${JSON.stringify(figures)}`);
  assert.deepEqual(lost, [], "sessions lost");
  assert.equal(historyMissing, 0, "history entries acknowledged before the kill are missing");
  assert.equal(figures.newMaster, `127.0.0.1:${ha.replica.port}`);
  assert.deepEqual(figures.failoversFollowed, [1, 1]);
  // Errors during the failover are clean protocol errors, never hangs.
  for (const code of Object.keys(codes)) assert.ok(["INTERNAL", "TOO_MANY_REQUESTS", "LLM_UNAVAILABLE"].includes(code), code);
});
