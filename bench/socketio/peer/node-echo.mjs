// Peer server for bench/socketio: the reference socket.io@4.8 on Node's http server and `ws`,
// with the contract in contract.mjs; 127.0.0.1 only.
// Usage: node node-echo.mjs PORT   (prints "listening on 127.0.0.1:PORT" when ready; PORT 0 picks one)
// run.sh starts it with WS_NO_BUFFER_UTIL=1 WS_NO_UTF_8_VALIDATE=1: the uWS package in this folder
// pulls in bufferutil/utf-8-validate, which `ws` would otherwise pick up; a plain `npm i socket.io`
// (what the earlier figures measured) has neither.
import { createServer } from "node:http";
import { Server } from "socket.io";
import { portArgument, serveContract, serverOptions } from "./contract.mjs";

const httpServer = createServer((req, res) => {
  res.writeHead(404, { "content-type": "application/json" });
  res.end('{"error":"not_found"}');
});
const io = new Server(httpServer, serverOptions);
serveContract(io);

httpServer.listen(portArgument(), "127.0.0.1", () => {
  console.log(`listening on 127.0.0.1:${httpServer.address().port}`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
