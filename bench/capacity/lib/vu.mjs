// One virtual user of the capacity harness, on the official socket.io-client (one Engine.IO
// connection per user, many users per process).
//
// guideUser: the deployment guide's Artillery flow — connect, wait for `system:ready`, emit
// `message` "List all files in /workspace" (ack {ok:true}), wait for `tool:approval_required` and
// take its callId, think THINK_MS, emit `tool:approval {callId, approved:true}` (ack), wait for
// `tool:output` of that callId and `agent:response`, then disconnect WITHOUT `session:end` (what
// the guide's scenario and every closed browser tab do: the server keeps the session for a
// resume).
//
// heldUser (concurrency mode): connect, wait for `system:ready`, then one such tool turn every
// interval until told to stop; then disconnect (also without `session:end`).
//
// Every wait has a deadline; a failure is reported once with a short code:
//   CONNECT_ERROR_<data.code | message>   connect_error (handshake refused, transport error)
//   <agent:error code>                    e.g. POOL_EXHAUSTED, SANDBOX_UNAVAILABLE
//   DISCONNECTED_<reason>                 the socket closed before the flow was over
//   TIMEOUT_<event>                       an awaited server event did not come in time
//   ACK_<code> / ACK_TIMEOUT_<event>      an emit was refused / not acknowledged in time
//   NO_TOOL_CALL, TOOL_IS_ERROR           the turn did not run the tool
import { performance } from "node:perf_hooks";

export const PROMPT = "List all files in /workspace";

const WATCHED = new Set(["system:ready", "tool:approval_required", "tool:output", "agent:response", "agent:error"]);
const INBOX_CAP = 32; // events nobody waits for yet; a well-behaved turn never holds more than a few

export class FlowError extends Error {
  constructor(code, detail = "") {
    super(detail ? `${code}: ${detail}` : code);
    this.code = code;
  }
}

// Short, stable error codes: server texts carry ids, the report groups by code.
function codeOf(text) {
  return String(text ?? "UNKNOWN").replace(/[^A-Za-z0-9]+/g, "_").replace(/^_|_$/g, "").slice(0, 40) || "UNKNOWN";
}

// Records the server events of one socket from its creation on, so a wait set up after an event
// arrived still sees it (the server may send tool:output and agent:response in one tick).
class Inbox {
  constructor(socket) {
    this.events = [];
    this.waiters = [];
    this.closed = null; // the disconnect / connect_error entry, once it happened
    this.queued = false;
    socket.onAny((event, ...args) => {
      if (event === "system:queued") this.queued = true;
      if (WATCHED.has(event)) this.deliver({ event, payload: args[0], at: performance.now() });
    });
    socket.on("disconnect", (reason) => this.close({ event: "$disconnect", payload: reason, at: performance.now() }));
    socket.on("connect_error", (err) => this.close({ event: "$connect_error", payload: err, at: performance.now() }));
  }

  close(entry) {
    if (this.closed) return;
    this.closed = entry;
    for (const w of this.waiters.splice(0)) w.settle(entry);
  }

  deliver(entry) {
    const i = this.waiters.findIndex((w) => w.accepts(entry));
    if (i >= 0) return this.waiters.splice(i, 1)[0].settle(entry);
    this.events.push(entry);
    if (this.events.length > INBOX_CAP) this.events.shift();
  }

  // Resolves with the first event `name` (matching pred) not yet taken; rejects with a FlowError
  // on an event of failOn, on disconnect, or after timeoutMs.
  waitFor(name, { pred = () => true, failOn = ["agent:error"], timeoutMs }) {
    const accepts = (e) => (e.event === name && pred(e.payload)) || failOn.includes(e.event);
    const verdict = (e) => {
      if (e.event === name) return e;
      if (e.event === "$disconnect") throw new FlowError(`DISCONNECTED_${codeOf(e.payload)}`, `before ${name}`);
      if (e.event === "$connect_error") throw connectError(e.payload);
      if (e.event === "agent:error") throw new FlowError(codeOf(e.payload?.code), `before ${name}: ${String(e.payload?.message ?? "").slice(0, 120)}`);
      if (e.event === "agent:response") throw new FlowError("NO_TOOL_CALL", "agent:response without tool:approval_required");
      throw new FlowError(`UNEXPECTED_${codeOf(e.event)}`, `before ${name}`);
    };
    const seen = this.events.findIndex(accepts);
    if (seen >= 0) return Promise.resolve(this.events.splice(seen, 1)[0]).then(verdict);
    if (this.closed) return Promise.resolve(this.closed).then(verdict);
    return new Promise((resolve, reject) => {
      const waiter = {
        accepts,
        settle: (e) => {
          clearTimeout(timer);
          try {
            resolve(verdict(e));
          } catch (err) {
            reject(err);
          }
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new FlowError(`TIMEOUT_${codeOf(name)}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}

function connectError(err) {
  return new FlowError(`CONNECT_ERROR_${codeOf(err?.data?.code ?? err?.message)}`, String(err?.message ?? "").slice(0, 120));
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function connect(io, url, opt) {
  return io(url, {
    path: opt.path ?? "/socket.io/",
    // websocket only (cheapest), or polling first then the upgrade, as a browser does
    transports: opt.transport === "polling-upgrade" ? ["polling", "websocket"] : ["websocket"],
    forceNew: true, // one Engine.IO connection (one session, one container) per user
    reconnection: false,
    timeout: opt.connectTimeoutMs,
  });
}

async function emitAcked(socket, inbox, event, payload, timeoutMs) {
  if (inbox.closed) throw new FlowError(`DISCONNECTED_${codeOf(inbox.closed.payload)}`, `before emitting ${event}`);
  let ack;
  try {
    ack = await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch {
    if (inbox.closed) throw new FlowError(`DISCONNECTED_${codeOf(inbox.closed.payload)}`, `waiting for the ${event} ack`);
    throw new FlowError(`ACK_TIMEOUT_${codeOf(event)}`);
  }
  if (!ack?.ok) throw new FlowError(`ACK_${codeOf(ack?.code)}`, `${event}: ${String(ack?.message ?? "").slice(0, 120)}`);
}

// One tool turn: message -> tool:approval_required -> think -> tool:approval -> tool:output
// (same callId) + agent:response. Adds its timings to rec.
async function toolTurn(socket, inbox, opt, rec) {
  const tMsg = performance.now();
  await emitAcked(socket, inbox, "message", PROMPT, opt.turnTimeoutMs);
  rec.sample("ack_ms", performance.now() - tMsg);
  const required = await inbox.waitFor("tool:approval_required", { timeoutMs: opt.turnTimeoutMs, failOn: ["agent:error", "agent:response"] });
  const callId = required.payload?.callId;
  if (typeof callId !== "string" || !callId) throw new FlowError("NO_CALL_ID", "tool:approval_required without callId");
  rec.sample("approval_wait_ms", required.at - tMsg);
  if (opt.thinkMs > 0) await sleep(opt.thinkMs);
  const tApproval = performance.now();
  await emitAcked(socket, inbox, "tool:approval", { callId, approved: true }, opt.turnTimeoutMs);
  const output = await inbox.waitFor("tool:output", { pred: (p) => p?.callId === callId, timeoutMs: opt.turnTimeoutMs });
  if (output.payload?.isError) throw new FlowError("TOOL_IS_ERROR", String(output.payload?.content ?? "").slice(0, 120));
  rec.sample("tool_ms", output.at - tApproval);
  const response = await inbox.waitFor("agent:response", { timeoutMs: opt.turnTimeoutMs });
  rec.sample("answer_ms", response.at - tApproval);
  rec.sample("turn_ms", response.at - tMsg);
}

// The guide's user. rec: {started(), ready(ms, info), completed(), failed(code), sample(name, ms),
// queued()}. Resolves when the user is gone; never rejects.
export async function guideUser(io, url, opt, rec) {
  const t0 = performance.now();
  rec.started();
  const socket = connect(io, url, opt);
  const inbox = new Inbox(socket);
  try {
    const ready = await inbox.waitFor("system:ready", { timeoutMs: opt.readyTimeoutMs });
    rec.ready(ready.at - t0, ready.payload);
    await toolTurn(socket, inbox, opt, rec);
    rec.completed();
  } catch (err) {
    rec.failed(err instanceof FlowError ? err.code : `INTERNAL_${codeOf(err?.message)}`, err?.message);
  } finally {
    if (inbox.queued) rec.queued();
    socket.disconnect(); // no session:end: the guide's flow, a closed tab
  }
}

// A user held connected for the concurrency mode: ready, then a tool turn every intervalMs
// (the first after a random offset, so N users do not all send at once) until stop() resolves.
export async function heldUser(io, url, opt, rec, stopped) {
  const t0 = performance.now();
  rec.started();
  const socket = connect(io, url, opt);
  const inbox = new Inbox(socket);
  let stop = false;
  stopped.then(() => (stop = true));
  try {
    const ready = await inbox.waitFor("system:ready", { timeoutMs: opt.readyTimeoutMs });
    rec.ready(ready.at - t0, ready.payload);
    let wait = Math.random() * opt.intervalMs;
    while (!stop) {
      await Promise.race([sleep(wait), stopped]);
      if (stop) break;
      if (inbox.closed) throw new FlowError(`DISCONNECTED_${codeOf(inbox.closed.payload)}`, "while held");
      const t = performance.now();
      await toolTurn(socket, inbox, opt, rec);
      rec.turn();
      wait = Math.max(0, opt.intervalMs - (performance.now() - t));
    }
    rec.completed();
  } catch (err) {
    rec.failed(err instanceof FlowError ? err.code : `INTERNAL_${codeOf(err?.message)}`, err?.message);
  } finally {
    if (inbox.queued) rec.queued();
    socket.disconnect();
  }
}
