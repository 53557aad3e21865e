// History that loses nothing (issue 14 item 5) through the real gateway: what the client is sent
// during a turn is already in Redis when it arrives, and a history write Redis refuses is told
// (agent:error HISTORY_NOT_SAVED) before the events it held back, the turn going on. Real Redis,
// dockerd, the sandbox image, the embedded local model.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once } from "../support/berth.mjs";

let redis;
let berth;

before(async () => {
  redis = await startRedis();
  berth = await startBerth({ REDIS_URL: redis.url, POOL_MIN_SIZE: "1", TOOL_TIMEOUT_MS: "60000" });
});

after(async () => {
  await berth?.stop();
  await redis?.stop();
});

function redisCli(...args) {
  return execFileSync("redis-cli", ["-p", String(redis.port), "--raw", ...args]).toString();
}

// The stored history, read at once (synchronously, inside the event handler that calls it).
function stored(sid) {
  const out = redisCli("LRANGE", `berth:history:{${sid}}`, "0", "-1");
  return out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

test("tool:output and agent:response are in Redis when the client gets them", async () => {
  const s = io(berth.url, { transports: ["websocket"], reconnection: false });
  try {
    const r = await once(s, "system:ready", 60000);
    const seen = [];
    s.on("tool:approval_required", (q) => s.emit("tool:approval", { callId: q.callId, approved: true }));
    s.on("tool:output", (o) => {
      const h = stored(r.sessionId);
      seen.push(["tool:output", h.some((e) => e.role === "tool" && e.callId === o.callId)]);
    });
    const response = new Promise((resolve) => s.once("agent:response", (text) => {
      const h = stored(r.sessionId);
      seen.push(["agent:response", h.length > 0 && h[h.length - 1].role === "assistant" && h[h.length - 1].content === text]);
      resolve(text);
    }));
    const ack = await s.timeout(10000).emitWithAck("message", "List all files in /workspace");
    assert.equal(ack.ok, true);
    await Promise.race([response, once(s, "agent:error", 30000).then((e) => assert.fail(JSON.stringify(e)))]);
    assert.deepEqual(seen, [["tool:output", true], ["agent:response", true]]);
  } finally {
    s.disconnect();
  }
});

test("a history write Redis refuses is told before the events it held back; the turn goes on", async () => {
  const s = io(berth.url, { transports: ["websocket"], reconnection: false });
  try {
    const r = await once(s, "system:ready", 60000);
    // The history key holds a string: every RPUSH to it fails (WRONGTYPE), nothing else does.
    redisCli("SET", `berth:history:{${r.sessionId}}`, "not a list");
    const order = [];
    s.on("agent:error", (e) => order.push(e.code));
    s.on("agent:thinking", () => order.push("thinking"));
    const response = once(s, "agent:response", 30000);
    const ack = await s.timeout(10000).emitWithAck("message", "hello");
    assert.equal(ack.ok, true);
    await response;
    order.push("response");
    // The user message's write failed before agent:thinking was sent; the answer's before agent:response.
    assert.deepEqual(order, ["HISTORY_NOT_SAVED", "thinking", "HISTORY_NOT_SAVED", "response"]);
    const body = await (await fetch(`${berth.url}/metrics`)).text();
    const line = body.split("\n").find((l) => l.startsWith("berth_history_write_failures_total "));
    assert.ok(line && Number(line.split(" ")[1]) >= 2, line);
  } finally {
    s.disconnect();
  }
});
