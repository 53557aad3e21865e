// Two berth replicas sharing one real Redis and one real dockerd: resume across replicas after a
// SIGKILL, the per-user limit across sockets and replicas, the janitor, and a Redis outage.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { execFileSync, spawn } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once, removeContainers } from "../support/berth.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function jwt(sub, secret) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

function connect(url, opts = {}) {
  return io(url, { transports: ["websocket"], reconnection: false, ...opts });
}

async function ready(socket) {
  return once(socket, "system:ready", 60000);
}

async function approveAll(socket, text) {
  const outputs = [];
  const onApproval = (req) => socket.emit("tool:approval", { callId: req.callId, approved: true });
  const onOutput = (o) => outputs.push(o);
  socket.on("tool:approval_required", onApproval);
  socket.on("tool:output", onOutput);
  await socket.timeout(10000).emitWithAck("message", text);
  const response = await once(socket, "agent:response", 30000);
  socket.off("tool:approval_required", onApproval);
  socket.off("tool:output", onOutput);
  return { outputs, response };
}

// Cleanups are registered as each process starts, so a berth that refuses to start leaves no
// redis-server behind (a live child keeps the test file's process, and CI, waiting).
async function pair(env = {}) {
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const a = await startBerth({ REDIS_URL: redis.url, ...env });
  cleanups.push(() => a.stop());
  const b = await startBerth({ REDIS_URL: redis.url, ...env });
  cleanups.push(() => b.stop());
  return { redis, a, b };
}

test("a session made on A resumes on B with the same container and history after A is SIGKILLed", async () => {
  const { a, b } = await pair();
  const s = connect(a.url);
  const r = await ready(s);
  await approveAll(s, "write survived to survivor.txt");
  const disconnected = once(s, "disconnect");
  await a.kill("SIGKILL");
  assert.equal([].concat(await disconnected)[0], "transport close");
  // Without the resume token: refused.
  const thief = connect(b.url, { query: { sessionId: r.sessionId } });
  assert.equal((await once(thief, "connect_error")).data?.code, "SESSION_FORBIDDEN");
  thief.close();
  const s2 = connect(b.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await ready(s2);
    assert.equal(r2.resumed, true);
    assert.equal(r2.containerId, r.containerId);
    assert.ok(r2.history.some((h) => /survived/.test(h.content)), JSON.stringify(r2.history));
    const l = await approveAll(s2, "List all files in /workspace");
    assert.match(l.outputs[0].content, /survivor\.txt/);
  } finally {
    s2.disconnect();
    cleanups.push(async () => removeContainers(a.replica));
  }
});

test("six concurrent requests from one user on two sockets to two replicas: exactly one TOO_MANY_REQUESTS", async () => {
  const secret = "e2e-secret-of-at-least-32-bytes-" + process.pid;  // AUTH_JWT_SECRET needs >= 32 bytes
  const { a, b } = await pair({ AUTH_JWT_SECRET: secret });
  const token = jwt("carol", secret);
  // Without a token: UNAUTHORIZED.
  const anon = connect(a.url);
  assert.equal((await once(anon, "connect_error")).data?.code, "UNAUTHORIZED");
  anon.close();
  const s1 = connect(a.url, { auth: { token } });
  const s2 = connect(b.url, { auth: { token } });
  try {
    await Promise.all([ready(s1), ready(s2)]);
    // One request on each socket holds its lease while its tool call waits for approval.
    const held1 = once(s1, "tool:approval_required");
    const held2 = once(s2, "tool:approval_required");
    assert.equal((await s1.timeout(10000).emitWithAck("message", "List all files in /workspace")).ok, true);
    assert.equal((await s2.timeout(10000).emitWithAck("message", "List all files in /workspace")).ok, true);
    await Promise.all([held1, held2]);
    // Four more (they queue behind, holding leases): the last of them is the sixth request.
    const acks = await Promise.all([
      s1.timeout(10000).emitWithAck("message", "one"),
      s2.timeout(10000).emitWithAck("message", "two"),
      s1.timeout(10000).emitWithAck("message", "three"),
      s2.timeout(10000).emitWithAck("message", "four"),
    ]);
    const refused = acks.filter((x) => x.ok === false);
    assert.equal(refused.length, 1, JSON.stringify(acks));
    assert.equal(refused[0].code, "TOO_MANY_REQUESTS");
  } finally {
    s1.disconnect();
    s2.disconnect();
  }
});

async function counter(url, name) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

// An abandoned session first hibernates (SESSION_DETACH_GRACE_MS, its container recycled); the
// janitor then ends its record once SESSION_IDLE_TIMEOUT_MS has passed without activity.
test("the janitor leaves an active user alone past the idle timeout and ends an abandoned session", async () => {
  // The loop below sends turns as fast as the local model answers them, well over the 20 events
  // per second a socket may send by default (SOCKET_EVENTS_PER_SECOND), a user's 40, and the LLM
  // tokens a user may spend per minute (its history grows each turn): those limits are off here.
  const { a, b } = await pair({ SESSION_IDLE_TIMEOUT_MS: "2000", SESSION_DETACH_GRACE_MS: "300", SOCKET_EVENTS_PER_SECOND: "0",
                                USER_EVENTS_PER_SECOND: "0", LLM_TOKENS_PER_USER_PER_MINUTE: "0" });
  const active = connect(a.url);
  const abandoned = connect(a.url);
  try {
    const [ra, rb] = await Promise.all([ready(active), ready(abandoned)]);
    await approveAll(abandoned, "List all files in /workspace");  // a history to lose
    abandoned.disconnect();
    // Keep the other user busy until the janitor has ended the abandoned session (bounded).
    const deadline = Date.now() + 30000;
    let reaped = 0;
    while (Date.now() < deadline && reaped === 0) {
      await approveAll(active, "List all files in /workspace");
      // Both replicas run a janitor on the shared Redis: either may end it.
      reaped = (await counter(a.url, "berth_sessions_reaped_total")) + (await counter(b.url, "berth_sessions_reaped_total"));
    }
    assert.equal(reaped, 1, "the abandoned session was not reaped");
    assert.equal(await counter(a.url, "berth_sessions_hibernated_total"), 1);
    // The active user kept its container past the idle timeout, and it works.
    assert.notEqual(execFileSync("docker", ["ps", "-q", "--filter", `id=${ra.containerId}`]).toString().trim(), "");
    const l = await approveAll(active, "List all files in /workspace");
    assert.equal(l.outputs[0].isError, false);
    // The ended session cannot be resumed: a new one starts.
    const back = connect(a.url, { query: { sessionId: rb.sessionId }, auth: { resumeToken: rb.resumeToken } });
    const r3 = await ready(back);
    assert.equal(r3.resumed, false);
    assert.deepEqual(r3.history ?? [], [], "an ended session's history must not come back");
    back.disconnect();
  } finally {
    active.disconnect();
  }
});

test("Redis stopped and restarted: clear errors, /health 503, and service resumes without restarting berth", async () => {
  const redis = await startRedis();
  const a = await startBerth({ REDIS_URL: redis.url });
  cleanups.push(async () => a.stop());
  const s = connect(a.url);
  try {
    await ready(s);
    await redis.stop();
    // /health turns 503 "degraded" (bounded wait for the health probe to notice).
    let health;
    for (let i = 0; i < 100; i++) {
      health = await fetch(`${a.url}/health`);
      if (health.status === 503) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(health.status, 503);
    assert.equal((await health.json()).status, "degraded");
    // A request that needs Redis gets a clear error, and the process keeps serving.
    const ack = await s.timeout(10000).emitWithAck("message", "hello while redis is down");
    assert.equal(ack.ok, false);
    assert.ok(ack.message.length > 0);
    // Redis comes back on the same port.
    const proc = spawn("redis-server", ["--port", String(redis.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    cleanups.push(async () => proc.kill("SIGKILL"));
    let ok = false;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = (await fetch(`${a.url}/health`)).status === 200;
      if (!ok) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(ok, "/health did not recover");
    const again = await s.timeout(10000).emitWithAck("message", "hello again");
    assert.equal(again.ok, true, JSON.stringify(again));
    assert.match(again.turnId, /^t.+-\d+$/);
  } finally {
    s.disconnect();
  }
});

test("orphan reaping: once A's heartbeat is gone, B removes A's idle containers and keeps the one a session resumes", async () => {
  const { a, b, redis } = await pair({ ORPHAN_REAP_INTERVAL_MS: "1000" });
  const sameId = (x, y) => x.startsWith(y) || y.startsWith(x);
  const containersOf = (replica) =>
    execFileSync("docker", ["ps", "-aq", "--no-trunc", "--filter", `label=berth.replica=${replica}`]).toString().split(/\s+/).filter(Boolean);
  const s = connect(a.url);
  const r = await ready(s);
  cleanups.push(async () => removeContainers(a.replica));
  // A's pool refills behind the leased container: wait (bounded) for an idle one to exist.
  let deadline = Date.now() + 30000;
  while (Date.now() < deadline && containersOf(a.replica).filter((id) => !sameId(id, r.containerId)).length === 0)
    await new Promise((res) => setTimeout(res, 200));
  assert.ok(containersOf(a.replica).some((id) => !sameId(id, r.containerId)), "A has no idle container");
  const disconnected = once(s, "disconnect");
  await a.kill("SIGKILL");
  await disconnected;
  // A's heartbeat expires (10 s), then B's next round removes everything of A but the session's.
  deadline = Date.now() + 45000;
  let left = containersOf(a.replica);
  while (Date.now() < deadline && !(left.length === 1 && sameId(left[0], r.containerId))) {
    await new Promise((res) => setTimeout(res, 250));
    left = containersOf(a.replica);
  }
  if (left.length !== 1) {
    // What the reaper saw, to tell a timing problem from a wrong decision.
    const lines = (logs) => logs.split("\n").filter((l) => /heartbeat|orphan reaper/i.test(l)).slice(-6).join("\n");
    const replicas = execFileSync("redis-cli", ["-p", String(redis.port), "zrange", "berth:replicas", "0", "-1"]).toString();
    assert.fail(`A (${a.replica}) containers left: ${left}\nknown replicas: ${replicas}\nA:\n${lines(a.logs())}\nB:\n${lines(b.logs())}`);
  }
  assert.ok(sameId(left[0], r.containerId));
  const metrics = await (await fetch(`${b.url}/metrics`)).text();
  assert.ok(Number(/^berth_orphans_reaped_total (\d+)/m.exec(metrics)?.[1]) >= 1, metrics.slice(0, 500));
  assert.match(b.logs(), /orphan reaper round: listed=\d+ orphans=[1-9]/);
  // The user resumes on B with the very same container.
  const s2 = connect(b.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await ready(s2);
    assert.equal(r2.resumed, true);
    assert.equal(r2.containerId, r.containerId);
    const l = await approveAll(s2, "List all files in /workspace");
    assert.equal(l.outputs[0].isError, false);
  } finally {
    s2.disconnect();
  }
});
