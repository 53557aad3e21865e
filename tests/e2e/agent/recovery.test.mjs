// Connection state recovery (issue 16 item 3) with the official socket.io-client, both
// transports: a socket that loses its connection in the middle of a streaming answer or of a
// running tool comes back on the other replica (two berths on one real Redis) with the same id,
// `recovered: true`, and every event it missed exactly once, in order; then the session goes on
// there. An unknown pid, an expired state and a state over the per-socket cap are new
// connections. Real Redis, dockerd, the sandbox image; the local model, and the fake OpenAI
// server (tests/e2e/support/fake-openai.mjs) for a slow stream.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once } from "../support/berth.mjs";
import { startFakeOpenAI } from "../support/fake-openai.mjs";

let redis, fake;
let a, b;     // openai replicas (the slow stream)
let la, lb;   // local-model replicas (the tool turn)
let small;    // RECOVERY_MAX_PACKETS=2, a 4 s window

const story = Array.from({ length: 40 }, (_, i) => `w${i} `);
before(async () => {
  redis = await startRedis();
  fake = await startFakeOpenAI([{ pieces: story, gapMs: 30 }]);
  const openai = { REDIS_URL: redis.url, LLM_PROVIDER: "openai", OPENAI_BASE_URL: fake.baseUrl, OPENAI_API_KEY: "sk-fake-e2e",
                   POOL_MIN_SIZE: "1", STREAM_DELTA_INTERVAL_MS: "0" };
  [a, b, la, lb, small] = await Promise.all([
    startBerth(openai),
    startBerth(openai),
    startBerth({ REDIS_URL: redis.url, POOL_MIN_SIZE: "1" }),
    startBerth({ REDIS_URL: redis.url, POOL_MIN_SIZE: "1" }),
    startBerth({ ...openai, RECOVERY_MAX_PACKETS: "2", RECOVERY_MAX_DISCONNECTION_MS: "4000" }),
  ]);
});

after(async () => {
  await Promise.all([a, b, la, lb, small].map((x) => x?.stop()));
  await fake?.stop();
  await redis?.stop();
});

// The reconnect waits 300 ms: the old replica must have seen the connection go (and reserved the
// pid in Redis) first, or the reconnect is a new connection, as documented.
function connect(berth, transport, opts = {}) {
  return io(berth.url, { transports: [transport], reconnectionDelay: 300, reconnectionDelayMax: 300,
                         randomizationFactor: 0, ...opts });
}

// Every event as the client's listeners saw it, the offset (the last argument) stripped.
function record(socket) {
  const seen = [];
  socket.onAny((event, ...args) => {
    const offset = args.at(-1);
    seen.push({ event, payload: args[0], offset });
  });
  return seen;
}

async function until(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out (${timeoutMs} ms) waiting for ${what}`);
}

async function metric(berth, name) {
  const text = await (await fetch(`${berth.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : 0;
}

// Drops the connection under the socket (the server sees "transport close") and lets the
// manager reconnect to `to`: the next replica behind a load balancer.
async function moveTo(socket, to) {
  socket.io.uri = to.url;
  const back = once(socket, "connect", 20000);
  socket.io.engine.close();
  await back;
}

// Processes in the container whose command line matches `pattern` (written not to match itself).
function processes(container, pattern) {
  const cmd = `for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -cE '${pattern}' || true`;
  return Number(execFileSync("docker", ["exec", container, "/bin/sh", "-c", cmd]).toString().trim());
}

function assertWholeStream(seen, turnId, response, { endsWith = false } = {}) {
  const deltas = seen.filter((e) => e.event === "agent:delta").map((e) => e.payload);
  assert.ok(deltas.length >= 2, `several deltas: ${JSON.stringify(deltas)}`);
  deltas.forEach((d, i) => {
    assert.equal(d.turnId, turnId);
    assert.equal(d.index, i, `delta ${i} exactly once and in order: ${deltas.map((x) => x.index).join(",")}`);
  });
  const spelt = deltas.map((d) => d.text).join("");
  if (endsWith) assert.ok(spelt.endsWith(response), `the deltas end with the answer: ${spelt}`);
  else assert.equal(spelt, response, "the deltas spell the answer");
  assert.equal(seen.filter((e) => e.event === "agent:response").length, 1, "one agent:response");
  const offsets = seen.map((e) => Number(e.offset));
  offsets.forEach((o, i) => i && assert.ok(o > offsets[i - 1], `offsets increase: ${offsets.join(",")}`));
}

for (const transport of ["websocket", "polling"]) {
  test(`${transport}: a streaming answer cut mid-way arrives whole on the other replica`, async () => {
    const s = connect(a, transport);
    try {
      await once(s, "system:ready", 60000);
      const seen = record(s);
      const id = s.id;
      const before = await metric(b, "berth_socketio_recovered_total");
      const ack = await s.timeout(10000).emitWithAck("message", "tell me a story");
      assert.equal(ack.ok, true);
      await until(() => seen.filter((e) => e.event === "agent:delta").length >= 3, 15000, "three deltas");
      const response = once(s, "agent:response", 30000);
      await moveTo(s, b);
      assert.equal(s.recovered, true, "recovered");
      assert.equal(s.id, id, "the same socket id");
      assertWholeStream(seen, ack.turnId, await response);
      assert.equal(await metric(b, "berth_socketio_recovered_total"), before + 1, "replica b recovered it");
      assert.ok(!seen.some((e) => e.event === "system:ready"), "no second system:ready");

      // The session goes on on b, with the whole first turn in its history.
      const next = once(s, "agent:response", 30000);
      assert.equal((await s.timeout(10000).emitWithAck("message", "again")).ok, true);
      await next;
      const msgs = fake.requests.at(-1).body.messages;
      assert.ok(msgs.some((m) => m.role === "assistant" && m.content === story.join("")), JSON.stringify(msgs));
    } finally {
      s.disconnect();
    }
  });

  test(`${transport}: a tool turn cut while the tool runs arrives whole on the other replica`, async () => {
    const s = connect(la, transport);
    try {
      const ready = await once(s, "system:ready", 60000);
      const seen = record(s);
      const id = s.id;
      const approval = once(s, "tool:approval_required", 30000);
      const ack = await s.timeout(10000).emitWithAck("message", "run `sleep 3; echo slept`");
      const call = await approval;
      s.emit("tool:approval", { callId: call.callId, approved: true });
      await until(() => processes(ready.containerId, "^sleep [3]") > 0, 15000, "sleep 3 to run in the container");
      const response = once(s, "agent:response", 30000);
      await moveTo(s, lb);
      assert.equal(s.recovered, true);
      assert.equal(s.id, id);
      const text = await response;
      const outputs = seen.filter((e) => e.event === "tool:output").map((e) => e.payload);
      assert.equal(outputs.length, 1, JSON.stringify(seen.map((e) => e.event)));
      assert.equal(outputs[0].callId, call.callId);
      assert.match(JSON.stringify(outputs[0]), /slept/);
      assertWholeStream(seen, ack.turnId, text, { endsWith: true });
      // The same container, taken over without provisioning: the next tool runs where the first did.
      const again = once(s, "agent:response", 30000);
      s.on("tool:approval_required", (q) => s.emit("tool:approval", { callId: q.callId, approved: true }));
      assert.equal((await s.timeout(10000).emitWithAck("message", "run `cat /proc/sys/kernel/hostname`")).ok, true);
      await again;
      const last = seen.filter((e) => e.event === "tool:output").at(-1).payload;
      assert.match(last.content, new RegExp(ready.containerId.slice(0, 12)), JSON.stringify(last));
      assert.ok(!seen.some((e) => e.event === "system:ready"), "no second system:ready");
    } finally {
      s.disconnect();
    }
  });
}

test("an unknown pid is a new connection (recovered false, a new id, system:ready)", async () => {
  const s = connect(a, "websocket");
  try {
    await once(s, "system:ready", 60000);
    const id = s.id;
    s._pid = "AAAAAAAAAAAAAAAAAAAA"; // a pid no replica issued
    const ready = once(s, "system:ready", 60000);
    await moveTo(s, b);
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
    await ready;
  } finally {
    s.disconnect();
  }
});

test("a state older than RECOVERY_MAX_DISCONNECTION_MS is a new connection", async () => {
  const s = connect(small, "websocket", { reconnectionDelay: 5000, reconnectionDelayMax: 5000 });
  try {
    await once(s, "system:ready", 60000);
    const id = s.id;
    const ready = once(s, "system:ready", 60000);
    await moveTo(s, small); // back only after 5 s: the 4 s window is over
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
    await ready;
  } finally {
    s.disconnect();
  }
});

test("more missed events than RECOVERY_MAX_PACKETS is a new connection (the offset is too old)", async () => {
  const s = connect(small, "websocket");
  try {
    await once(s, "system:ready", 60000);
    const seen = record(s);
    const id = s.id;
    await s.timeout(10000).emitWithAck("message", "tell me a story");
    await until(() => seen.filter((e) => e.event === "agent:delta").length >= 3, 15000, "three deltas");
    const missedBefore = await metric(small, "berth_socketio_recovery_missed_total");
    const ready = once(s, "system:ready", 60000);
    await moveTo(s, small);
    assert.equal(s.recovered, false);
    assert.notEqual(s.id, id);
    await ready;
    assert.equal(await metric(small, "berth_socketio_recovery_missed_total"), missedBefore + 1);
  } finally {
    s.disconnect();
  }
});
