// Gateway-level tool-call round trip: socket.io-client emits tool:approval -> tool:output arrives,
// through a real berth (real Redis, real dockerd, berth-sandbox over the persistent MCP exec,
// local model). Prints p50/p95/p99. Bounded: N turns (default 100) and 120 s.
// Usage: BERTH_BUILD_DIR=build-mcp node bench/mcp/gateway_roundtrip.mjs [turns]
// (uses tests/e2e's node_modules: run `npm ci` there first)
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const e2e = new URL("../../tests/e2e/", import.meta.url);
const require = createRequire(new URL("package.json", e2e));
const { io } = await import(pathToFileURL(require.resolve("socket.io-client")).href);
const { startBerth, startRedis, once } = await import(new URL("support/berth.mjs", e2e).href);

const turns = Math.max(1, Math.min(10000, Number(process.argv[2] || 100)));
const redis = await startRedis();
let berth;
const samples = [];
try {
  // One socket sends two events per turn as fast as turns complete: over the per-socket event
  // limit (SOCKET_EVENTS_PER_SECOND, 20 by default) this measures nothing but the limiter.
  berth = await startBerth({ REDIS_URL: redis.url, LOG_LEVEL: "warn", SOCKET_EVENTS_PER_SECOND: "0" });
  const s = io(berth.url, { transports: ["websocket"], reconnection: false });
  await once(s, "system:ready", 60000);
  const stopAt = Date.now() + 120000;
  for (let i = 0; i < turns + 5 && Date.now() < stopAt; ++i) {
    const approval = once(s, "tool:approval_required", 15000);
    const response = once(s, "agent:response", 15000);
    s.emit("message", "List all files in /workspace");
    const req = await approval;
    const output = once(s, "tool:output", 15000);
    const t0 = process.hrtime.bigint();
    s.emit("tool:approval", { callId: req.callId, approved: true });
    const out = await output;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (out.isError) throw new Error(`tool failed: ${out.content}`);
    if (i >= 5) samples.push(ms);  // the first turns warm up
    await response;
  }
  s.disconnect();
} finally {
  await berth?.stop();
  await redis.stop();
}
samples.sort((a, b) => a - b);
const pct = (p) => samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(p * samples.length) - 1))];
console.log(`gateway approval -> tool:output  n=${samples.length}  p50=${pct(0.5).toFixed(3)} ms  ` +
  `p95=${pct(0.95).toFixed(3)} ms  p99=${pct(0.99).toFixed(3)} ms  max=${samples.at(-1).toFixed(3)} ms`);
