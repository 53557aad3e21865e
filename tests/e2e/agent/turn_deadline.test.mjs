// The turn deadline (TURN_DEADLINE_MS, issue 14 item 5) through the real gateway: a provider that
// never answers, and a tool that runs on past the deadline, end with agent:error TURN_TIMEOUT,
// the provider's connection closed / the tool killed in the container, the limiter slot freed
// (MAX_REQUESTS_PER_USER=1: the next message gets in only if it was), and a history the next
// request sends whole. Time awaiting an approval does not count. Real Redis, dockerd, the sandbox
// image; the embedded local model, and a fake OpenAI server (tests/e2e/support/fake-openai.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { io } from "socket.io-client";
import { startBerth, startRedis, once, until, metric, processes } from "../support/berth.mjs";
import { startFakeOpenAI } from "../support/fake-openai.mjs";

const deadlineMs = 4000;
let redis;
let fake;
let remote; // LLM_PROVIDER=openai against the fake
let local;  // LLM_PROVIDER=local: tool calls

before(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI([{ hang: true }, { pieces: ["after ", "the ", "deadline"] }]);
  remote = await startBerth({
    REDIS_URL: redis.url,
    LLM_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_API_KEY: "sk-fake-e2e",
    POOL_MIN_SIZE: "1",
    MAX_REQUESTS_PER_USER: "1",
    TURN_DEADLINE_MS: String(deadlineMs),
  });
  local = await startBerth({
    REDIS_URL: redis.url,
    POOL_MIN_SIZE: "1",
    MAX_REQUESTS_PER_USER: "2",
    TOOL_TIMEOUT_MS: "60000",
    TURN_DEADLINE_MS: String(deadlineMs),
  });
});

after(async () => {
  await remote?.stop();
  await local?.stop();
  await fake?.stop();
  await redis?.stop();
});

function connect(berth, opts = {}) {
  return io(berth.url, { transports: ["websocket"], reconnection: false, ...opts });
}

test("a provider that never answers: TURN_TIMEOUT, the request closed, the slot freed, a whole history", async () => {
  const s = connect(remote);
  try {
    await once(s, "system:ready", 60000);
    const failed = once(s, "agent:error", deadlineMs + 15000);
    const t0 = Date.now();
    const ack = await s.timeout(10000).emitWithAck("message", "hello?");
    assert.equal(ack.ok, true);
    const e = await failed;
    const took = Date.now() - t0;
    assert.equal(e.code, "TURN_TIMEOUT", JSON.stringify(e));
    assert.equal(e.turnId, ack.turnId);
    assert.match(e.message, /TURN_DEADLINE_MS.*waiting for the model/);
    assert.ok(took >= deadlineMs - 100, `not before the deadline (${took} ms)`);
    await until(() => fake.requests[0]?.closedEarly, 5000, "the provider connection to close");
    assert.equal(await metric(remote, "berth_agent_turn_deadline_exceeded_total"), 1);

    // MAX_REQUESTS_PER_USER=1: this gets in only if the stopped turn gave its slot back.
    const response = once(s, "agent:response", 30000);
    const next = await s.timeout(10000).emitWithAck("message", "and now?");
    assert.equal(next.ok, true, JSON.stringify(next));
    assert.equal(await response, "after the deadline");
    const msgs = fake.requests[1].body.messages;
    assert.deepEqual(msgs.map((m) => m.role), ["system", "user", "assistant", "user"]);
    assert.equal(msgs[2].content, "[stopped: the turn ran past its time limit]");
  } finally {
    s.disconnect();
  }
});

test("waiting for an approval does not count; a tool past the deadline is killed with TURN_TIMEOUT", async () => {
  const s = connect(local);
  let resumeAs;
  try {
    const r = await once(s, "system:ready", 60000);
    resumeAs = { query: { sessionId: r.sessionId }, auth: { resumeToken: r.resumeToken } };
    const errors = [];
    s.on("agent:error", (e) => errors.push(e));
    const pending = once(s, "tool:approval_required", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "run `sleep 33`");
    const call = await pending;
    // The user thinks longer than the whole deadline: the clock is paused meanwhile. (A bounded
    // wait for something that must NOT happen; there is no event to wait on instead.)
    await new Promise((res) => setTimeout(res, deadlineMs + 1000));
    assert.deepEqual(errors, [], "no TURN_TIMEOUT while awaiting the approval");

    const failed = once(s, "agent:error", deadlineMs + 15000);
    s.emit("tool:approval", { callId: call.callId, approved: true });
    await until(() => processes(r.containerId, "^sleep 3[3]") > 0, 15000, "sleep 33 to run in the container");
    const e = await failed;
    assert.equal(e.code, "TURN_TIMEOUT", JSON.stringify(e));
    assert.equal(e.turnId, ack.turnId);
    assert.match(e.message, /running tool run_command/);
    await until(() => processes(r.containerId, "^sleep 3[3]") === 0, 5000, "sleep 33 to be killed");

    // Both slots (the message and its approval step) are free again.
    s.on("tool:approval_required", (q) => s.emit("tool:approval", { callId: q.callId, approved: true }));
    const response = once(s, "agent:response", 30000);
    const next = await s.timeout(10000).emitWithAck("message", "List all files in /workspace");
    assert.equal(next.ok, true, JSON.stringify(next));
    await response;
  } finally {
    s.disconnect();
  }
  const back = connect(local, resumeAs);
  try {
    const h = (await once(back, "system:ready", 60000)).history;
    assert.ok(h.some((x) => x.role === "tool" && x.content.includes("ran past its time limit while this tool call was running")),
      JSON.stringify(h));
    assert.ok(h.some((x) => x.role === "assistant" && x.content.includes("[stopped: the turn ran past its time limit]")),
      JSON.stringify(h));
  } finally {
    back.disconnect();
  }
});
