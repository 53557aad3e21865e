// The sandboxes under gVisor (SANDBOX_RUNTIME=runsc, docs/SANDBOX.md): the whole agent flow with
// every container created on that runtime, against the real dockerd with Debian's runsc registered
// (scripts/services.sh registers it when runsc is installed). Skipped when the daemon has no runsc
// runtime, unless BERTH_REQUIRE_RUNSC=1 (CI), where that is a failure.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { io } from "socket.io-client";
import { startBerth, startRedis, once } from "../support/berth.mjs";

function daemonRuntimes() {
  try {
    return Object.keys(JSON.parse(execFileSync("docker", ["info", "--format", "{{json .Runtimes}}"]).toString()));
  } catch {
    return [];
  }
}

const hasRunsc = daemonRuntimes().includes("runsc");
const required = process.env.BERTH_REQUIRE_RUNSC === "1";
const skip = !hasRunsc && !required ? "dockerd has no runsc runtime (scripts/services.sh registers Debian's runsc)" : false;

let redis;
let berth;

before(async () => {
  if (skip) return;
  assert.ok(hasRunsc, `BERTH_REQUIRE_RUNSC=1 but dockerd lists only: ${daemonRuntimes().join(", ")}`);
  redis = await startRedis();
  berth = await startBerth({ REDIS_URL: redis.url, SANDBOX_RUNTIME: "runsc", POOL_MIN_SIZE: "1", TOOL_TIMEOUT_MS: "10000" });
});

after(async () => {
  await berth?.stop();
  await redis?.stop();
});

function inspect(container, format) {
  return execFileSync("docker", ["inspect", "-f", format, container]).toString().trim();
}

// One turn with every proposed call approved: the outputs and the response.
async function turn(socket, text) {
  const outputs = [];
  const approve = (req) => socket.emit("tool:approval", { callId: req.callId, approved: true });
  const collect = (o) => outputs.push(o);
  socket.on("tool:approval_required", approve);
  socket.on("tool:output", collect);
  try {
    const ack = await socket.timeout(10000).emitWithAck("message", text);
    assert.equal(ack.ok, true, JSON.stringify(ack));
    const response = await Promise.race([
      once(socket, "agent:response", 60000),
      once(socket, "agent:error", 60000).then((e) => { throw new Error(`agent:error ${JSON.stringify(e)}`); }),
    ]);
    return { outputs, response };
  } finally {
    socket.off("tool:approval_required", approve);
    socket.off("tool:output", collect);
  }
}

test("the agent's tools run in a gVisor sandbox", { skip }, async () => {
  const s = io(berth.url, { transports: ["websocket"], reconnection: false });
  try {
    const ready = await once(s, "system:ready", 60000);
    assert.equal(inspect(ready.containerId, "{{.HostConfig.Runtime}}"), "runsc");

    const w = await turn(s, "write hello gvisor to notes.txt");
    assert.equal(w.outputs.length, 1);
    assert.equal(w.outputs[0].isError, false, JSON.stringify(w.outputs[0]));

    // gVisor's own kernel answers (its dmesg is the Sentry's), as the unprivileged sandbox user.
    const r = await turn(s, "run `id -u; cat notes.txt; dmesg | head -1`");
    assert.equal(r.outputs.length, 1);
    assert.equal(r.outputs[0].isError, false, JSON.stringify(r.outputs[0]));
    assert.match(r.outputs[0].content, /^1000$/m);
    assert.match(r.outputs[0].content, /hello gvisor/);
    assert.match(r.outputs[0].content, /gVisor/i);

    // Under gVisor the server acts as the user through its effective ids (no setfsuid there):
    // its real and saved ids stay root's, so the user's commands still cannot signal it.
    const probe = await turn(
      s,
      "run `for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n = $$ ] && continue; case \"$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\" in *berth-sandbox*) kill -9 $n && echo KILLED $n;; esac; done; echo probed`",
    );
    assert.equal(probe.outputs.length, 1);
    assert.match(probe.outputs[0].content, /probed/);
    assert.match(probe.outputs[0].content, /not permitted/);
    assert.doesNotMatch(probe.outputs[0].content, /KILLED/);
    const after = await turn(s, "read notes.txt");
    assert.match(after.outputs[0].content, /hello gvisor/);
  } finally {
    s.disconnect();
  }
});
