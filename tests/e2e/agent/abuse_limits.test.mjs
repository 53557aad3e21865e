// Abuse limits of issue 14 (item 2) through the real gateway, with socket.io-client, real Redis,
// dockerd and the sandbox image:
//   - USER_EVENTS_PER_SECOND: a user's sockets share one budget (two sockets of one JWT subject
//     get no more than one would); another user is not affected;
//   - LLM_TOKENS_PER_USER_PER_MINUTE: the provider's reported usage is counted in Redis and the
//     next LLM request past the budget ends its turn with RATE_LIMITED + retryAfterMs, without
//     reaching the provider (a fake OpenAI server that reports the usage it is told to);
//   - MAX_TOOL_OUTPUT_BYTES: a command's large output is cut before the client, the history and
//     the model see it, and the cut is said (truncated, totalBytes, the note).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once, until, metric } from "../support/berth.mjs";
import { startFakeOpenAI } from "../support/fake-openai.mjs";

const secret = "e2e-abuse-limits-secret-32-bytes-" + process.pid;
let redis;
let fake;
const berths = [];

before(async () => {
  redis = await startRedis();
});

after(async () => {
  for (const b of berths) await b.stop();
  await fake?.stop();
  await redis?.stop();
});

async function berth(env) {
  const b = await startBerth({ REDIS_URL: redis.url, ...env });
  berths.push(b);
  return b;
}

function jwt(sub) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(Date.now() / 1000) + 3600 })}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

function connect(b, opts = {}) {
  return io(b.url, { transports: ["websocket"], reconnection: false, ...opts });
}

test("USER_EVENTS_PER_SECOND: a user's sockets share one budget, other users keep theirs", async () => {
  const b = await berth({
    AUTH_JWT_SECRET: secret,
    POOL_MIN_SIZE: "3",
    SOCKET_EVENTS_PER_SECOND: "1000",
    SOCKET_EVENT_BURST: "1000",
    USER_EVENTS_PER_SECOND: "1",
    USER_EVENT_BURST: "6",
  });
  const m1 = connect(b, { auth: { token: jwt("mallory") } });
  const m2 = connect(b, { auth: { token: jwt("mallory") } });
  const alice = connect(b, { auth: { token: jwt("alice") } });
  try {
    await Promise.all([m1, m2, alice].map((s) => once(s, "system:ready", 60000)));
    // 12 events over two sockets, each far under its socket's budget: the user's burst of 6 lets
    // 6 through (to the gateway, which answers an unknown event INVALID_PAYLOAD), the rest are
    // refused (at 1/s, at most one more token can come during the run; allow for it).
    const acks = [];
    for (let i = 0; i < 12; i++) acks.push(await (i % 2 ? m2 : m1).timeout(10000).emitWithAck("probe", i));
    const through = acks.filter((a) => a.code === "INVALID_PAYLOAD").length;
    const limited = acks.filter((a) => a.code === "RATE_LIMITED");
    assert.equal(through + limited.length, 12, JSON.stringify(acks));
    assert.ok(through >= 6 && through <= 7, `the burst went through (${through})`);
    for (const a of limited) {
      assert.equal(a.ok, false);
      assert.match(a.message, /this user/);
      assert.ok(a.retryAfterMs > 0 && a.retryAfterMs <= 1000, JSON.stringify(a));
    }
    // Both of mallory's sockets were refused: the budget is the user's, not a socket's.
    assert.ok(acks.some((a, i) => i % 2 === 0 && a.code === "RATE_LIMITED"));
    assert.ok(acks.some((a, i) => i % 2 === 1 && a.code === "RATE_LIMITED"));
    const other = await alice.timeout(10000).emitWithAck("probe", 0);
    assert.equal(other.code, "INVALID_PAYLOAD", "another user keeps their own budget");
    assert.equal(await metric(b, "berth_gateway_user_events_rate_limited_total"), limited.length);
    assert.equal(await metric(b, "berth_socketio_events_rate_limited_total"), 0, "no socket was over its own budget");
  } finally {
    for (const s of [m1, m2, alice]) s.disconnect();
  }
});

test("LLM_TOKENS_PER_USER_PER_MINUTE: past the budget a turn ends with RATE_LIMITED before the provider is asked", async () => {
  fake = await startFakeOpenAI([{ pieces: ["first ", "answer"], usage: { prompt_tokens: 900, completion_tokens: 200 } }]);
  const b = await berth({
    LLM_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_API_KEY: "sk-fake-e2e",
    POOL_MIN_SIZE: "1",
    LLM_TOKENS_PER_USER_PER_MINUTE: "1000",
  });
  // The budget is per clock minute: start well inside one, so both messages fall in it.
  const intoMinute = Date.now() % 60000;
  if (intoMinute > 40000) await new Promise((r) => setTimeout(r, 60000 - intoMinute + 200));
  const s = connect(b);
  try {
    const ready = await once(s, "system:ready", 60000);
    const response = once(s, "agent:response", 30000);
    assert.equal((await s.timeout(10000).emitWithAck("message", "hello")).ok, true);
    assert.equal(await response, "first answer");
    // Counted once the reply is in (in the background: the answer does not wait for Redis).
    await until(async () => (await metric(b, "berth_llm_tokens_total")) === 1100, 10000, "the reply's tokens to be counted");
    const refused = once(s, "agent:error", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "and again");
    assert.equal(ack.ok, true, "the message is taken; its turn is what the budget ends");
    const e = await refused;
    assert.equal(e.code, "RATE_LIMITED", JSON.stringify(e));
    assert.equal(e.turnId, ack.turnId);
    assert.match(e.message, /1000 tokens per minute/);
    assert.ok(e.retryAfterMs > 0 && e.retryAfterMs <= 60000, JSON.stringify(e));
    assert.equal(fake.requests.length, 1, "the refused turn never reached the provider");
    assert.equal(await metric(b, "berth_llm_token_budget_refusals_total"), 1);
    // The count lives in Redis (every replica reads it), under the session's user.
    const keys = execFileSync("redis-cli", ["-p", String(redis.port), "--raw", "KEYS", "berth:llm-tokens:*"]).toString();
    assert.match(keys, new RegExp(`berth:llm-tokens:\\{${ready.sessionId}\\}:\\d+`));
  } finally {
    s.disconnect();
  }
});

test("MAX_TOOL_OUTPUT_BYTES: a large output is cut for the client, the history and the model, and says so", async () => {
  const b = await berth({ POOL_MIN_SIZE: "1", MAX_TOOL_OUTPUT_BYTES: "2048" });
  const s = connect(b);
  try {
    const ready = await once(s, "system:ready", 60000);
    const asked = once(s, "tool:approval_required", 30000);
    assert.equal((await s.timeout(10000).emitWithAck("message", "run `head -c 50000 /dev/zero | tr '\\0' y`")).ok, true);
    const call = await asked;
    assert.equal(call.name, "run_command");
    const output = once(s, "tool:output", 30000);
    const response = once(s, "agent:response", 30000);
    await s.timeout(10000).emitWithAck("tool:approval", { callId: call.callId, approved: true });
    const out = await output;
    assert.equal(out.truncated, true, JSON.stringify({ ...out, content: out.content.length }));
    assert.ok(out.totalBytes >= 50000, `totalBytes ${out.totalBytes}`);
    assert.ok(Buffer.byteLength(out.content) < 2048 + 200, `content ${Buffer.byteLength(out.content)} bytes`);
    assert.match(out.content, /\[output cut: the first \d+ of \d+ bytes are shown \(MAX_TOOL_OUTPUT_BYTES\)\]$/);
    await response;
    // What Redis keeps for the model's next request is the cut text, never the whole output.
    const history = execFileSync("redis-cli", ["-p", String(redis.port), "--raw", "LRANGE", `berth:history:{${ready.sessionId}}`, "0", "-1"])
      .toString();
    assert.match(history, /output cut: the first/);
    assert.ok(!history.includes("y".repeat(4096)), "no whole output in the history");
  } finally {
    s.disconnect();
  }
});
