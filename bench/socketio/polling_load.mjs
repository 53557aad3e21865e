// The polling transport under load (issue 18: clients behind proxies that block websockets live
// on it). C official socket.io-client 4.x clients, transports ["polling"] only, in a closed loop
// of "message-with-ack" (the next emit when the ack arrives) against a server with the bench's
// contract (peer/contract.mjs). Reports, as key=value lines like berth-sio-load: msgs/s, latency
// p50/p99, and the server's CPU (from /proc/PID/stat) -> msgs per server CPU-second.
//
//   node polling_load.mjs --port P --pid PID [--clients 32] [--warmup 2] [--seconds 10] [--payload 32]
//
// Every wait is bounded; loopback only.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "../../client/package.json"));
const { io } = require("socket.io-client");

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const port = Number(args.port);
const pid = Number(args.pid);
const clients = Number(args.clients ?? 32);
const warmupS = Number(args.warmup ?? 2);
const seconds = Number(args.seconds ?? 10);
const payload = "x".repeat(Number(args.payload ?? 32));
if (!port || !pid) {
  console.error("usage: node polling_load.mjs --port P --pid PID [--clients N] [--warmup S] [--seconds S] [--payload B]");
  process.exit(2);
}

const ticks = 100;  // USER_HZ on Linux
function serverCpuS() {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(f[11]) / ticks, sys: Number(f[12]) / ticks };  // utime, stime
}
const out = (k, v) => console.log(`${k}=${typeof v === "number" ? Number(v.toPrecision(6)) : v}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let measuring = false;
let stopping = false;
let count = 0;
const latencies = [];

async function client() {
  const s = io(`http://127.0.0.1:${port}`, { transports: ["polling"], upgrade: false, reconnection: false, timeout: 10000 });
  await new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", reject);
  });
  for (let n = 0; !stopping && n < 1e9; n++) {
    const t0 = process.hrtime.bigint();
    try {
      await s.timeout(10000).emitWithAck("message-with-ack", payload);
    } catch {
      break;  // no ack in 10 s: this client is done
    }
    if (measuring) {
      count++;
      if (latencies.length < 1e6) latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
  }
  s.close();
}

const settled = Promise.allSettled(Array.from({ length: clients }, client));
await sleep(warmupS * 1000);
const c0 = serverCpuS();
const t0 = Date.now();
measuring = true;
await sleep(seconds * 1000);
measuring = false;
const elapsed = (Date.now() - t0) / 1000;
const c1 = serverCpuS();
stopping = true;
const results = await Promise.race([settled, sleep(15000).then(() => [])]);
const failed = results.filter((r) => r.status === "rejected").length;

const cpu = c1.user + c1.sys - c0.user - c0.sys;
latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.ceil((p / 100) * latencies.length) - 1)] : 0);
out("poll_clients", clients);
out("poll_clients_failed", failed);
out("poll_msgs", count);
out("poll_msgs_per_s", count / elapsed);
out("poll_p50_us", Math.round(pct(50)));
out("poll_p99_us", Math.round(pct(99)));
out("poll_server_cpu_pct", (100 * cpu) / elapsed);
out("poll_server_sys_share_pct", cpu > 0 ? (100 * (c1.sys - c0.sys)) / cpu : 0);
out("poll_server_cpu_us_per_msg", count ? (cpu * 1e6) / count : 0);
out("poll_msgs_per_server_cpu_s", cpu > 0 ? count / cpu : 0);
process.exit(0);
