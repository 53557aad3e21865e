// Streaming and stopping through the real gateway (issue 16): agent:delta while the model
// writes, agent:cancel of a running tool (killed inside the container), of a streaming answer
// (the provider's connection closed), and a provider that dies mid-stream. Real Redis, dockerd,
// the sandbox image; the embedded local model, and a fake OpenAI server speaking its real
// streaming wire format (tests/e2e/support/fake-openai.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startBerth, startRedis, once, until, processes } from "../support/berth.mjs";
import { startFakeOpenAI } from "../support/fake-openai.mjs";

let redis;
let local;  // LLM_PROVIDER=local; two requests per user: a turn and its approval step
let remote; // LLM_PROVIDER=openai against the fake
let fake;

const slow = Array.from({ length: 200 }, () => "tok ");
before(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI([
    { pieces: slow, gapMs: 50 },              // cancelled mid-stream
    { pieces: ["after ", "the ", "stop"] },   // the next turn
    { pieces: ["a ", "b ", "c "], gapMs: 20, cutAfter: 2 }, // the provider dies
    { pieces: ["recovered"] },
  ]);
  local = await startBerth({ REDIS_URL: redis.url, MAX_REQUESTS_PER_USER: "2", TOOL_TIMEOUT_MS: "60000" });
  remote = await startBerth({
    REDIS_URL: redis.url,
    LLM_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_API_KEY: "sk-fake-e2e",
    POOL_MIN_SIZE: "1",
  });
});

after(async () => {
  await local?.stop();
  await remote?.stop();
  await fake?.stop();
  await redis?.stop();
});

function connect(berth, opts = {}) {
  return io(berth.url, { transports: ["websocket"], reconnection: false, ...opts });
}

async function ready(socket) {
  return once(socket, "system:ready", 60000);
}

function collect(socket, event) {
  const seen = [];
  socket.on(event, (p) => seen.push(p));
  return seen;
}

test("the answer streams as agent:delta before agent:response, under the turn's id", async () => {
  const s = connect(local);
  try {
    await ready(s);
    const deltas = collect(s, "agent:delta");
    const approvals = collect(s, "tool:approval_required");
    const outputs = collect(s, "tool:output");
    const thinking = collect(s, "agent:thinking");
    s.on("tool:approval_required", (r) => s.emit("tool:approval", { callId: r.callId, approved: true }));
    const response = once(s, "agent:response", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "List all files in /workspace");
    assert.equal(ack.ok, true);
    const text = await response;
    const turnId = ack.turnId;
    assert.deepEqual(thinking, [{ turnId }]);
    assert.equal(approvals[0].turnId, turnId);
    assert.equal(outputs[0].turnId, turnId);
    assert.ok(deltas.length >= 2, `several deltas, got ${JSON.stringify(deltas)}`);
    deltas.forEach((d, i) => {
      assert.equal(d.turnId, turnId);
      assert.equal(d.index, i, "indexes count up from 0 within the turn");
    });
    assert.ok(deltas.map((d) => d.text).join("").endsWith(text), "the deltas spell the answer");
  } finally {
    s.disconnect();
  }
});

test("agent:cancel kills the running tool in the container, frees the limiter slot and records it", async () => {
  const s = connect(local);
  let resumeAs;
  try {
    const r = await ready(s);
    resumeAs = { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } };
    const outputs = collect(s, "tool:output");
    const pending = once(s, "tool:approval_required", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "run `sleep 31`");
    const call = await pending;
    assert.equal(call.turnId, ack.turnId);
    s.emit("tool:approval", { callId: call.callId, approved: true });
    await until(() => processes(r.containerId, "^sleep 3[1]") > 0, 15000, "sleep 31 to run in the container");

    const cancelled = once(s, "agent:cancelled", 10000);
    const t0 = Date.now();
    const c = await s.timeout(10000).emitWithAck("agent:cancel", { turnId: ack.turnId });
    assert.deepEqual(c, { ok: true, turnId: ack.turnId });
    assert.deepEqual(await cancelled, { turnId: ack.turnId, phase: "running_tool" });
    await until(() => processes(r.containerId, "^sleep 3[1]") === 0, 5000, "sleep 31 to be killed");
    const killedMs = Date.now() - t0;
    assert.ok(killedMs < 5000, `killed in ${killedMs} ms`);

    // Twice, nothing running, or without an id: documented answers.
    const twice = await s.timeout(5000).emitWithAck("agent:cancel", { turnId: ack.turnId });
    assert.equal(twice.ok, false);
    assert.equal(twice.code, "NO_ACTIVE_TURN");
    const none = await s.timeout(5000).emitWithAck("agent:cancel", {});
    assert.equal(none.code, "NO_ACTIVE_TURN");
    const bad = await s.timeout(5000).emitWithAck("agent:cancel", { turnId: 42 });
    assert.equal(bad.code, "INVALID_PAYLOAD");

    // MAX_REQUESTS_PER_USER=2, and the stopped turn held both (its message and its approval step):
    // the next message and its approval get in only if the cancel freed both.
    s.removeAllListeners("tool:approval_required");
    s.on("tool:approval_required", (q) => s.emit("tool:approval", { callId: q.callId, approved: true }));
    const next = await s.timeout(10000).emitWithAck("message", "List all files in /workspace");
    assert.equal(next.ok, true, JSON.stringify(next));
    await once(s, "agent:response", 30000);
    assert.ok(!outputs.some((o) => o.callId === call.callId), "the killed call reports no output");
  } finally {
    s.disconnect();
  }
  // The history says what happened, so a resumed session (and the model) read a whole turn.
  const back = connect(local, resumeAs);
  try {
    const r2 = await ready(back);
    const h = r2.history;
    const tool = h.find((e) => e.role === "tool" && /stopped the turn while this tool call was running/.test(e.content));
    assert.ok(tool, JSON.stringify(h));
    assert.ok(h.some((e) => e.role === "assistant" && e.content.includes("[stopped by the user]")), JSON.stringify(h));
  } finally {
    back.disconnect();
  }
});

test("a turn id of another session is TURN_NOT_FOUND and leaves that turn alone", async () => {
  const a = connect(local);
  const b = connect(local);
  try {
    await Promise.all([ready(a), ready(b)]);
    const pending = once(a, "tool:approval_required", 30000);
    const ack = await a.timeout(10000).emitWithAck("message", "List all files in /workspace");
    const call = await pending;
    const foreign = await b.timeout(5000).emitWithAck("agent:cancel", { turnId: ack.turnId });
    assert.equal(foreign.ok, false);
    assert.equal(foreign.code, "TURN_NOT_FOUND");
    const response = once(a, "agent:response", 30000);
    a.emit("tool:approval", { callId: call.callId, approved: true });
    assert.equal(typeof (await response), "string");
  } finally {
    a.disconnect();
    b.disconnect();
  }
});

test("cancelling a streaming answer aborts the provider request; the next request sees a whole history", async () => {
  const s = connect(remote);
  try {
    await ready(s);
    const deltas = collect(s, "agent:delta");
    const ack = await s.timeout(10000).emitWithAck("message", "write me a long story");
    await until(() => deltas.length >= 2, 15000, "two deltas");
    const cancelled = once(s, "agent:cancelled", 10000);
    const c = await s.timeout(5000).emitWithAck("agent:cancel");
    assert.equal(c.ok, true);
    assert.deepEqual(await cancelled, { turnId: ack.turnId, phase: "waiting_llm" });
    await until(() => fake.requests[0].closedEarly, 5000, "the provider connection to close");
    const shown = deltas.map((d) => d.text).join("");
    assert.ok(shown.length < slow.join("").length, "stopped before the end");

    const response = once(s, "agent:response", 30000);
    await s.timeout(5000).emitWithAck("message", "go on");
    assert.equal(await response, "after the stop");
    const msgs = fake.requests[1].body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assert.ok(msgs[2].content.startsWith("tok tok"), msgs[2].content);
    assert.ok(msgs[2].content.endsWith("[stopped by the user]"), msgs[2].content);
    assert.equal(fake.requests[1].body.stream, true);
    assert.deepEqual(fake.requests[1].body.stream_options, { include_usage: true });
  } finally {
    s.disconnect();
  }
});

test("a provider that dies mid-stream gives LLM_UNAVAILABLE and a history the next request accepts", async () => {
  const s = connect(remote);
  try {
    await ready(s);
    const before = fake.requests.length;
    const deltas = collect(s, "agent:delta");
    const failed = once(s, "agent:error", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "count");
    const e = await failed;
    assert.equal(e.code, "LLM_UNAVAILABLE", JSON.stringify(e));
    assert.equal(e.turnId, ack.turnId);
    assert.equal(deltas.map((d) => d.text).join(""), "a b ");
    assert.equal(fake.requests.length, before + 1, "text was shown: no retry");
    const response = once(s, "agent:response", 30000);
    await s.timeout(5000).emitWithAck("message", "again");
    assert.equal(await response, "recovered");
    const msgs = fake.requests[before + 1].body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assert.equal(msgs[2].content, "a b \n\n[interrupted: LLM_UNAVAILABLE]");
  } finally {
    s.disconnect();
  }
});
