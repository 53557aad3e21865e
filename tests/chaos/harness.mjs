// Chaos under load (issue 14 item 6): users mid-conversation on two Berth replicas while one part
// of the system fails at a time. Everything is real and owned by the run: a dockerd of its own
// (own socket, data root and containerd, so restarting it touches no other container on the
// host), a redis-server with the append-only file the scale stack uses, and two `berth`
// processes on loopback ports. Shared by tests/chaos/chaos.test.mjs (CI size) and
// bench/chaos/run.sh (50 users, figures).
//
// Per scenario it reports: sessions lost (a user who cannot resume its session, same id, with its
// history), history entries missing, containers leaked (containers of the run that neither pool
// accounts for once things settle), limiter slots leaked (in-flight leases left in Redis once no
// request runs), and the time until every affected user can work again (fault -> the end of the
// first successful tool turn started after it; the fault is the user's own where the scenario
// says when that was, see Users.recovery).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { freePort, buildDir, repoRoot, once, waitFor, metric } from "../e2e/support/berth.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function spawnLogged(cmd, args, opts = {}) {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  let out = "";
  const keep = (d) => {
    out += d;
    if (out.length > 400000) out = out.slice(-200000);
  };
  proc.stdout.on("data", keep);
  proc.stderr.on("data", keep);
  const exited = new Promise((resolve) => proc.on("exit", resolve));
  return { proc, exited, logs: () => out };
}

async function stopProc(p, signal = "SIGTERM", graceMs = 10000) {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill(signal);
  const done = await Promise.race([p.exited.then(() => true), sleep(graceMs).then(() => false)]);
  if (!done) {
    p.proc.kill("SIGKILL");
    await p.exited;
  }
}

// ---- a dockerd of the run's own

export async function startDockerd() {
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-chaos-dockerd-"));
  const sock = path.join(dir, "docker.sock");
  const args = ["--host", `unix://${sock}`, "--data-root", path.join(dir, "data"), "--exec-root", path.join(dir, "exec"),
    "--pidfile", path.join(dir, "docker.pid"), "--bridge", "none", "--iptables=false", "--ip6tables=false"];
  // CHAOS_LIVE_RESTORE=1: dockerd's live-restore, as docs/DEPLOYMENT.md recommends: its
  // containers keep running while it restarts (only the attach connections to them break).
  const liveRestore = process.env.CHAOS_LIVE_RESTORE === "1";
  if (liveRestore) args.push("--live-restore");
  const host = `unix://${sock}`;
  const cli = (...a) => execFileSync("docker", ["-H", host, ...a], { timeout: 60000 }).toString();
  let d;
  // In a network namespace of its own: a second dockerd in the host's namespace tears down the
  // host daemon's docker0 bridge (seen here: every later `docker build` RUN step failed), and the
  // sandboxes run with network "none" anyway. `unshare` execs dockerd, so signals reach it.
  const up = async () => {
    d = spawnLogged("unshare", ["--net", "--", "dockerd", ...args]);
    await waitFor(() => {
      if (d.proc.exitCode !== null) throw new Error(`dockerd exited: ${d.logs().slice(-1500)}`);
      try {
        cli("version");
        return true;
      } catch {
        return false;
      }
    }, 60000, "the chaos dockerd");
  };
  await up();
  // The sandbox image from the host's daemon (no registry here).
  const image = process.env.SANDBOX_IMAGE || "berth-sandbox:latest";
  execFileSync("sh", ["-c", `docker save '${image}' | docker -H '${host}' load`], { stdio: "ignore", timeout: 120000 });
  return {
    host,
    cli,
    image,
    liveRestore,
    logs: () => d.logs(),
    // A restart as an operator does it: SIGTERM (dockerd stops its containers, unless
    // live-restore keeps them), then start again.
    async restart() {
      await stopProc(d, "SIGTERM", 30000);
      await up();
    },
    async stop() {
      // Containers first (bounded), then the daemon, then whatever it left mounted under its root.
      for (let i = 0; i < 20; i++) {
        let ids = [];
        try {
          ids = cli("ps", "-aq").split(/\s+/).filter(Boolean);
          if (ids.length) cli("rm", "-f", ...ids);
        } catch {
          /* removal in progress, or the daemon is down */
        }
        if (!ids.length) break;
        await sleep(500);
      }
      await stopProc(d, "SIGTERM", 30000);
      // Shims a restart left behind (their -address is under the run's directory), with the
      // container each one runs: killing a container's first process ends its pid namespace.
      // "shi[m]": the pattern must not match this shell's own command line (it killed itself, and
      // the umount and removal below never ran).
      execFileSync("sh", ["-c", `for p in $(pgrep -f 'containerd-shi[m].*${dir}/'); do pkill -9 -P "$p"; kill -9 "$p"; done 2>/dev/null; true`]);
      // With live-restore dockerd leaves its containerd running when it stops.
      execFileSync("sh", ["-c", `pkill -9 -f 'containe[r]d --config ${dir}/' 2>/dev/null; true`]);
      execFileSync("sh", ["-c", `grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null; true`]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- redis-server with the scale stack's persistence (AOF, fsync every second)

export async function startDurableRedis() {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), "berth-chaos-redis-"));
  let r;
  const up = async () => {
    r = spawnLogged("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "",
      "--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"]);
    await waitFor(() => new Promise((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.end();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    }), 15000, "redis-server");
    // Loaded (a restart replays the AOF before it answers PING with PONG).
    await waitFor(() => cli("PING") === "PONG", 30000, "redis loading");
  };
  const cli = (...a) => execFileSync("redis-cli", ["-p", String(port), ...a], { timeout: 10000 }).toString().trim();
  await up();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    cli,
    async crashAndRestart() {
      await stopProc(r, "SIGKILL");
      await up();
    },
    async stop() {
      await stopProc(r, "SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- berth replicas (a fixed REPLICA_ID and port each, so a restart is the same replica)

export async function startReplica({ replica, port, env }) {
  const url = `http://127.0.0.1:${port}`;
  let b;
  const up = async () => {
    b = spawnLogged(path.join(buildDir, "src/app/berth"), [], {
      cwd: repoRoot,
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", REPLICA_ID: replica, LOG_LEVEL: "info", ...env },
    });
    await waitFor(async () => {
      if (b.proc.exitCode !== null) throw new Error(`berth ${replica} exited: ${b.logs().slice(-2000)}`);
      return (await fetch(`${url}/health/ready`)).status === 200;
    }, 120000, `berth ${replica} ready`);
  };
  await up();
  return {
    replica,
    url,
    logs: () => b.logs(),
    async crashAndRestart() {
      await stopProc(b, "SIGKILL");
      await up();
    },
    async pool() {
      return (await fetch(`${url}/stats/pool`)).json();
    },
    metric: (name) => metric({ url }, name),
    async stop() {
      await stopProc(b, "SIGTERM", 10000);
    },
  };
}

// ---- users

const TOOL_TURN = "List all files in /workspace";

// One tool turn: message (ack: turnId) -> tool:approval_required of that turn -> approve ->
// tool:output of that call -> agent:response. Resolves {ok, code?}; never rejects. Events of an
// earlier turn (one the client gave up on) are told apart by turnId/callId; agent:response
// carries neither, so only the one after this turn's tool:output counts. A turn that does not
// finish in time is cancelled (agent:cancel) so that it cannot answer into the next one.
async function toolTurn(s, timeoutMs) {
  return new Promise((resolve) => {
    let done = false;
    let turnId = null;
    let callId = null;
    let toolOk = null;
    const early = [];  // approval requests that arrived before the ack told the turn id
    const notices = [];  // agent:error codes that belong to no turn
    const handlers = {};
    const finish = (r) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      for (const [ev, fn] of Object.entries(handlers)) s.off(ev, fn);
      resolve(notices.length ? { ...r, notices } : r);
    };
    const timer = setTimeout(() => {
      if (turnId && s.connected) s.emit("agent:cancel", { turnId });
      finish({ ok: false, code: "NO_ANSWER" });
    }, timeoutMs);
    const approve = async (p) => {
      if (p.turnId !== turnId || callId) return;
      callId = p.callId;
      try {
        const ack = await s.timeout(timeoutMs).emitWithAck("tool:approval", { callId, approved: true });
        if (!ack?.ok) finish({ ok: false, code: `APPROVAL_${ack?.code || "NACK"}` });
      } catch {
        finish({ ok: false, code: "APPROVAL_ACK_TIMEOUT" });
      }
    };
    handlers["tool:approval_required"] = (p) => (turnId ? approve(p) : early.push(p));
    handlers["tool:output"] = (p) => {
      if (!callId || p?.callId !== callId) return;
      toolOk = !p.isError;
      if (!toolOk) finish({ ok: false, code: "TOOL_IS_ERROR", message: String(p?.content ?? "").slice(0, 200) });
    };
    handlers["agent:response"] = () => toolOk !== null && finish(toolOk ? { ok: true } : { ok: false, code: "TOOL_IS_ERROR" });
    // An agent:error without a turnId ends no turn (docs/PROTOCOL.md): e.g. the sandbox
    // MCP server that a recovery could not open yet, while the turn's own tool call goes on. Ending
    // the turn here left the server's turn running and the next message queued behind it; once it
    // started, nobody approved its tool call, and every later message of the user waited behind it.
    handlers["agent:error"] = (e) => {
      if (!e?.turnId) return notices.push(e?.code || "AGENT_ERROR");
      if (turnId && e.turnId !== turnId) return;
      finish({ ok: false, code: e.code || "AGENT_ERROR", message: e.message });
    };
    handlers["disconnect"] = (reason) => finish({ ok: false, code: `DISCONNECTED_${reason}` });
    for (const [ev, fn] of Object.entries(handlers)) s.on(ev, fn);
    s.timeout(timeoutMs).emitWithAck("message", TOOL_TURN).then(
      (ack) => {
        if (!ack?.ok) return finish({ ok: false, code: `ACK_${ack?.code || "NACK"}`, message: ack?.message });
        turnId = ack.turnId;
        for (const p of early.splice(0)) approve(p);
      },
      () => finish({ ok: false, code: "ACK_TIMEOUT" }));
  });
}

// Connects (a new session, or a resume of `u.ready`) to `url`; resolves the system:ready payload
// or {error}.
async function connect(io, url, u, timeoutMs) {
  const opts = { transports: ["websocket"], reconnection: false, timeout: timeoutMs };
  if (u.ready) Object.assign(opts, { query: { sessionId: u.ready.sessionId }, auth: { resumeToken: u.ready.resumeToken } });
  const s = io(url, opts);
  const notices = [];
  s.on("system:message", (m) => notices.push({ at: Date.now(), m }));
  const readyP = once(s, "system:ready", timeoutMs);
  readyP.catch(() => {});
  const refusedP = once(s, "connect_error", timeoutMs).then((e) => ({ error: e?.message || "connect_error" }), () => ({ error: "no answer" }));
  const errorP = once(s, "agent:error", timeoutMs).then((e) => ({ error: `${e?.code}: ${e?.message}` }), () => ({ error: "no answer" }));
  const r = await Promise.race([readyP, refusedP, errorP]);
  if (r.error) {
    s.close();
    return r;
  }
  return { socket: s, ready: r, notices };
}

export class Users {
  constructor({ io, urls, count, pauseMs = 1000, turnTimeoutMs = 20000 }) {
    Object.assign(this, { io, urls, count, pauseMs, turnTimeoutMs });
    this.all = [];
    this.running = false;
  }

  async connectAll() {
    for (let i = 0; i < this.count; i++)
      this.all.push({ id: i, home: i % this.urls.length, turns: [], resumes: [], lost: null, socket: null, ready: null });
    await Promise.all(this.all.map(async (u) => {
      const r = await connect(this.io, this.urls[u.home], u, 60000);
      if (r.error) throw new Error(`user ${u.id} could not connect: ${r.error}`);
      u.socket = r.socket;
      u.ready = r.ready;
      u.sessionId = r.ready.sessionId;
    }));
  }

  // A user whose socket dropped resumes its session, on the other replica first (as nginx sends
  // a client elsewhere when its replica is down), then on either, until `deadline`.
  async reconnect(u, deadline) {
    for (let attempt = 0; Date.now() < deadline && attempt < 200; attempt++) {
      const url = this.urls[(u.home + 1 + attempt) % this.urls.length];
      const r = await connect(this.io, url, u, Math.max(1000, Math.min(20000, deadline - Date.now())));
      if (!r.error) {
        if (!r.ready.resumed || r.ready.sessionId !== u.sessionId) {
          u.lost = `resumed=${r.ready.resumed} sessionId ${r.ready.sessionId === u.sessionId ? "same" : "changed"}`;
          r.socket.close();
          return false;
        }
        u.resumes.push({ at: Date.now(), containerChanged: r.ready.containerId !== u.ready.containerId, notices: r.notices });
        u.socket?.close();
        u.socket = r.socket;
        u.ready = r.ready;
        u.home = (u.home + 1 + attempt) % this.urls.length;
        return true;
      }
      if (/SESSION_NOT_FOUND|not found|expired/i.test(r.error)) {
        u.lost = r.error;
        return false;
      }
      await sleep(250);
    }
    return false;
  }

  start() {
    this.running = true;
    this.loops = this.all.map(async (u) => {
      for (let n = 0; this.running && !u.lost && n < 1000000; n++) {
        if (!u.socket?.connected) {
          // The drop itself counts as a failed turn: it is when the user noticed the fault.
          const start = Date.now();
          const ok = await this.reconnect(u, start + 60000);
          u.turns.push({ start, end: Date.now(), ok: false, code: "DISCONNECTED" });
          if (!ok) break;
          continue;
        }
        const start = Date.now();
        const r = await toolTurn(u.socket, this.turnTimeoutMs);
        u.turns.push({ start, end: Date.now(), ...r });
        await sleep(r.ok ? this.pauseMs : 250);
      }
    });
  }

  async stop() {
    this.running = false;
    await Promise.all(this.loops || []);
  }

  // Affected users: those with a failed turn started at or after `at` (the start of the fault's
  // injection). Recovered: a successful tool turn started after that user's first such failure and
  // after the fault (`readyAt`, or the user's own fault time in `userFaultAt`, user id -> ms); its
  // recovery time runs from the user's own fault time if given, else from `at`, to that turn's end.
  recovery(at, readyAt, userFaultAt = null) {
    const ms = [];
    let unrecovered = 0;
    for (const u of this.all) {
      const after = u.turns.filter((t) => t.start >= at);
      const failed = after.find((t) => !t.ok);
      if (!failed) continue;  // never noticed the fault
      const own = userFaultAt?.[u.id];
      const from = own ?? at;
      const ready = Math.max(readyAt, own ?? readyAt);
      const good = after.find((t) => t.ok && t.start >= ready && t.start >= failed.start);
      if (good) ms.push(good.end - from);
      else unrecovered++;
    }
    return { affected: ms.length + unrecovered, recovered: ms.length, unrecovered, ms: ms.sort((a, b) => a - b) };
  }

  errorCodes(from, to = Infinity) {
    const codes = {};
    for (const u of this.all)
      for (const t of u.turns) if (!t.ok && t.start >= from && t.start < to) codes[t.code] = (codes[t.code] || 0) + 1;
    return codes;
  }

  // agent:error codes without a turnId that users got during their turns (they end no turn).
  noticeCodes(from) {
    const codes = {};
    for (const u of this.all)
      for (const t of u.turns) if (t.start >= from) for (const c of t.notices || []) codes[c] = (codes[c] || 0) + 1;
    return codes;
  }

  // One message per error code (what the client was told).
  errorExamples(from) {
    const ex = {};
    for (const u of this.all) for (const t of u.turns) if (!t.ok && t.start >= from && t.message && !ex[t.code]) ex[t.code] = t.message;
    return ex;
  }

  async closeAll() {
    for (const u of this.all) u.socket?.close();
  }
}

export const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);

// ---- the accounting checks

// Containers of the run that no replica's pool accounts for (idle, leased, being created or
// scrubbed), after things settle (bounded); also stopped ones.
export async function containersLeaked(docker, replicas, settleMs = 45000) {
  let last = null;
  const deadline = Date.now() + settleMs;
  while (Date.now() < deadline) {
    const alive = docker.cli("ps", "-aq").split(/\s+/).filter(Boolean).length;
    let accounted = 0;
    for (const r of replicas) accounted += (await r.pool()).total ?? 0;
    last = { alive, accounted, leaked: Math.max(0, alive - accounted) };
    if (last.leaked === 0) return last;
    await sleep(1000);
  }
  return last;
}

// In-flight leases in Redis once no request runs: each is a slot its user can no longer use
// until the lease expires. A turn the client gave up on may still run on the server until its own
// deadlines (tool timeout), so this waits up to `settleMs` for the count to reach 0.
export async function limiterSlotsLeaked(redis, settleMs = 45000) {
  const count = () => {
    const keys = redis.cli("--scan", "--pattern", "berth:inflight:*").split(/\s+/).filter(Boolean);
    const now = Date.now();
    let n = 0;
    for (const k of keys) n += Number(redis.cli("ZCOUNT", k, `(${now}`, "+inf")) || 0;
    return n;
  };
  const deadline = Date.now() + settleMs;
  let n = count();
  while (n > 0 && Date.now() < deadline) {
    await sleep(1000);
    n = count();
  }
  return n;
}

// Resumes every user once more (after the load stopped) and checks its session and history:
// lost = cannot resume / new session; missing = turns answered >= `marginMs` before `faultAt`
// that are not in the history.
export async function checkSessions(users, faultAt, marginMs) {
  const lost = [];
  let historyMissing = 0;
  for (const u of users.all) {
    if (u.lost) {
      lost.push({ user: u.id, why: u.lost });
      continue;
    }
    u.socket?.close();
    u.socket = null;
    const r = await connect(users.io, users.urls[u.home], u, 30000);
    if (r.error || !r.ready.resumed || r.ready.sessionId !== u.sessionId) {
      lost.push({ user: u.id, why: r.error || `resumed=${r.ready?.resumed}` });
      continue;
    }
    u.socket = r.socket;
    u.ready = r.ready;
    const answeredBefore = u.turns.filter((t) => t.ok && t.end < faultAt - marginMs).length;
    // Each answered tool turn leaves its user message in the history.
    const userMessages = (r.ready.history || []).filter((h) => h.role === "user" && /List all files/.test(h.content || "")).length;
    if (userMessages < answeredBefore) historyMissing += answeredBefore - userMessages;
  }
  return { lost, historyMissing };
}

export function writeJson(file, data) {
  writeFileSync(file, JSON.stringify(data, null, 1));
}

export { sleep, waitFor, existsSync };
