// Peer server for bench/socketio: socket.io@4.8 attached to uWebSockets.js (io.attachApp), the
// fastest Node stack a user could pick instead of Berth, with the contract in contract.mjs;
// 127.0.0.1 only. uWS comes from @trufflesuite/uws-js-unofficial (20.30, ships binaries for
// Node ABIs 93/108/115, i.e. Node 16/18/20, and glibc older than the official package needs).
// Usage: node uws-echo.mjs PORT   (prints "listening on 127.0.0.1:PORT" when ready; PORT 0 picks one)
// The package's own entry point silently falls back to a `ws`-based JavaScript imitation when the
// binary does not load; that would measure the wrong server, so the binary is loaded directly and
// a failure exits with status 3 and a line starting "uws binary unavailable:".
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { Server } from "socket.io";
import { portArgument, serveContract, serverOptions } from "./contract.mjs";

const require = createRequire(import.meta.url);
let uWS;
try {
  const pkg = dirname(require.resolve("@trufflesuite/uws-js-unofficial/package.json"));
  const abi = `${process.platform}_${process.arch}_${process.versions.modules}`;
  uWS = require(join(pkg, "binaries", `uws_${abi}.node`));
} catch (e) {
  console.error(`uws binary unavailable: ${e.message.split("\n")[0]} (node ${process.version})`);
  process.exit(3);
}

const app = uWS.App();
const io = new Server(serverOptions);
io.attachApp(app);
serveContract(io);
app.any("/*", (res) => {
  res.writeStatus("404 Not Found").writeHeader("content-type", "application/json").end('{"error":"not_found"}');
});

app.listen("127.0.0.1", portArgument(), (token) => {
  if (!token) {
    console.error("uws: listen failed");
    process.exit(1);
  }
  console.log(`listening on 127.0.0.1:${uWS.us_socket_local_port(token)}`);
});
const stop = () => io.close(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
