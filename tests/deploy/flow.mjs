// Tool flow through nginx for tests/deploy/compose_e2e.sh, with the official socket.io-client.
// Phases: connect (polling-only and websocket-only clients) -> full tool flow (write a file,
// approve, read it back, approve) -> run $KILL_CMD with VICTIM_ROUTE = the sid prefix of client
// 0's replica (kills that replica) -> reconnect its clients with sessionId + resumeToken -> expect
// system:ready{resumed:true} with the same containerId on a different replica, the other clients
// untouched -> read every file again (same containers). Prints one line per check, a JSON summary line ("SUMMARY {...}") for
// the shell, and 'N passed, N failed'. Exit 0 only if every check passed.
// Env: BERTH_URL (http://127.0.0.1:3000), POLLING_CLIENTS (2), WS_CLIENTS (2), KILL_CMD (none:
// skip the kill phase), STEP_TIMEOUT_MS (60000), HISTORY_LEN_CMD (none: skip; a command that
// prints the length of a session's history list when given its key, run before sessions end).
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
function loadClient() {
  for (const dir of ['tests/e2e', 'client', 'tests/deploy']) {
    try { return createRequire(path.join(root, dir, 'package.json'))('socket.io-client'); } catch { /* next */ }
  }
  throw new Error('socket.io-client not found: npm ci in tests/e2e (or client)');
}
const { io } = loadClient();

const url = process.env.BERTH_URL || 'http://127.0.0.1:3000';
const nPolling = Number(process.env.POLLING_CLIENTS || 2);
const nWs = Number(process.env.WS_CLIENTS || 2);
const stepMs = Number(process.env.STEP_TIMEOUT_MS || 60000);
const killCmd = process.env.KILL_CMD || '';
const historyLenCmd = process.env.HISTORY_LEN_CMD || '';
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) { passed++; console.log(`ok: ${what}`); } else { failed++; console.log(`FAILED: ${what}`); } };

function waitFor(sock, event, pred = () => true, ms = stepMs) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { sock.off(event, on); reject(new Error(`timeout waiting for ${event}`)); }, ms);
    const on = (payload) => { if (pred(payload)) { clearTimeout(t); sock.off(event, on); resolve(payload); } };
    sock.on(event, on);
    sock.once('connect_error', (e) => { clearTimeout(t); sock.off(event, on); reject(new Error(`connect_error: ${e.message}`)); });
  });
}

function connect(transport, query = {}, auth = {}) {
  const sock = io(url, { transports: [transport], upgrade: false, reconnection: false, forceNew: true, query, auth, timeout: stepMs });
  const errors = [];
  sock.on('agent:error', (e) => errors.push(e));
  return { sock, errors, ready: waitFor(sock, 'system:ready') };
}

// One approved tool call: send text, approve the call it proposes, wait for output and response.
async function toolTurn(c, text) {
  const approval = waitFor(c.sock, 'tool:approval_required');
  const response = waitFor(c.sock, 'agent:response');
  const output = waitFor(c.sock, 'tool:output');
  c.sock.emit('message', text);
  const req = await approval;
  c.sock.emit('tool:approval', { callId: req.callId, approved: true });
  const out = await output;
  await response;
  return { req, out };
}

async function health() {
  const r = await fetch(`${url}/health`);
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function flow(c, tag) {
  const w = await toolTurn(c, `write ${tag} to notes-${tag}.txt`);
  const r = await toolTurn(c, `read notes-${tag}.txt`);
  return !w.out.isError && w.out.callId === w.req.callId && !r.out.isError && String(r.out.content).includes(tag);
}

const clients = [];
try {
  const h0 = await health();
  check(h0.status === 200 && h0.body.status === 'ok', `GET /health through nginx: ${h0.status} replica=${h0.body.replica}`);
  const specs = [...Array(nPolling).fill('polling'), ...Array(nWs).fill('websocket')];
  for (const [i, transport] of specs.entries()) {
    const c = connect(transport);
    c.transport = transport; c.tag = `t${process.pid}x${i}`;
    clients.push(c);
  }
  for (const c of clients) c.info = await c.ready;
  check(clients.every((c) => c.info.sessionId && c.info.containerId && c.info.resumed === false),
    `${clients.length} clients got system:ready (${nPolling} polling-only, ${nWs} websocket)`);
  const flows = await Promise.all(clients.map((c) => flow(c, c.tag)));
  for (const [i, c] of clients.entries()) check(flows[i], `${c.transport} client ${i}: write+read tool flow`);
  check(clients.every((c) => c.sock.io.engine.transport.name === c.transport), 'transports stayed as requested');

  // Each replica prefixes its Engine.IO sids with its route key (8 hex): the replica a client is on.
  const routeOf = (sock) => String(sock.io.engine.id || '').slice(0, 8);
  const routes = clients.map((c) => routeOf(c.sock));
  console.log(`clients per replica route: ${JSON.stringify(routes.reduce((m, r) => ({ ...m, [r]: (m[r] || 0) + 1 }), {}))}`);
  if (killCmd) {
    const victim = routes[0];
    const hit = clients.filter((c, i) => routes[i] === victim);
    const spared = clients.filter((c, i) => routes[i] !== victim);
    const closed = hit.map((c) => waitFor(c.sock, 'disconnect', () => true, stepMs));
    execSync(killCmd, { stdio: 'inherit', env: { ...process.env, VICTIM_ROUTE: victim } });
    await Promise.all(closed);
    check(true, `replica with route ${victim} killed; its ${hit.length} client(s) saw disconnect`);
    check(spared.every((c) => c.sock.connected), `${spared.length} client(s) on other replicas stayed connected`);
    // Reconnect (bounded) until nginx routes to a live replica and the session resumes.
    for (const c of hit) {
      let info = null, lastErr = '';
      const deadline = Date.now() + stepMs;
      while (!info && Date.now() < deadline) {
        const n = connect(c.transport, { sessionId: c.info.sessionId }, { resumeToken: c.info.resumeToken });
        try { info = await n.ready; c.next = n; } catch (e) { lastErr = e.message; n.sock.close(); await new Promise((r) => setTimeout(r, 500)); }
      }
      check(info && info.resumed === true && info.sessionId === c.info.sessionId && info.containerId === c.info.containerId,
        `${c.transport} client resumed the same session and container${info ? '' : ` (${lastErr})`}`);
      if (c.next) check(routeOf(c.next.sock) !== victim, `now served by replica route ${routeOf(c.next.sock)} (was ${victim})`);
    }
    const again = await Promise.all(clients.map(async (c) => {
      const r = await toolTurn(c.next || c, `read notes-${c.tag}.txt`);
      return !r.out.isError && String(r.out.content).includes(c.tag);
    }));
    check(again.every(Boolean), 'files written before the kill are read back after it (resumed and spared clients)');
  }
  check(clients.every((c) => c.errors.length === 0 && (!c.next || c.next.errors.length === 0)), 'no agent:error');
  if (historyLenCmd) {
    for (const c of clients.filter((x) => x.info)) {
      const n = Number(execSync(`${historyLenCmd} "berth:history:{${c.info.sessionId}}"`).toString().trim());
      check(n > 0, `history of ${c.info.sessionId} is in Redis (${n} messages)`);
    }
  }
} catch (e) {
  check(false, `flow aborted: ${e.message}`);
} finally {
  console.log('SUMMARY ' + JSON.stringify({ sessions: clients.filter((c) => c.info).map((c) => c.info.sessionId) }));
  // End every session so its container is destroyed now (bounded wait for the ack).
  await Promise.all(clients.map(async (c) => {
    const live = c.next ? c.next.sock : c.sock;
    if (live.connected) { try { await live.timeout(5000).emitWithAck('session:end'); } catch { /* reported by the shell's leftover check */ } }
    c.sock.close(); if (c.next) c.next.sock.close();
  }));
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
