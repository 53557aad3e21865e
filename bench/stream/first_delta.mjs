// Time to first delta through the gateway (issue 16): a fake OpenAI server in this process
// timestamps the write of the first content piece of each streamed reply; a socket.io-client in
// this process timestamps the first agent:delta of the turn. Same clock (process.hrtime), so
// the difference is what berth adds: reading the chunk, SSE + JSON decoding, the turn state, the
// delta pacer, Socket.IO encoding and the websocket write. Goal: p99 within 5 ms.
// Real berth, real Redis, real dockerd (each session has its container); LLM_PROVIDER=openai.
// Usage: BERTH_BUILD_DIR=build/release node bench/stream/first_delta.mjs [turns=200] [clients=4]
// (uses tests/e2e's node_modules: run `npm ci` there first). Bounded: turns and 180 s.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const e2e = new URL("../../tests/e2e/", import.meta.url);
const require = createRequire(new URL("package.json", e2e));
const { io } = await import(pathToFileURL(require.resolve("socket.io-client")).href);
const { startBerth, startRedis, once } = await import(new URL("support/berth.mjs", e2e).href);
const { startFakeOpenAI } = await import(new URL("support/fake-openai.mjs", e2e).href);

const turns = Math.max(1, Math.min(100000, Number(process.argv[2] || 200)));
const clients = Math.max(1, Math.min(64, Number(process.argv[3] || 4)));
const warmup = 5;
// The model "thinks" 20 ms, then writes 20 pieces 2 ms apart.
const fake = await startFakeOpenAI([{ pieces: Array.from({ length: 20 }, (_, i) => `w${i} `), gapMs: 2, firstDelayMs: 20 }]);
const redis = await startRedis();
let berth;
const samples = [];
try {
  berth = await startBerth({
    REDIS_URL: redis.url,
    LOG_LEVEL: "warn",
    LLM_PROVIDER: "openai",
    OPENAI_BASE_URL: fake.baseUrl,
    OPENAI_API_KEY: "sk-bench",
    POOL_MIN_SIZE: String(clients),
    POOL_MAX_SIZE: String(clients + 2),
  });
  const sockets = [];
  for (let c = 0; c < clients; ++c) {
    const s = io(berth.url, { transports: ["websocket"], reconnection: false });
    await once(s, "system:ready", 90000);
    sockets.push(s);
  }
  const stopAt = Date.now() + 180000;
  let started = 0;
  // Each client runs turns back to back; every turn's first delta is matched to the fake's
  // request by the turn's position in fake.requests (recorded when the request arrived).
  async function run(s) {
    while (started < turns + warmup * clients && Date.now() < stopAt) {
      const mine = started++;
      const firstDelta = new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error("no agent:delta")), 15000);
        s.once("agent:delta", () => { clearTimeout(t); resolve(process.hrtime.bigint()); });
      });
      const response = once(s, "agent:response", 15000);
      const before = fake.requests.length;
      s.emit("message", `turn ${mine}`);
      const seenAt = await firstDelta;
      await response;
      const rec = fake.requests.find((r, i) => i >= before && r.body.messages.at(-1).content === `turn ${mine}`);
      if (!rec || rec.firstContentNs === null) throw new Error(`no provider record for turn ${mine}`);
      if (mine >= warmup * clients) samples.push(Number(seenAt - rec.firstContentNs) / 1e6);
    }
  }
  await Promise.all(sockets.map(run));
  for (const s of sockets) s.disconnect();
} finally {
  await berth?.stop();
  await redis.stop();
  await fake.stop();
}
samples.sort((a, b) => a - b);
const q = (p) => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))];
console.log(
  `first delta after the provider's first content byte: n=${samples.length} clients=${clients} ` +
    `p50=${q(50).toFixed(3)} ms p95=${q(95).toFixed(3)} ms p99=${q(99).toFixed(3)} ms max=${samples.at(-1).toFixed(3)} ms`,
);
