// Extra MCP servers from MCP_CONFIG_FILE through the whole flow: socket.io-client -> berth ->
// real Redis, real dockerd and, next to the sandbox, two real streamable-HTTP MCP servers (the
// official SDK; one answers with SSE, one with JSON), a second stdio server exec'd in the user's
// container, an unreachable server and a disabled one. Clashing tool names are namespaced and
// every call reaches its own server (approval -> tool:output).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { io } from "socket.io-client";
import { spawnSync } from "node:child_process";
import { startBerth, startRedis, once, freePort, buildDir } from "../support/berth.mjs";
import { startMcpHttpServer } from "../support/mcp-http-server.mjs";

const secret = "Bearer e2e-secret-token-5f3a";
let redis, berth, sse, json, dir;

before(async () => {
  redis = await startRedis();
  sse = await startMcpHttpServer();
  json = await startMcpHttpServer({ jsonResponse: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "berth-mcp-e2e-"));
  const closedPort = await freePort();  // nothing listens there
  fs.writeFileSync(path.join(dir, "mcp-config.json"), JSON.stringify({
    mcpServers: {
      remote: { transport: "http", url: sse.url, headers: { Authorization: secret } },
      remotejson: { transport: "http", url: json.url },
      shell: { transport: "stdio-docker", command: ["/usr/local/bin/berth-sandbox", "mcp"] },
      down: { transport: "http", url: `http://127.0.0.1:${closedPort}/mcp` },
      off: { transport: "http", url: "http://127.0.0.1:1/mcp", enabled: false },
    },
  }));
  berth = await startBerth({ REDIS_URL: redis.url, TOOL_TIMEOUT_MS: "5000", MCP_CONFIG_FILE: path.join(dir, "mcp-config.json") });
});

after(async () => {
  await berth?.stop();
  await sse?.close();
  await json?.close();
  await redis?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// Sends a message, approves the proposed call, returns the approval and the tool:output.
async function callThrough(socket, text) {
  const approval = once(socket, "tool:approval_required", 15000);
  const output = once(socket, "tool:output", 15000);
  const response = once(socket, "agent:response", 30000);
  const ack = await socket.timeout(10000).emitWithAck("message", text);
  assert.equal(ack.ok, true, JSON.stringify(ack));
  assert.match(ack.turnId, /^t.+-\d+$/);
  const req = await approval;
  socket.emit("tool:approval", { callId: req.callId, approved: true });
  const out = await output;
  await response;
  return { req, out };
}

test("tools of every reachable server are merged, namespaced on clashes and routed to their server", async () => {
  const s = io(berth.url, { transports: ["websocket"], reconnection: false });
  try {
    const ready = await once(s, "system:ready", 60000);
    assert.ok(ready.containerId);

    // remote's read_file clashes with the sandbox's: exposed as remote__read_file, sent as read_file.
    const a = await callThrough(s, 'call remote__read_file with {"path": "notes.md"}');
    assert.equal(a.req.name, "remote__read_file");
    assert.equal(a.out.callId, a.req.callId);
    assert.equal(a.out.isError, false, JSON.stringify(a.out));
    assert.equal(a.out.content, "remote file notes.md");

    // echo: remote (first by name) keeps the plain name; remotejson's becomes remotejson__echo.
    const b = await callThrough(s, 'call echo with {"text": "over sse"}');
    assert.equal(b.out.content, "echo: over sse");
    const c = await callThrough(s, 'call remotejson__echo with {"text": "over json"}');
    assert.equal(c.req.name, "remotejson__echo");
    assert.equal(c.out.content, "echo: over json");

    // The stdio-docker server runs in this user's container: it sees the sandbox's files.
    await callThrough(s, "write from the sandbox to shared.txt");
    const d = await callThrough(s, 'call shell__list_files with {"path": "/workspace"}');
    assert.equal(d.req.name, "shell__list_files");
    assert.match(d.out.content, /shared\.txt/);
  } finally {
    s.disconnect();
  }

  // Streamable HTTP: the operator's header on every request; session id and protocol version after initialize.
  const posts = sse.requests.filter((r) => r.method === "POST");
  assert.ok(posts.length >= 4, `${posts.length} POSTs`);
  assert.ok(posts.every((r) => r.headers.authorization === secret));
  assert.ok(posts.every((r) => /application\/json/.test(r.headers.accept) && /text\/event-stream/.test(r.headers.accept)));
  assert.equal(posts[0].headers["mcp-session-id"], undefined);
  for (const r of posts.slice(1)) {
    assert.ok(r.headers["mcp-session-id"], JSON.stringify(r.headers));
    assert.equal(r.headers["mcp-protocol-version"], "2025-06-18");
  }

  // The unreachable server: a log line and a counter; the disabled one is never contacted; no secret in the logs.
  assert.match(berth.logs(), /mcp server 'down' unavailable/);
  assert.doesNotMatch(berth.logs(), /mcp server 'off' unavailable/);
  assert.ok(!berth.logs().includes("e2e-secret-token"), "a header value reached the logs");
  const metrics = await (await fetch(`${berth.url}/metrics`)).text();
  assert.match(metrics, /berth_mcp_servers_unavailable_total [1-9]/);
});

test("an invalid mcp-config.json stops start-up naming the file and the field", () => {
  const bad = path.join(dir, "bad.json");
  fs.writeFileSync(bad, JSON.stringify({ mcpServers: { gh: { transport: "http", url: "ftp://example" } } }));
  const r = spawnSync(path.join(buildDir, "src/app/berth"), [], {
    cwd: dir,
    env: { ...process.env, PORT: "0", HOST: "127.0.0.1", REDIS_URL: redis.url, MCP_CONFIG_FILE: bad },
    timeout: 20000,
    encoding: "utf8",
  });
  assert.notEqual(r.status, 0);
  const out = r.stdout + r.stderr;
  assert.ok(out.includes(`MCP_CONFIG_FILE=${bad}: mcp-config: mcpServers.gh.url: expected an http`), out);
});
