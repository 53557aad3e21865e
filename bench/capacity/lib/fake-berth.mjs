// A stand-in for Berth used ONLY by calibrate.mjs to measure the load generators themselves:
// the official socket.io 4.8 server speaking Berth's agent flow with no container, no Redis and
// no LLM, so that the generator, not the server, is what runs out of CPU. It answers exactly as
// Berth does on the guide's path (docs/PROTOCOL.md): system:ready after the connect; `message`
// -> ack {ok:true}, agent:thinking, tool:approval_required {name, args, callId, ...};
// `tool:approval` -> ack {ok:true}, tool:output {callId, ...}, agent:response. GET /health and
// /metrics answer like Berth's so the harness's probes work against it.
//   node lib/fake-berth.mjs PORT     (prints "listening PORT")
import { createRequire } from "node:module";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const { Server } = createRequire(path.resolve(here, "../../../tests/e2e/package.json"))("socket.io");
const port = Number(process.argv[2]);
let sessions = 0;
let open = 0;

const httpServer = http.createServer((req, res) => {
  if (req.url === "/health" || req.url === "/health/ready" || req.url === "/health/live") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ status: "ok", replica: "fake-berth" }));
  }
  if (req.url === "/metrics") {
    res.writeHead(200, { "content-type": "text/plain" });
    return res.end(`berth_engineio_sessions ${open}\nberth_engineio_sessions_opened_total ${sessions}\n`);
  }
  if (req.url === "/stats/pool") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ idle: 0, prepared: 0, active: 0, total: 0 }));
  }
});
const io = new Server(httpServer, { transports: ["polling", "websocket"] });
io.on("connection", (socket) => {
  const n = ++sessions;
  open++;
  socket.on("disconnect", () => open--);
  setImmediate(() =>
    socket.emit("system:ready", {
      sessionId: `fake-${n}`, containerId: `fake-container-${n}`, provider: "local", model: "local",
      resumed: false, resumeToken: "x", limits: { maxConcurrentRequests: 5 }, history: [],
    }),
  );
  let call = 0;
  socket.on("message", (_text, ack) => {
    ack?.({ ok: true });
    socket.emit("agent:thinking");
    socket.emit("tool:approval_required", { name: "list_files", args: { path: "/workspace" }, callId: `call-${n}-${++call}`, queuePosition: 1, totalInQueue: 1 });
  });
  socket.on("tool:approval", (a, ack) => {
    ack?.({ ok: true });
    socket.emit("tool:output", { callId: a?.callId, name: "list_files", content: "notes.txt\n", isError: false, durationMs: 1 });
    socket.emit("agent:response", "The workspace holds notes.txt.");
  });
});
httpServer.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
