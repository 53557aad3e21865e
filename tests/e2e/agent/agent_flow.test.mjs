// The whole agent flow through the real gateway: socket.io-client -> berth -> real Redis, real
// dockerd, the sandbox image with berth-sandbox (MCP) inside, and the embedded local model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once } from "../support/berth.mjs";

let redis;
let berth;

before(async () => {
  redis = await startRedis();
  berth = await startBerth({ REDIS_URL: redis.url, TOOL_TIMEOUT_MS: "2000", MAX_REQUESTS_PER_USER: "5" });
});

after(async () => {
  await berth?.stop();
  await redis?.stop();
});

function connect(opts = {}) {
  return io(berth.url, { transports: ["websocket"], reconnection: false, ...opts });
}

async function ready(socket) {
  const r = await once(socket, "system:ready", 60000);
  assert.ok(r.sessionId && r.containerId && r.resumeToken, JSON.stringify(r));
  return r;
}

// Sends a message, approves every proposed call (or rejects), returns outputs and the response.
async function turn(socket, text, { approve = true } = {}) {
  const outputs = [];
  const approvals = [];
  const onApproval = (req) => {
    approvals.push(req);
    socket.emit("tool:approval", { callId: req.callId, approved: approve });
  };
  const onOutput = (o) => outputs.push(o);
  socket.on("tool:approval_required", onApproval);
  socket.on("tool:output", onOutput);
  const ack = await socket.timeout(10000).emitWithAck("message", text);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.match(ack.turnId, /^t.+-\d+$/);
  const response = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no agent:response")), 30000);
    socket.once("agent:response", (r) => { clearTimeout(t); resolve(r); });
    socket.once("agent:error", (e) => { clearTimeout(t); reject(new Error(`agent:error ${JSON.stringify(e)}`)); });
  });
  socket.off("tool:approval_required", onApproval);
  socket.off("tool:output", onOutput);
  return { outputs, approvals, response };
}

function execIn(container, cmd) {
  return execFileSync("docker", ["exec", container, "/bin/sh", "-c", cmd]).toString();
}

test("write_file then list_files runs in the user's own container", async () => {
  const s = connect();
  try {
    const r = await ready(s);
    assert.equal(r.provider, "local");
    assert.equal(r.limits.maxConcurrentRequests, 5);
    const w = await turn(s, "write hello berth to notes.txt");
    assert.equal(w.approvals.length, 1);
    assert.equal(w.approvals[0].name, "write_file");
    assert.equal(w.approvals[0].queuePosition, 1);
    assert.equal(w.approvals[0].totalInQueue, 1);
    assert.equal(w.outputs.length, 1);
    assert.equal(w.outputs[0].isError, false, JSON.stringify(w.outputs[0]));
    assert.equal(typeof w.outputs[0].durationMs, "number");
    // The file really is in that container.
    assert.match(execIn(r.containerId, "cat /workspace/notes.txt"), /hello berth/);
    const l = await turn(s, "List all files in /workspace");
    assert.equal(l.approvals[0].name, "list_files");
    assert.match(l.outputs[0].content, /notes\.txt/);
    assert.equal(l.outputs[0].callId, l.approvals[0].callId);
    assert.match(l.response, /notes\.txt/);
  } finally {
    s.disconnect();
  }
});

test("a rejected call runs nothing and the turn still ends with a response", async () => {
  const s = connect();
  try {
    const r = await ready(s);
    const t = await turn(s, "write secret to rejected.txt", { approve: false });
    assert.equal(t.approvals.length, 1);
    assert.equal(typeof t.response, "string");
    assert.throws(() => execIn(r.containerId, "test -e /workspace/rejected.txt"));
    // A repeated approval for the same call is refused.
    const ack = await s.timeout(5000).emitWithAck("tool:approval", { callId: t.approvals[0].callId, approved: true });
    assert.equal(ack.ok, false);
    assert.equal(ack.code, "NO_PENDING_CALL");
  } finally {
    s.disconnect();
  }
});

test("a tool that outlives TOOL_TIMEOUT_MS ends with TOOL_TIMEOUT and the session stays usable", async () => {
  const s = connect();
  try {
    await ready(s);
    const outputs = [];
    s.on("tool:output", (o) => outputs.push(o));
    s.on("tool:approval_required", (req) => s.emit("tool:approval", { callId: req.callId, approved: true }));
    const errors = [];
    s.on("agent:error", (e) => errors.push(e));
    await s.timeout(5000).emitWithAck("message", "run `sleep 30`");
    // A tool timeout is reported mid-turn (agent:error with its callId); the turn still ends
    // with the model's response.
    const response = await once(s, "agent:response", 30000);
    assert.equal(typeof response, "string");
    const timedOut = errors.some((e) => e.code === "TOOL_TIMEOUT" && e.callId) || outputs.some((o) => o.isError);
    assert.ok(timedOut, JSON.stringify({ outputs, errors }));
    s.removeAllListeners("tool:approval_required");
    const again = await turn(s, "List all files in /workspace");
    assert.equal(again.outputs[0].isError, false);
  } finally {
    s.disconnect();
  }
});

test("two users cannot see each other's files", async () => {
  const a = connect();
  const b = connect();
  try {
    const [ra, rb] = await Promise.all([ready(a), ready(b)]);
    assert.notEqual(ra.containerId, rb.containerId);
    await turn(a, "write only-for-a to private-a.txt");
    const lb = await turn(b, "List all files in /workspace");
    assert.doesNotMatch(lb.outputs[0].content, /private-a/);
    const rbRead = await turn(b, "read private-a.txt");
    assert.equal(rbRead.outputs[0].isError, true);
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test("invalid payloads and unknown events get precise errors; the session stays usable", async () => {
  const s = connect();
  try {
    await ready(s);
    const bad = await s.timeout(5000).emitWithAck("tool:approval", { nope: 1 });
    assert.equal(bad.ok, false);
    assert.equal(bad.code, "INVALID_PAYLOAD");
    const empty = await s.timeout(5000).emitWithAck("message", "");
    assert.equal(empty.code, "INVALID_PAYLOAD");
    const unknown = await s.timeout(5000).emitWithAck("no-such-event", 1);
    assert.equal(unknown.code, "INVALID_PAYLOAD");
    const none = await s.timeout(5000).emitWithAck("tool:approval", { callId: "nope", approved: true });
    assert.equal(none.code, "NO_PENDING_CALL");
    const t = await turn(s, "List all files in /workspace");
    assert.equal(t.outputs.length, 1);
  } finally {
    s.disconnect();
  }
});

test("resume: the same container and history come back with the resume token, and only with it", async () => {
  const s = connect();
  const r = await ready(s);
  await turn(s, "write kept to kept.txt");
  s.disconnect();
  // Someone else with the session id but no token is refused.
  const thief = connect({ query: { sessionId: r.sessionId } });
  const err = await once(thief, "connect_error");
  assert.equal(err.data?.code, "SESSION_FORBIDDEN");
  thief.close();
  const back = connect({ query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await ready(back);
    assert.equal(r2.resumed, true);
    assert.equal(r2.containerId, r.containerId);
    assert.ok(r2.history.some((h) => h.role === "user" && /kept/.test(h.content)), JSON.stringify(r2.history));
    const l = await turn(back, "List all files in /workspace");
    assert.match(l.outputs[0].content, /kept\.txt/);
  } finally {
    back.disconnect();
  }
});

test("six concurrent requests from one user: exactly one TOO_MANY_REQUESTS", async () => {
  const s = connect();
  try {
    await ready(s);
    // The first request holds its lease while its tool call waits for approval; the next ones queue
    // behind it (each holding a lease too), so the sixth is over the limit of five.
    const pending = once(s, "tool:approval_required");
    const first = await s.timeout(10000).emitWithAck("message", "List all files in /workspace");
    assert.equal(first.ok, true, JSON.stringify(first));
    assert.match(first.turnId, /^t.+-\d+$/);
    const call = await pending;
    const errors = [];
    s.on("agent:error", (e) => errors.push(e));
    const acks = await Promise.all(
      Array.from({ length: 5 }, (_, i) => s.timeout(10000).emitWithAck("message", `hello ${i}`)),
    );
    const refused = acks.filter((a) => a.ok === false);
    assert.equal(refused.length, 1, JSON.stringify(acks));
    assert.equal(refused[0].code, "TOO_MANY_REQUESTS");
    assert.ok(errors.some((e) => e.code === "TOO_MANY_REQUESTS"), JSON.stringify(errors));
    s.emit("tool:approval", { callId: call.callId, approved: false });
  } finally {
    s.disconnect();
  }
});

test("session:end ends the session and hands its container back scrubbed", async () => {
  const s = connect();
  const r = await ready(s);
  await turn(s, "write private to mine.txt");
  const recycled0 = await metric("berth_pool_recycled_total");
  const disconnected = once(s, "disconnect");  // registered first: it may follow the ack at once
  const ack = await s.timeout(15000).emitWithAck("session:end");
  assert.deepEqual(ack, { ok: true });
  assert.equal([].concat(await disconnected)[0], "io server disconnect");
  // The container is either scrubbed and idle in the pool (recycled) or gone; never left with the file.
  for (let i = 0; i < 200 && (await metric("berth_pool_recycled_total")) === recycled0; i++)
    await new Promise((res) => setTimeout(res, 50));
  const ids = execFileSync("docker", ["ps", "-q", "--filter", `id=${r.containerId}`]).toString().trim();
  if (ids !== "") {
    // At least this one (a session an earlier test left parked may hibernate meanwhile and recycle its own).
    assert.ok((await metric("berth_pool_recycled_total")) >= recycled0 + 1);
    assert.equal(execIn(r.containerId, "ls -A /workspace").trim(), "", "the scrub left the previous user's file");
  }
  const again = connect({ query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } });
  try {
    const r2 = await ready(again);
    assert.equal(r2.resumed, false, "an ended session does not come back");
  } finally {
    again.disconnect();
  }
});

// Reads one series of /metrics (labels ignored: the first match).
async function metric(name) {
  const text = await (await fetch(`${berth.url}/metrics`)).text();
  const m = text.match(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, "m"));
  assert.ok(m, `${name} missing from /metrics`);
  return Number(m[1]);
}

// Polls /stats/pool (bounded) until every idle container holds its prepared MCP exec.
async function poolSettled() {
  for (let i = 0; i < 600; i++) {
    const s = await (await fetch(`${berth.url}/stats/pool`)).json();
    if (s.creating === 0 && s.idle > 0 && s.prepared === s.idle) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail("the pool did not settle with prepared idle containers within 60 s");
}

test("a warm container comes with its MCP server already open: the session starts no exec of its own", async () => {
  await poolSettled();
  // Every sandbox MCP exec is counted by berth_mcp_restarts_total; the pool opens one per new idle
  // container (berth_pool_creates_total). A session that opened its own would add one more.
  const execs0 = await metric("berth_mcp_restarts_total");
  const creates0 = await metric("berth_pool_creates_total");
  const s = connect();
  try {
    await ready(s);
    const t = await turn(s, "List all files in /workspace");
    assert.equal(t.outputs[0].isError, false, JSON.stringify(t.outputs[0]));
    await poolSettled();  // the refill behind this lease is prepared too
    const execs = (await metric("berth_mcp_restarts_total")) - execs0;
    const creates = (await metric("berth_pool_creates_total")) - creates0;
    // With recycling the lease may need no refill at all (creates 0); either way the session's own
    // exec count is what remains, and it must be zero.
    assert.equal(execs, creates, "one exec per new pool container, none for the session");
  } finally {
    s.disconnect();
  }
});
