// Development aid only: a small stand-in for Berth that serves web/ and speaks Berth's wire protocol
// (docs: /work/shared/design/PROTOCOL.md) with scripted, deterministic behaviour modelled on the
// embedded `local` LLM provider and the sandbox tools. The browser tests run against the real
// berth binary through BERTH_URL; this server lets them run before (and without) it.
//
//   node tests/e2e/browser/dev-server.mjs [--port 3000] [--pool-max 20] [--max-requests 5]
//
// Exported: startDevServer({port, host, poolMax, maxRequests, thinkMs}) -> {url, close(), state}
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import crypto from "node:crypto";
import { fileURLToPath } from "node:url";
import { Server } from "socket.io";

const here = path.dirname(fileURLToPath(import.meta.url));
export const WEB_ROOT = path.resolve(here, "../../../web");
export const CSP =
  "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "application/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".json": "application/json; charset=utf-8",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const randomId = (bytes = 16) => crypto.randomBytes(bytes).toString("hex");

// ---- scripted model (a small subset of src/llm/local_model.cpp) ---------------------------------
function cleanPath(p) {
  p = (p || "").trim().replace(/^["'`]|["'`]$/g, "").replace(/[.,;:]+$/, "");
  if (!p || p === "." || p === "./") return "/workspace";
  if (p.startsWith("./")) p = p.slice(2);
  return p.startsWith("/") ? p : "/workspace/" + p;
}

function parseIntent(raw) {
  const s = raw.trim().replace(/^(please|can you|could you)[,:]?\s+/i, "").replace(/[?!]+$/, "");
  const l = s.toLowerCase();
  let m;
  if ((m = s.match(/^(?:run|execute)\s*:?\s*`([^`]+)`/i)) || (m = s.match(/^(?:run|execute)\s*:\s*(.+)$/i)))
    return { tool: "run_command", args: { command: m[1].trim() }, say: "I'll run `" + m[1].trim() + "` in your sandbox." };
  if ((m = s.match(/^write\s+(.+)\s+(?:to|into)\s+(\S+)$/i)))
    return { tool: "write_file", args: { path: cleanPath(m[2]), content: m[1].replace(/^["']|["']$/g, "") }, say: "I'll write " + cleanPath(m[2]) + "." };
  if (/^(list|ls)\b/.test(l) || l.includes("what files")) {
    const p = s.split(/\s+/).find((w) => w.includes("/"));
    const dir = p ? cleanPath(p) : "/workspace";
    return { tool: "list_files", args: { path: dir }, say: "I'll list the files in " + dir + "." };
  }
  if ((m = s.match(/^(?:read|show me|show|cat|open)\s+(?:the\s+)?(?:file\s+)?(\S+)$/i)))
    return { tool: "read_file", args: { path: cleanPath(m[1]) }, say: "I'll read " + cleanPath(m[1]) + "." };
  return null;
}

const HELP =
  "I'm the built-in local assistant (berth-local): I work offline and act on your sandbox's /workspace. Try:\n" +
  '- "List all files in /workspace"\n- "Read notes.txt"\n- "Write hello world to notes.txt"\n- "Run `ls -la`"\n' +
  "Every tool call waits for your approval.";

function runTool(ws, tool, args) {
  switch (tool) {
    case "list_files": {
      if (args.path !== "/workspace") return { content: "no such directory: " + args.path, isError: true };
      const names = [...ws.keys()].sort();
      return { content: names.length ? names.map((n) => n + "\n").join("") : "(empty directory)\n", isError: false };
    }
    case "read_file": {
      const name = args.path.replace(/^\/workspace\//, "");
      return ws.has(name) ? { content: ws.get(name), isError: false } : { content: "no such file: " + args.path, isError: true };
    }
    case "write_file": {
      ws.set(args.path.replace(/^\/workspace\//, ""), args.content);
      return { content: "wrote " + Buffer.byteLength(args.content) + " bytes to " + args.path, isError: false };
    }
    case "run_command":
      if (args.command === "false") return { content: "exit status 1", isError: true };
      return { content: "$ " + args.command + "\n(dev server: commands are not executed)\n", isError: false };
    default:
      return { content: "unknown tool " + tool, isError: true };
  }
}

function summarise(call, result) {
  if (!call.approved) return "The " + call.name + " call was rejected, so I did not run it.";
  if (result.isError) return "The " + call.name + " call failed: " + result.content.trim();
  switch (call.name) {
    case "list_files": return "Here are the files in " + call.args.path + ":\n" + result.content.trim();
    case "read_file": return "Here is " + call.args.path + ":\n```\n" + result.content.trim() + "\n```";
    case "write_file": return "Done: I wrote " + call.args.path + ".";
    case "run_command": return "I ran `" + call.args.command + "`:\n```\n" + result.content.trim() + "\n```";
    default: return call.name + " returned:\n" + result.content;
  }
}

// ---- server --------------------------------------------------------------------------------------
export async function startDevServer(opts = {}) {
  const port = opts.port ?? 0;
  const host = opts.host ?? "127.0.0.1";
  const poolMax = opts.poolMax ?? 20;
  const maxRequests = opts.maxRequests ?? 5;
  const thinkMs = opts.thinkMs ?? 120;
  const started = Date.now();

  const sessions = new Map(); // sid -> session
  const waiting = []; // sockets waiting for a container
  let callSeq = 0;
  const state = { sessions, waiting };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    const json = (code, body) => {
      res.writeHead(code, { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" });
      res.end(JSON.stringify(body));
    };
    if (req.method !== "GET" && req.method !== "HEAD") return json(405, { error: "method_not_allowed" });
    const pool = () => {
      const active = sessions.size;
      return {
        idle: Math.max(0, Math.min(2, poolMax - active)), active, total: active + Math.max(0, Math.min(2, poolMax - active)),
        maxPoolSize: poolMax, minPoolSize: 2, creating: 0, waiting: waiting.length, acquireMs: { p50: 1.2, p95: 3.4, p99: 8.9 },
      };
    };
    if (url.pathname === "/health" || url.pathname === "/health/ready")
      return json(200, {
        status: "ok", replica: "dev-server", uptimeS: Math.floor((Date.now() - started) / 1000),
        redis: { ok: true, latencyMs: 0.2 }, docker: { ok: true, apiVersion: "1.41" }, pool: pool(),
      });
    if (url.pathname === "/health/live") return json(200, { status: "ok", replica: "dev-server" });
    if (url.pathname === "/stats/pool") return json(200, pool());
    let rel = url.pathname === "/" ? "index.html" : decodeURIComponent(url.pathname.slice(1));
    const file = path.resolve(WEB_ROOT, rel);
    if (!file.startsWith(WEB_ROOT + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile())
      return json(404, { error: "not_found", message: "Not found" });
    const type = TYPES[path.extname(file)] || "application/octet-stream";
    const headers = { "Content-Type": type, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer" };
    if (type.startsWith("text/html")) Object.assign(headers, { "Content-Security-Policy": CSP, "X-Frame-Options": "DENY" });
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : fs.readFileSync(file));
  });

  const io = new Server(server, { serveClient: true, pingInterval: 25000, pingTimeout: 20000, maxHttpBufferSize: 1e6 });

  // Handshake: resume only with the right token (PROTOCOL.md "Handshake").
  io.use((socket, next) => {
    const sid = socket.handshake.query.sessionId;
    const token = socket.handshake.auth && socket.handshake.auth.resumeToken;
    if (typeof sid === "string" && sessions.has(sid) && sessions.get(sid).resumeToken !== token) {
      const err = new Error("session belongs to someone else");
      err.data = { code: "SESSION_FORBIDDEN" };
      return next(err);
    }
    next();
  });

  function newSession(sid) {
    const s = {
      sid: sid || "s_" + randomId(8),
      containerId: randomId(32),
      resumeToken: randomId(24),
      history: [],
      queue: [], // pending turns (texts)
      busy: false,
      pending: null, // { calls, index, resolve }
      socket: null,
      workspace: new Map([["README.md", "# Sandbox\nThis is your workspace.\n"], ["notes.txt", "hello from the dev server\n"]]),
    };
    sessions.set(s.sid, s);
    return s;
  }

  function emit(s, ev, payload) {
    if (s.socket && s.socket.connected) payload === undefined ? s.socket.emit(ev) : s.socket.emit(ev, payload);
  }

  function presentCall(s) {
    const p = s.pending;
    const c = p.calls[p.index];
    emit(s, "tool:approval_required", { name: c.name, args: c.args, callId: c.callId, queuePosition: p.index + 1, totalInQueue: p.calls.length });
  }

  async function runTurn(s, text) {
    emit(s, "agent:thinking");
    await sleep(thinkMs);
    s.history.push({ role: "user", content: text, ts: Date.now() });
    // Dev-only: "X and then Y" asks for two tool calls in one step (to show k-of-n).
    const intents = text.split(/\s+and then\s+/i).map(parseIntent);
    if (intents.some((i) => !i)) {
      s.history.push({ role: "assistant", content: HELP, ts: Date.now() });
      emit(s, "agent:response", HELP);
      return;
    }
    const calls = intents.map((i) => ({ callId: "call_dev_" + ++callSeq, name: i.tool, args: i.args, approved: null }));
    s.history.push({ role: "assistant", content: intents.map((i) => i.say).join(" "), ts: Date.now() });
    await new Promise((resolve) => {
      s.pending = { calls, index: 0, resolve };
      presentCall(s);
    });
    s.pending = null;
    emit(s, "agent:thinking");
    const parts = [];
    for (const c of calls) {
      let result = { content: "rejected by the user", isError: true };
      if (c.approved) {
        const t0 = Date.now();
        result = runTool(s.workspace, c.name, c.args);
        await sleep(20);
        emit(s, "tool:output", { callId: c.callId, name: c.name, content: result.content, isError: result.isError, durationMs: Date.now() - t0 });
      }
      s.history.push({ role: "tool", name: c.name, callId: c.callId, content: result.content, ts: Date.now() });
      parts.push(summarise(c, result));
    }
    await sleep(thinkMs);
    const answer = parts.join("\n\n");
    s.history.push({ role: "assistant", content: answer, ts: Date.now() });
    emit(s, "agent:response", answer);
  }

  async function pump(s) {
    if (s.busy) return;
    s.busy = true;
    try {
      while (s.queue.length && sessions.get(s.sid) === s) {
        const text = s.queue[0];
        try {
          await runTurn(s, text);
        } catch (e) {
          emit(s, "agent:error", { code: "INTERNAL", message: String(e && e.message) });
        }
        s.queue.shift();
      }
    } finally {
      s.busy = false;
    }
  }

  function ready(socket, s, resumed) {
    s.socket = socket;
    socket.data.session = s;
    const payload = {
      sessionId: s.sid, containerId: s.containerId, provider: "local", model: "berth-local", resumed,
      resumeToken: s.resumeToken, limits: { maxConcurrentRequests: maxRequests },
    };
    if (resumed) payload.history = s.history;
    socket.emit("system:ready", payload);
    if (resumed && s.pending) presentCall(s);
  }

  function endSession(s) {
    sessions.delete(s.sid);
    if (s.pending) s.pending.resolve();
    while (waiting.length && sessions.size < poolMax) {
      const w = waiting.shift();
      if (w.socket.connected) ready(w.socket, newSession(w.sid), false);
    }
    waiting.forEach((w, i) => w.socket.emit("system:queued", { position: i + 1 }));
  }

  io.on("connection", (socket) => {
    const sid = typeof socket.handshake.query.sessionId === "string" ? socket.handshake.query.sessionId : undefined;
    if (sid && sessions.has(sid)) {
      const s = sessions.get(sid);
      if (s.socket && s.socket !== socket && s.socket.connected) s.socket.disconnect(true);
      ready(socket, s, true);
    } else if (sessions.size >= poolMax) {
      waiting.push({ socket, sid });
      socket.emit("system:queued", { position: waiting.length });
    } else {
      ready(socket, newSession(sid), false);
    }

    const ack = (cb, body) => { if (typeof cb === "function") cb(body); };
    const fail = (cb, code, message) => ack(cb, { ok: false, code, message });
    const session = (cb) => {
      const s = socket.data.session;
      if (!s || sessions.get(s.sid) !== s) { fail(cb, "INVALID_PAYLOAD", "no session yet"); return null; }
      return s;
    };

    socket.on("message", (payload, cb) => {
      const s = session(cb);
      if (!s) return;
      const text = typeof payload === "string" ? payload : payload && typeof payload.text === "string" ? payload.text : null;
      if (text === null || !text.trim()) return fail(cb, "INVALID_PAYLOAD", "message must be a non-empty string or {text}");
      if (Buffer.byteLength(text) > 64 * 1024) return fail(cb, "INVALID_PAYLOAD", "message too large");
      if (s.queue.length >= maxRequests) {
        const message = "Too many requests in flight (limit " + maxRequests + "); wait for a reply first.";
        emit(s, "agent:error", { code: "TOO_MANY_REQUESTS", message });
        return fail(cb, "TOO_MANY_REQUESTS", message);
      }
      s.queue.push(text);
      ack(cb, { ok: true });
      pump(s);
    });

    socket.on("tool:approval", (payload, cb) => {
      const s = session(cb);
      if (!s) return;
      if (!payload || typeof payload.callId !== "string" || typeof payload.approved !== "boolean")
        return fail(cb, "INVALID_PAYLOAD", "expected {callId, approved}");
      const p = s.pending;
      const c = p && p.calls[p.index];
      if (!c || c.callId !== payload.callId) return fail(cb, "NO_PENDING_CALL", "no pending call " + payload.callId);
      c.approved = payload.approved;
      ack(cb, { ok: true });
      p.index += 1;
      if (p.index < p.calls.length) presentCall(s);
      else p.resolve();
    });

    socket.on("history:reset", (cb) => {
      const s = session(cb);
      if (!s) return;
      s.history = [];
      ack(cb, { ok: true });
      emit(s, "system:message", "Conversation history cleared.");
    });

    socket.on("session:end", (cb) => {
      const s = session(cb);
      if (!s) return;
      ack(cb, { ok: true });
      endSession(s);
      setTimeout(() => socket.disconnect(true), 10);
    });

    socket.on("disconnect", () => {
      const i = waiting.findIndex((w) => w.socket === socket);
      if (i >= 0) {
        waiting.splice(i, 1);
        waiting.forEach((w, k) => w.socket.emit("system:queued", { position: k + 1 }));
      }
    });
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  const addr = server.address();
  const url = "http://" + host + ":" + addr.port;
  return {
    url,
    state,
    endSession: (sid) => sessions.has(sid) && endSession(sessions.get(sid)),
    close: () => new Promise((resolve) => { io.close(); server.close(() => resolve()); server.closeAllConnections?.(); }),
  };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, def) => {
    const i = process.argv.indexOf("--" + name);
    return i > 0 ? Number(process.argv[i + 1]) : def;
  };
  const srv = await startDevServer({ port: arg("port", 3000), poolMax: arg("pool-max", 20), maxRequests: arg("max-requests", 5) });
  console.log("dev server (not Berth) listening on " + srv.url + ", serving " + WEB_ROOT);
  const stop = () => srv.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
