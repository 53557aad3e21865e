// The Docker daemon going away and coming back, against the real dockerd: berth reaches it through
// a unix-socket relay this test owns, so "the daemon is down" is a closed socket and every
// connection to it reset, exactly what a stopped dockerd looks like to a client.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { mkdtempSync, rmSync } from "node:fs";
import { io } from "socket.io-client";
import { startBerth, startRedis, once } from "../support/berth.mjs";

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

// A relay from PATH to the real daemon socket; down() closes it and resets every open stream.
async function dockerRelay() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-docker-relay-"));
  const socketPath = path.join(dir, "docker.sock");
  const upstream = (process.env.DOCKER_HOST || "unix:///var/run/docker.sock").replace(/^unix:\/\//, "");
  const open = new Set();
  let server;
  const up = () =>
    new Promise((resolve, reject) => {
      server = net.createServer((client) => {
        const daemon = net.connect(upstream);
        open.add(client).add(daemon);
        const drop = () => {
          client.destroy();
          daemon.destroy();
          open.delete(client);
          open.delete(daemon);
        };
        client.on("error", drop).on("close", drop);
        daemon.on("error", drop).on("close", drop);
        client.pipe(daemon);
        daemon.pipe(client);
      });
      server.once("error", reject);
      server.listen(socketPath, resolve);
    });
  const down = () =>
    new Promise((resolve) => {
      for (const s of open) {
        // resetAndDestroy() (RST) exists for TCP only; Node 20 throws ERR_INVALID_HANDLE_TYPE on a unix socket.
        try { s.resetAndDestroy(); } catch { s.destroy(); }
      }
      open.clear();
      server.close(resolve); // also unlinks the socket file: a connect now fails with ENOENT
    });
  await up();
  return { url: `unix://${socketPath}`, up, down, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

async function health(url) {
  const r = await fetch(`${url}/health`);
  return { status: r.status, body: await r.json() };
}

// Polls /health until pred holds (bounded); returns the last answer.
async function healthUntil(url, pred, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let h;
  do {
    h = await health(url);
    if (pred(h)) return h;
    await new Promise((r) => setTimeout(r, 100));
  } while (Date.now() < deadline);
  return h;
}

// One tool call end to end; resolves with the tool:output or the agent:error that ended the turn.
async function listFiles(socket) {
  const onApproval = (req) => socket.emit("tool:approval", { callId: req.callId, approved: true });
  socket.on("tool:approval_required", onApproval);
  try {
    await socket.timeout(10000).emitWithAck("message", "List all files in /workspace");
    return await Promise.race([
      once(socket, "tool:output", 30000).then((o) => ({ output: o })),
      once(socket, "agent:error", 30000).then((e) => ({ error: e })),
    ]);
  } finally {
    socket.off("tool:approval_required", onApproval);
  }
}

test("/health answers 503 while the Docker daemon is down, the session fails clearly, and both recover", async () => {
  const relay = await dockerRelay();
  const redis = await startRedis();
  const berth = await startBerth({ REDIS_URL: redis.url, DOCKER_HOST: relay.url });
  cleanups.push(async () => {
    await berth.stop();
    await redis.stop();
    relay.remove();
  });

  const before = await health(berth.url);
  assert.equal(before.status, 200, JSON.stringify(before.body));
  assert.equal(before.body.docker.ok, true);
  assert.match(before.body.docker.apiVersion, /^1\.\d+$/);

  const socket = io(berth.url, { transports: ["websocket"], reconnection: false });
  cleanups.push(async () => socket.disconnect());
  await once(socket, "system:ready", 60000);
  const first = await listFiles(socket);
  assert.ok(first.output && !first.output.isError, JSON.stringify(first));

  await relay.down();
  const down = await health(berth.url);
  assert.equal(down.status, 503, JSON.stringify(down.body));
  assert.equal(down.body.status, "degraded");
  assert.equal(down.body.docker.ok, false);
  assert.ok(down.body.docker.error.length > 0, "the reason is given");
  assert.equal(down.body.redis.ok, true, "only Docker is reported down");
  assert.equal((await fetch(`${berth.url}/health/live`)).status, 200, "the process itself is alive");
  assert.equal((await fetch(`${berth.url}/stats/pool`)).status, 200, "the pool still reports");

  // A tool call while the daemon is away fails with a clear error, and the socket stays up.
  const failed = await listFiles(socket);
  if (failed.output) {
    assert.equal(failed.output.isError, true, JSON.stringify(failed));
    assert.ok(failed.output.content.length > 0);
  } else {
    assert.match(failed.error.code, /^(SANDBOX_UNAVAILABLE|TOOL_FAILED|INTERNAL)$/, JSON.stringify(failed));
    assert.ok(failed.error.message.length > 0);
  }
  assert.equal(socket.connected, true);

  await relay.up();
  const back = await healthUntil(berth.url, (h) => h.status === 200);
  assert.equal(back.status, 200, JSON.stringify(back.body));
  assert.equal(back.body.docker.ok, true);
  // The MCP exec that died with the daemon connection is restarted: the same session works again.
  const again = await listFiles(socket);
  assert.ok(again.output && !again.output.isError, JSON.stringify(again));
  assert.ok((await fetch(`${berth.url}/health/ready`)).status === 200);
});

test("berth started without a Docker socket serves, reports 503 with the cause, and refuses sessions clearly", async () => {
  const redis = await startRedis();
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-no-docker-"));
  const missing = path.join(dir, "docker.sock");
  cleanups.push(async () => {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const berth = await startBerth({ REDIS_URL: redis.url, DOCKER_HOST: `unix://${missing}`, ACQUIRE_TIMEOUT_MS: "5000" }, { waitFor: "/health/live" });
  cleanups.push(async () => berth.stop());

  const h = await health(berth.url);
  assert.equal(h.status, 503);
  assert.equal(h.body.docker.ok, false);
  assert.ok(h.body.docker.error.includes(missing), `the error names the socket: ${h.body.docker.error}`);
  assert.equal((await fetch(`${berth.url}/health/ready`)).status, 503);

  const socket = io(berth.url, { transports: ["websocket"], reconnection: false });
  cleanups.push(async () => socket.disconnect());
  const outcome = await Promise.race([
    once(socket, "connect_error", 30000).then((e) => ({ code: e.data?.code, message: e.message })),
    once(socket, "agent:error", 30000).then((e) => ({ code: e.code, message: e.message })),
  ]);
  assert.match(outcome.code, /^(SANDBOX_UNAVAILABLE|POOL_EXHAUSTED)$/, JSON.stringify(outcome));
  assert.ok(outcome.message.length > 0);
  assert.equal((await fetch(`${berth.url}/health/live`)).status, 200, "still serving after the refusal");
  const logs = berth.logs();
  assert.ok(!/\bSegmentation\b|terminate called/.test(logs), "no crash");
});
