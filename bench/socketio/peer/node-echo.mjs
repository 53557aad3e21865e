// Peer server for bench/socketio: the reference socket.io@4.8 with the same contract as
// berth-conformance-server's "/" namespace: "message" -> emit "message-back", and
// "message-with-ack" -> ack(...args); ping interval/timeout 300/200 ms; 127.0.0.1 only.
// Usage: node node-echo.mjs PORT   (prints "listening on 127.0.0.1:PORT" when ready; PORT 0 picks one)
// PING_INTERVAL_MS / PING_TIMEOUT_MS override the heartbeat (default 300/200, the conformance contract).
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 3956);
const httpServer = createServer((req, res) => {
  res.writeHead(404, { "content-type": "application/json" });
  res.end('{"error":"not_found"}');
});
const io = new Server(httpServer, {
  pingInterval: Number(process.env.PING_INTERVAL_MS ?? 300),
  pingTimeout: Number(process.env.PING_TIMEOUT_MS ?? 200),
  connectTimeout: 1000,
  cors: { origin: "*" },
});

io.of("/").on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args) => socket.emit("message-back", ...args));
  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    if (typeof ack === "function") ack(...args);
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
