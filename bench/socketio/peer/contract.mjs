// The contract both peer servers share with berth-conformance-server's "/" namespace, so that
// bench/socketio measures the same work on each: "message" -> emit "message-back", and
// "message-with-ack" -> ack(...args); ping interval/timeout 300/200 ms (PING_INTERVAL_MS /
// PING_TIMEOUT_MS override them).
export const serverOptions = {
  pingInterval: Number(process.env.PING_INTERVAL_MS ?? 300),
  pingTimeout: Number(process.env.PING_TIMEOUT_MS ?? 200),
  connectTimeout: 1000,
  cors: { origin: "*" },
};

export function serveContract(io) {
  io.of("/").on("connection", (socket) => {
    socket.emit("auth", socket.handshake.auth);
    socket.on("message", (...args) => socket.emit("message-back", ...args));
    socket.on("message-with-ack", (...args) => {
      const ack = args.pop();
      if (typeof ack === "function") ack(...args);
    });
  });
}

export function portArgument() {
  return Number(process.argv[2] ?? process.env.PORT ?? 3956);
}
