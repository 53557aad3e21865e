// Runs a command against a fresh redis-server + berth: BERTH_URL is set for it.
//   node tests/e2e/support/run-with-berth.mjs [ENV=VALUE ...] -- command args...
import { spawn } from "node:child_process";
import { startBerth, startRedis } from "./berth.mjs";

const sep = process.argv.indexOf("--");
const envArgs = process.argv.slice(2, sep < 0 ? undefined : sep);
const cmd = sep < 0 ? [] : process.argv.slice(sep + 1);
const env = Object.fromEntries(envArgs.map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
const redis = await startRedis();
let berth;
let code = 1;
try {
  berth = await startBerth({ REDIS_URL: redis.url, ...env });
  code = await new Promise((resolve) => {
    const child = spawn(cmd[0], cmd.slice(1), { stdio: "inherit", env: { ...process.env, BERTH_URL: berth.url } });
    child.on("exit", (c) => resolve(c ?? 1));
  });
  if (code !== 0) console.error(berth.logs().slice(-4000));
} catch (e) {
  console.error(e.message);
} finally {
  if (berth) await berth.stop();
  await redis.stop();
}
process.exit(code);
