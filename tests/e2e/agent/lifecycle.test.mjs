// A container's life across sessions, with real berth processes, Redis and dockerd: recycled
// between users (scrubbed, nothing of the previous user visible), parked during a reconnect grace,
// hibernated (workspace in Redis, container back to the pool) and restored on another replica,
// hibernated early when a user waits at POOL_MAX_SIZE,
// kept when over the save cap, kept across a restart with the same REPLICA_ID, and accounted for
// when users leave while queued, in a connect/disconnect loop, under MAX_CONTAINERS and under the
// per-address session cap.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once, removeContainers, metric } from "../support/berth.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function connect(url, opts = {}) {
  return io(url, { transports: ["websocket"], reconnection: false, ...opts });
}

async function approveAll(socket, text) {
  const outputs = [];
  const onApproval = (req) => socket.emit("tool:approval", { callId: req.callId, approved: true });
  const onOutput = (o) => outputs.push(o);
  socket.on("tool:approval_required", onApproval);
  socket.on("tool:output", onOutput);
  try {
    await socket.timeout(10000).emitWithAck("message", text);
    const response = await once(socket, "agent:response", 30000);
    return { outputs, response };
  } finally {
    socket.off("tool:approval_required", onApproval);
    socket.off("tool:output", onOutput);
  }
}

async function run(socket, cmd) {
  const { outputs } = await approveAll(socket, `run: ${cmd}`);
  assert.equal(outputs.length, 1, JSON.stringify(outputs));
  return outputs[0].content;
}

async function until(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function containersOf(replica) {
  return execFileSync("docker", ["ps", "-q", "--filter", `label=berth.replica=${replica}`]).toString().split(/\s+/).filter(Boolean);
}

async function cluster(count, env = {}) {
  const redis = await startRedis();
  const replicas = [];
  for (let i = 0; i < count; i++) replicas.push(await startBerth({ REDIS_URL: redis.url, ...env }));
  cleanups.push(async () => {
    for (const r of replicas) await r.stop();
    await redis.stop();
  });
  return { redis, replicas };
}

function redisCli(redis, ...args) {
  return execFileSync("redis-cli", ["-p", String(redis.port), ...args]).toString().trim();
}

test("a recycled container shows the next user nothing of the previous one, and costs no new container", async () => {
  const { replicas: [b] } = await cluster(1, { POOL_MIN_SIZE: "1", POOL_MAX_SIZE: "1" });
  const first = connect(b.url);
  const r1 = await once(first, "system:ready", 60000);
  await run(first, "echo secret > /workspace/.mine; mkdir -p /tmp/d; echo x > /tmp/d/f; (setsid sleep 600 &); echo ok");
  const created = await metric(b, "berth_pool_creates_total");
  await first.timeout(10000).emitWithAck("session:end");
  first.close();
  await until(async () => (await metric(b, "berth_pool_recycled_total")) >= 1, "the container to be recycled");
  const second = connect(b.url);
  try {
    const r2 = await once(second, "system:ready", 60000);
    assert.equal(r2.containerId, r1.containerId, "the same container serves the next user");
    const seen = await run(second, "ls -A /workspace /tmp; ps -o user,args | grep -c '[s]leep 600'");
    assert.doesNotMatch(seen, /\.mine|\bd\b/, seen);
    assert.match(seen, /^0$/m, `the previous user's process survived:\n${seen}`);
    assert.equal(await metric(b, "berth_pool_creates_total"), created, "no container was created for the second user");
  } finally {
    second.close();
  }
});

test("a session hibernates after its grace and resumes on another replica with its workspace", async () => {
  const { redis, replicas: [a, b] } = await cluster(2, { SESSION_DETACH_GRACE_MS: "300", POOL_MIN_SIZE: "1" });
  const s = connect(a.url);
  const r = await once(s, "system:ready", 60000);
  await approveAll(s, "write kept across replicas to notes/hello.txt");
  s.close();  // no session:end: a closed tab
  await until(async () => (await metric(a, "berth_sessions_hibernated_total")) >= 1, "hibernation on A");
  assert.match(redisCli(redis, "HGET", `berth:session:{${r.sessionId}}`, "workspace"), /^saved:\d+$/);
  assert.equal(redisCli(redis, "EXISTS", `berth:workspace:{${r.sessionId}}`), "1");
  // The container went back to A's pool, scrubbed.
  await until(async () => (await metric(a, "berth_pool_recycled_total")) >= 1, "A's container to be recycled");

  const s2 = connect(b.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await once(s2, "system:ready", 60000);
    assert.equal(r2.resumed, true);
    assert.notEqual(r2.containerId, r.containerId, "a pooled container of B, not A's");
    const read = await approveAll(s2, "read notes/hello.txt");
    assert.match(read.outputs[0].content, /kept across replicas/);
    assert.equal(await metric(b, "berth_sessions_restored_total"), 1);
    assert.equal(redisCli(redis, "EXISTS", `berth:workspace:{${r.sessionId}}`), "0", "the archive is dropped once restored");
    // session:end deletes the session and anything saved for it.
    await s2.timeout(10000).emitWithAck("session:end");
    assert.equal(redisCli(redis, "EXISTS", `berth:session:{${r.sessionId}}`), "0");
  } finally {
    s2.close();
  }
});

test("a reconnect within the grace takes the parked session back: same container, no Docker call", async () => {
  const { replicas: [a] } = await cluster(1, { SESSION_DETACH_GRACE_MS: "20000" });
  const s = connect(a.url);
  const r = await once(s, "system:ready", 60000);
  await run(s, "echo warm > /workspace/w.txt; echo ok");
  s.close();
  await until(async () => (await metric(a, "berth_sessions_parked")) === 1, "the session to park");
  // The counter also counts the servers the pool prepares in its idle containers: wait until the
  // refill after this session's acquire is done, so what is counted next is the reconnect's alone.
  await until(async () => {
    const p = await (await fetch(`${a.url}/stats/pool`)).json();
    return p.creating === 0 && p.idle > 0 && p.prepared === p.idle;
  }, "the pool's refill to be prepared");
  const execs = await metric(a, "berth_mcp_restarts_total");
  const s2 = connect(a.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await once(s2, "system:ready", 60000);
    assert.equal(r2.containerId, r.containerId);
    assert.equal(await metric(a, "berth_sessions_resumed_parked_total"), 1, "taken back, not adopted");
    assert.equal(await metric(a, "berth_mcp_restarts_total"), execs, "the parked MCP server serves on: no new exec");
    assert.match(await run(s2, "cat /workspace/w.txt"), /warm/);
  } finally {
    s2.close();
  }
});

test("at POOL_MAX_SIZE a waiting user gets the container of the longest-parked session, which hibernates early", async () => {
  // A grace far longer than the test: without the yield, the third user would wait for it.
  const { replicas: [a] } = await cluster(1, { POOL_MIN_SIZE: "1", POOL_MAX_SIZE: "2", SESSION_DETACH_GRACE_MS: "600000" });
  const first = connect(a.url);
  const r1 = await once(first, "system:ready", 60000);
  await run(first, "echo first-user > /workspace/mine.txt; echo ok");
  first.close();
  await until(async () => (await metric(a, "berth_sessions_parked")) === 1, "the first session to park");
  const second = connect(a.url);
  const r2 = await once(second, "system:ready", 60000);
  second.close();
  await until(async () => (await metric(a, "berth_sessions_parked")) === 2, "both sessions to park");

  const third = connect(a.url);
  const resumed = [];
  try {
    const r3 = await once(third, "system:ready", 60000);  // 60 s: a tenth of the grace
    assert.equal(r3.containerId, r1.containerId, "the first (longest-parked) session's container, scrubbed");
    assert.equal(await metric(a, "berth_sessions_yielded_total"), 1);
    assert.equal(await metric(a, "berth_sessions_parked"), 1, "the second session stays parked");
    assert.match(await run(third, "ls -A /workspace; echo end"), /^end/m, "nothing of the first user");
    // The first user comes back: its session was hibernated, not lost; now the second one yields.
    const back = connect(a.url, { query: { sessionId: r1.sessionId }, auth: { resumeToken: r1.resumeToken } });
    resumed.push(back);
    const rb = await once(back, "system:ready", 60000);
    assert.equal(rb.resumed, true);
    assert.equal(rb.containerId, r2.containerId);
    assert.match(await run(back, "cat /workspace/mine.txt"), /first-user/);
    assert.equal(await metric(a, "berth_sessions_yielded_total"), 2);
  } finally {
    third.close();
    for (const s of resumed) s.close();
  }
});

test("a workspace over WORKSPACE_SAVE_MAX_BYTES is kept in its container and the user is told on resume", async () => {
  const { replicas: [a] } = await cluster(1, { SESSION_DETACH_GRACE_MS: "200", WORKSPACE_SAVE_MAX_BYTES: "4096" });
  const s = connect(a.url);
  const r = await once(s, "system:ready", 60000);
  await run(s, "head -c 65536 /dev/urandom > /workspace/noise.bin; echo ok");
  s.close();
  await until(async () => (await metric(a, "berth_sessions_workspace_too_large_total")) === 1, "the over-cap report");
  const s2 = connect(a.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const notice = once(s2, "system:message", 60000);
    const r2 = await once(s2, "system:ready", 60000);
    assert.equal(r2.containerId, r.containerId, "the container was kept, not recycled");
    assert.match(await notice, /over the .* hibernation limit/);
    assert.match(await run(s2, "wc -c < /workspace/noise.bin"), /65536/);
  } finally {
    s2.close();
  }
});

test("a replica SIGKILLed and restarted with the same REPLICA_ID keeps its sessions' containers", async () => {
  const redis = await startRedis();
  cleanups.push(async () => redis.stop());
  const env = { REDIS_URL: redis.url, REPLICA_ID: `e2e-restart-${process.pid}`, SESSION_DETACH_GRACE_MS: "60000" };
  const a = await startBerth(env);
  const s = connect(a.url);
  const r = await once(s, "system:ready", 60000);
  await run(s, "echo before-crash > /workspace/state.txt; echo ok");
  await a.kill("SIGKILL");
  s.close();
  const a2 = await startBerth(env);
  cleanups.push(async () => a2.stop());
  const s2 = connect(a2.url, { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await once(s2, "system:ready", 60000);
    assert.equal(r2.resumed, true);
    assert.equal(r2.containerId, r.containerId, "the restarted replica did not remove the session's container");
    assert.match(await run(s2, "cat /workspace/state.txt"), /before-crash/);
  } finally {
    s2.close();
  }
});

test("users who leave while queued or in a connect/disconnect loop leave no container behind", async () => {
  const { replicas: [a] } = await cluster(1, { POOL_MIN_SIZE: "1", POOL_MAX_SIZE: "2", SESSION_DETACH_GRACE_MS: "100" });
  const holders = [connect(a.url), connect(a.url)];
  await Promise.all(holders.map((h) => once(h, "system:ready", 60000)));
  // The pool is at its max: a third user waits in the queue, then leaves.
  const queued = connect(a.url);
  await once(queued, "system:queued", 30000);
  queued.close();
  for (const h of holders) {
    await h.timeout(10000).emitWithAck("session:end");
    h.close();
  }
  // Thirty users who connect and leave at once, some before system:ready.
  for (let i = 0; i < 30; i++) {
    const c = connect(a.url);
    if (i % 2) await once(c, "system:ready", 60000);
    else await once(c, "connect", 10000);
    c.close();
  }
  await until(async () => (await metric(a, "berth_sessions_parked")) === 0 && (await metric(a, "berth_pool_scrubbing")) === 0,
    "every session to settle", 60000);
  const alive = containersOf(a.replica).length;
  const total = (await (await fetch(`${a.url}/stats/pool`)).json()).total;
  const logs = () => a.logs().split("\n").filter((l) => /warn|error|hibernat|ContainerPool/.test(l)).slice(-40).join("\n");
  assert.ok(alive <= 2, `${alive} containers alive with POOL_MAX_SIZE=2\n${logs()}`);
  assert.equal(alive, total, `every live container is the pool's\n${logs()}`);
});

test("MAX_CONTAINERS holds across replicas, and an address may hold only MAX_SESSIONS_PER_ADDRESS sessions", async () => {
  const { replicas: [a, b] } = await cluster(2, { MAX_CONTAINERS: "3", POOL_MIN_SIZE: "2", POOL_MAX_SIZE: "4",
    MAX_SESSIONS_PER_ADDRESS: "2" });
  await until(async () => containersOf(a.replica).length + containersOf(b.replica).length >= 3, "the pools to warm up");
  await until(async () => (await metric(a, "berth_containers_refused_total")) + (await metric(b, "berth_containers_refused_total")) >= 1,
    "a create to be refused by the cap");
  assert.equal(containersOf(a.replica).length + containersOf(b.replica).length, 3);
  const users = [connect(a.url), connect(b.url)];
  try {
    await Promise.all(users.map((u) => once(u, "system:ready", 60000)));
    const third = connect(a.url);
    const refused = await once(third, "connect_error", 10000);
    third.close();
    assert.equal(refused.data?.code, "SESSION_LIMIT");
  } finally {
    for (const u of users) u.close();
  }
});

after(() => removeContainers(`e2e-restart-${process.pid}`));
