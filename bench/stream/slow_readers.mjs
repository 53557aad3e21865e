// Memory under slow readers (issue 16): N clients that stop reading their socket right after
// asking a question, while a fake OpenAI server streams each a long answer in many small pieces
// as fast as berth takes them. Without pacing every piece would become an agent:delta packet
// queued for a client that never reads; STREAM_DELTA_INTERVAL_MS (default 20) merges them.
// Prints berth's RSS before, at its peak while streaming, and after every answer was written.
// Real berth, Redis, dockerd (one container per client); Engine.IO/Socket.IO spoken by hand over
// `ws` so the TCP socket can be paused (the kernel buffers fill, then berth's own queue grows).
// Usage: BERTH_BUILD_DIR=build/release node bench/stream/slow_readers.mjs [clients=20] [pieces=20000] [intervalMs=20]
// Bounded: 120 s. (uses tests/e2e's node_modules: run `npm ci` there first)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const e2e = new URL("../../tests/e2e/", import.meta.url);
const require = createRequire(new URL("package.json", e2e));
const { default: WebSocket } = await import(pathToFileURL(require.resolve("ws")).href);
const { startBerth, startRedis } = await import(new URL("support/berth.mjs", e2e).href);
const { startFakeOpenAI } = await import(new URL("support/fake-openai.mjs", e2e).href);

const clients = Math.max(1, Math.min(200, Number(process.argv[2] || 20)));
const pieces = Math.max(1, Math.min(1000000, Number(process.argv[3] || 20000)));
const interval = String(Math.max(0, Number(process.argv[4] ?? 20)));

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One Socket.IO client by hand: open, CONNECT "/", wait for system:ready.
function connectRaw(port) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    const t = setTimeout(() => reject(new Error("no system:ready in 90 s")), 90000);
    ws.on("message", (data) => {
      const m = data.toString();
      if (m.startsWith("0")) ws.send("40");
      else if (m === "2") ws.send("3");
      else if (m.startsWith('42["system:ready"')) {
        clearTimeout(t);
        resolve(ws);
      }
    });
    ws.on("error", reject);
  });
}

const fake = await startFakeOpenAI([{ pieces: Array.from({ length: pieces }, () => "x") }]);
const redis = await startRedis();
let berth;
try {
  berth = await startBerth({
    REDIS_URL: redis.url,
    LOG_LEVEL: "warn",
    LLM_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_API_KEY: "sk-bench",
    POOL_MIN_SIZE: String(Math.min(clients, 20)),
    POOL_MAX_SIZE: String(clients + 2),
    STREAM_DELTA_INTERVAL_MS: interval,
  });
  const pid = berth.proc.pid;
  const sockets = [];
  for (let c = 0; c < clients; ++c) sockets.push(await connectRaw(berth.port));
  await sleep(1000);
  const before = rssKiB(pid);
  const t0 = Date.now();
  for (const ws of sockets) {
    ws.send('42["message","tell me everything"]');
    ws._socket.pause(); // from here on this client reads nothing
  }
  let peak = before;
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && !(fake.requests.length >= clients && fake.requests.every((r) => r.done))) {
    peak = Math.max(peak, rssKiB(pid));
    await sleep(50);
  }
  const streamed = fake.requests.filter((r) => r.done).length;
  const secs = (Date.now() - t0) / 1000;
  await sleep(1000);
  const afterKiB = rssKiB(pid);
  peak = Math.max(peak, afterKiB);
  console.log(
    `slow readers: clients=${clients} pieces/answer=${pieces} STREAM_DELTA_INTERVAL_MS=${interval} ` +
      `answers streamed=${streamed}/${clients} in ${secs.toFixed(1)} s; berth RSS before=${(before / 1024).toFixed(1)} MiB ` +
      `peak=${(peak / 1024).toFixed(1)} MiB after=${(afterKiB / 1024).toFixed(1)} MiB ` +
      `(+${((peak - before) / clients).toFixed(0)} KiB per client at peak)`,
  );
  for (const ws of sockets) ws.terminate();
} finally {
  await berth?.stop();
  await redis.stop();
  await fake.stop();
}
