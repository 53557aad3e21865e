// Misconfiguration stops berth at start-up with one line naming the cause (and a non-zero exit),
// instead of a gateway that runs and fails every user later.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { buildDir, freePort, repoRoot } from "../support/berth.mjs";

// Runs berth with env; resolves {code, output} when it exits (killed after 20 s if it does not).
async function runBerth(env) {
  const port = await freePort();
  const proc = spawn(path.join(buildDir, "src/app/berth"), [], {
    cwd: repoRoot,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  proc.stdout.on("data", (d) => (output += d));
  proc.stderr.on("data", (d) => (output += d));
  const timer = setTimeout(() => proc.kill("SIGKILL"), 20000);
  const code = await new Promise((resolve) => proc.on("exit", (c, sig) => resolve(sig ? sig : c)));
  clearTimeout(timer);
  return { code, output };
}

test("a REDIS_URL host that does not resolve stops start-up and names the host", async () => {
  // .invalid never resolves (RFC 6761).
  const r = await runBerth({ REDIS_URL: "redis://:s3cret-pw@no-such-redis.invalid:6379/0", ENABLE_CONTAINER_POOL: "false" });
  assert.notEqual(r.code, 0, r.output);
  assert.notEqual(r.code, "SIGKILL", "exited by itself");
  const lines = r.output.split("\n").filter((l) => /no-such-redis\.invalid/.test(l));
  assert.equal(lines.length, 1, r.output);
  assert.match(lines[0], /REDIS_URL.*does not resolve/);
  assert.ok(!r.output.includes("s3cret-pw"), "the password is never logged");
});

test("an invalid pool setting stops start-up and names the variable", async () => {
  const r = await runBerth({ POOL_MIN_SIZE: "abc" });
  assert.notEqual(r.code, 0, r.output);
  assert.notEqual(r.code, "SIGKILL", "exited by itself");
  assert.match(r.output, /POOL_MIN_SIZE/);
});

test("a bad REDIS_SENTINELS list or two Redis passwords stop start-up naming the cause, never a secret", async () => {
  const bad = await runBerth({ REDIS_SENTINELS: "s1:26379,s1:26379", ENABLE_CONTAINER_POOL: "false" });
  assert.notEqual(bad.code, 0, bad.output);
  assert.notEqual(bad.code, "SIGKILL", "exited by itself");
  assert.match(bad.output, /REDIS_SENTINELS: s1:26379 is listed twice/);
  const two = await runBerth({ REDIS_URL: "redis://:url-pw-123@127.0.0.1:1", REDIS_PASSWORD: "env-pw-456",
    ENABLE_CONTAINER_POOL: "false" });
  assert.notEqual(two.code, 0, two.output);
  assert.notEqual(two.code, "SIGKILL", "exited by itself");
  assert.match(two.output, /REDIS_PASSWORD is set and REDIS_URL carries a password too/);
  for (const secret of ["url-pw-123", "env-pw-456"]) assert.ok(!two.output.includes(secret), "a password was logged");
});
