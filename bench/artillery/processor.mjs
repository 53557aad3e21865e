// Processor for scenario.yml (Artillery 2, built-in `socketio` engine = socket.io-client 4.x,
// i.e. Engine.IO v4 / Socket.IO v5).
//
// The YAML emits `message` and `tool:approval` (with the captured `{{ callId }}`) and checks their
// acks. This file does what the YAML cannot express:
//   - wait for server-initiated events: `system:ready` (sent after the connect), then
//     `tool:approval_required` (capture callId), `tool:output` and `agent:response`. The engine's
//     `emit: ... response:` form cannot be used for them: in Artillery 2.0.x a `response` without
//     `data` to compare only completes when `config.timeout` expires, and a listener set up in
//     a later step could miss an event that arrived in the same tick as the previous one;
//   - fail fast on `agent:error` (counted as berth.agent_error.<CODE>);
//   - end the session so its container is destroyed rather than kept for resume;
//   - custom metrics (histograms, ms) and counters:
//       berth.ready_ms          socket created -> system:ready (handshake + container + MCP open)
//       berth.approval_wait_ms  message emitted -> tool:approval_required
//       berth.tool_roundtrip_ms tool:approval emitted -> tool:output (the approved call's run)
//       berth.turn_ms           message emitted -> agent:response (the whole tool turn)
//       berth.turns_ok, berth.tool_is_error, berth.queued (VUs that got system:queued at least
//       once: the pool was at max), berth.agent_error.<CODE>,
//       berth.session_end_timeout
//
// Every socket the engine opens gets an inbox (its `onevent` is wrapped when the socket is
// created, before it connects), so no server event can be missed between two flow steps.
// Timeouts (env, ms): READY_TIMEOUT_MS 30000, TURN_TIMEOUT_MS 30000 (each awaited event of the
// turn), END_ACK_TIMEOUT_MS 5000. KEEP_SESSIONS=1 skips session:end.
import { performance } from 'node:perf_hooks';
import { Manager } from 'socket.io-client';

const INBOX = Symbol.for('berth.bench.inbox');
const PATCHED = Symbol.for('berth.bench.patched');

const READY_TIMEOUT_MS = Number(process.env.READY_TIMEOUT_MS || 30000);
const TURN_TIMEOUT_MS = Number(process.env.TURN_TIMEOUT_MS || 30000);
const END_ACK_TIMEOUT_MS = Number(process.env.END_ACK_TIMEOUT_MS || 5000);
const KEEP_SESSIONS = process.env.KEEP_SESSIONS === '1';

// The engine imports the same ESM build of socket.io-client, so patching its Manager here
// reaches the sockets the engine creates.
if (!Manager.prototype[PATCHED]) {
  const original = Manager.prototype.socket;
  Manager.prototype.socket = function patchedSocket(...args) {
    const socket = original.apply(this, args);
    if (!socket[INBOX]) {
      const inbox = { createdAt: performance.now(), events: [], waiters: [], ee: null };
      socket[INBOX] = inbox;
      // Record every incoming event before any listener runs. The engine replaces `onevent`
      // (socketio-wildcard, which also bypasses `onAny`), so wrap whatever is assigned to it.
      let current = socket.onevent;
      Object.defineProperty(socket, 'onevent', {
        configurable: true,
        get() {
          return recordingOnevent;
        },
        set(fn) {
          current = fn;
        }
      });
      function recordingOnevent(packet) {
        const [event, ...payload] = packet.data || [];
        deliver(inbox, event, payload);
        return current.call(this, packet);
      }
      socket.on('disconnect', (reason) => deliver(inbox, '$disconnect', [reason]));
    }
    return socket;
  };
  Manager.prototype[PATCHED] = true;
}

function deliver(inbox, event, payload) {
  const entry = { event, payload, at: performance.now(), used: false };
  inbox.events.push(entry);
  if (event === 'agent:error' && inbox.ee) {
    inbox.ee.emit('counter', `berth.agent_error.${payload[0]?.code ?? 'UNKNOWN'}`, 1);
  }
  if (event === 'system:queued' && inbox.ee && !inbox.queuedCounted) {
    inbox.queuedCounted = true;
    inbox.ee.emit('counter', 'berth.queued', 1);
  }
  for (const w of inbox.waiters.slice()) {
    if (w.test(entry)) {
      inbox.waiters.splice(inbox.waiters.indexOf(w), 1);
      entry.used = true;
      w.resolve(entry);
      break;
    }
  }
}

function socketOf(context) {
  const socket = context.sockets?.[''];
  if (!socket || !socket[INBOX]) throw new Error('no socket.io connection (or inbox) for this VU');
  return socket;
}

// Resolves with the first unconsumed event `name` (matching `pred`), already received or future.
// Rejects on disconnect, on `failOn` events, or after timeoutMs.
function waitFor(socket, name, { pred = () => true, timeoutMs, failOn = [] }) {
  const inbox = socket[INBOX];
  const test = (e) => !e.used && (e.event === name ? pred(e.payload) : e.event === '$disconnect' || failOn.includes(e.event));
  const done = (entry) => {
    if (entry.event === name) return entry;
    if (entry.event === '$disconnect') throw new Error(`disconnected before ${name} (${entry.payload[0]})`);
    // Only the code: the report's error counters are keyed by message, and server messages
    // carry ids (container ids, ...). The server logs the full text.
    throw new Error(`${entry.event} ${entry.payload[0]?.code ?? 'UNKNOWN'} before ${name}`);
  };
  const seen = inbox.events.find(test);
  if (seen) {
    seen.used = true;
    return Promise.resolve(seen).then(done);
  }
  return new Promise((resolve, reject) => {
    const waiter = { test, resolve: (e) => { clearTimeout(timer); try { resolve(done(e)); } catch (err) { reject(err); } } };
    const timer = setTimeout(() => {
      inbox.waiters.splice(inbox.waiters.indexOf(waiter), 1);
      reject(new Error(`timeout waiting for ${name}`));
    }, timeoutMs);
    inbox.waiters.push(waiter);
  });
}

// A failed step fails the VU; its reason is counted under errors.<message> in the report.
function reported(fn) {
  return async (context, events) => {
    try {
      await fn(context, events);
    } catch (err) {
      events.emit('error', err.message);
      throw err;
    }
  };
}

// Flow step 1: the server sends system:ready once the session has its container.
export const waitReady = reported(async (context, events) => {
  const socket = socketOf(context);
  const inbox = socket[INBOX];
  inbox.ee = events;
  // Errors that came before we had the emitter.
  for (const e of inbox.events) {
    if (e.event === 'agent:error') events.emit('counter', `berth.agent_error.${e.payload[0]?.code ?? 'UNKNOWN'}`, 1);
    if (e.event === 'system:queued' && !inbox.queuedCounted) {
      inbox.queuedCounted = true;
      events.emit('counter', 'berth.queued', 1);
    }
  }
  const ready = await waitFor(socket, 'system:ready', { timeoutMs: READY_TIMEOUT_MS });
  const info = ready.payload[0] || {};
  if (!info.sessionId || !info.containerId) throw new Error('system:ready without sessionId/containerId');
  context.vars.sessionId = info.sessionId;
  context.vars.containerId = info.containerId;
  events.emit('histogram', 'berth.ready_ms', ready.at - inbox.createdAt);
});

// Flow step 2, just before the YAML emits `message`.
export const markTurnStart = reported(async (context) => {
  context.vars.$turnStart = performance.now();
});

// Flow step 4 (after the YAML's `message` emit was acked): wait for tool:approval_required and
// capture its callId (and tool name) for the YAML's `tool:approval` emit. This capture is the
// seed scenario's missing piece.
export const captureCallId = reported(async (context, events) => {
  const socket = socketOf(context);
  const required = await waitFor(socket, 'tool:approval_required', { timeoutMs: TURN_TIMEOUT_MS, failOn: ['agent:error'] });
  const call = required.payload[0] || {};
  if (typeof call.callId !== 'string' || call.callId.length === 0) {
    throw new Error('tool:approval_required without callId');
  }
  context.vars.callId = call.callId;
  context.vars.toolName = call.name;
  events.emit('histogram', 'berth.approval_wait_ms', required.at - context.vars.$turnStart);
  context.vars.$approvalAt = performance.now(); // the YAML emits tool:approval right after this step
});

// Flow step 6 (after the YAML's `tool:approval` emit was acked): tool:output for that callId,
// then agent:response, which ends the turn.
export const waitAnswer = reported(async (context, events) => {
  const socket = socketOf(context);
  const callId = context.vars.callId;
  const output = await waitFor(socket, 'tool:output', {
    pred: (p) => p[0]?.callId === callId,
    timeoutMs: TURN_TIMEOUT_MS,
    failOn: ['agent:error']
  });
  const out = output.payload[0];
  if (out.isError) {
    events.emit('counter', 'berth.tool_is_error', 1);
    throw new Error(`tool:output isError for ${out.name}`);
  }
  events.emit('histogram', 'berth.tool_roundtrip_ms', output.at - context.vars.$approvalAt);
  const response = await waitFor(socket, 'agent:response', { timeoutMs: TURN_TIMEOUT_MS, failOn: ['agent:error'] });
  if (typeof response.payload[0] !== 'string') throw new Error('agent:response is not a string');
  events.emit('histogram', 'berth.turn_ms', response.at - context.vars.$turnStart);
  events.emit('counter', 'berth.turns_ok', 1);
});

// Last step: `session:end` destroys the container now (otherwise it is kept idle for
// SESSION_IDLE_TIMEOUT_MS for a resume, and a long run would exhaust the pool). KEEP_SESSIONS=1 skips it.
export const endSession = reported(async (context, events) => {
  if (KEEP_SESSIONS) return;
  const socket = socketOf(context);
  if (!socket.connected) return;
  try {
    const ack = await socket.timeout(END_ACK_TIMEOUT_MS).emitWithAck('session:end');
    if (!ack?.ok) events.emit('counter', `berth.session_end_refused.${ack?.code ?? 'UNKNOWN'}`, 1);
  } catch {
    events.emit('counter', 'berth.session_end_timeout', 1);
  }
});
