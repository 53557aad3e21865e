// Shared helpers of the socket.io-client end-to-end tests: the server process under test, the
// official client in three transport modes, a raw Engine.IO/Socket.IO client over `ws`, and
// bounded waits on events (every wait has a deadline; nothing sleeps).
//
// Environment:
//   BERTH_E2E_SERVER_CMD  command line that starts the server; it gets PORT (and the timing
//                         defaults below) from the environment. Default: the conformance server
//                         at $BERTH_BUILD_DIR/src/conformance/berth-conformance-server.
//   BERTH_BUILD_DIR       build directory (default build/debug, relative to the repo root).
//   BERTH_E2E_NAMESPACE   Socket.IO namespace serving the test handlers (default "/").
//   BERTH_E2E_SLACK_MS    scheduling slack allowed on timing assertions (default 400).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { after } from 'node:test';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../..');
export const HOST = '127.0.0.1';
export const NAMESPACE = process.env.BERTH_E2E_NAMESPACE || '/';
export const SLACK_MS = Number(process.env.BERTH_E2E_SLACK_MS || 400);
export const SIO_PATH = '/socket.io/';
/** Engine.IO limits the tests assume; the handshake is checked against them (see expectLimits). */
export const PING_INTERVAL_MS = 300;
export const PING_TIMEOUT_MS = 200;
export const MAX_PAYLOAD = 1000000;

/** Transport modes of socket.io-client every scenario runs in. */
export const MODES = {
  polling: { transports: ['polling'] },
  websocket: { transports: ['websocket'] },
  upgrade: {}, // default: polling first, then upgrade to websocket
};

/** The namespace as it appears inside a Socket.IO packet ("" for "/", "/x," otherwise). */
export const NSP_PREFIX = NAMESPACE === '/' ? '' : `${NAMESPACE},`;

function serverCommand() {
  if (process.env.BERTH_E2E_SERVER_CMD) return process.env.BERTH_E2E_SERVER_CMD;
  const build = path.resolve(REPO_ROOT, process.env.BERTH_BUILD_DIR || 'build/debug');
  const bin = path.join(build, 'src/conformance/berth-conformance-server');
  return `'${bin.replaceAll("'", "'\\''")}'`;
}

export class TimeoutError extends Error {}

/** Resolves with `promise`, or rejects after `ms` with a message naming what was awaited. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  const result = Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  // Waits are often started before the action that triggers them and awaited after it; if the
  // test fails in between, a later rejection must not crash the runner as "unhandled".
  result.catch(() => {});
  return result;
}

/**
 * Waits for `event` on an emitter with on/off (socket.io-client Socket/Manager, engine.io-client
 * Socket, Node EventEmitter). Resolves with the event's arguments as an array. Rejects on timeout
 * or, if `failOn` names events, when one of them fires first.
 */
export function waitEvent(emitter, event, ms, failOn = []) {
  const handlers = [];
  const p = new Promise((resolve, reject) => {
    const ok = (...args) => resolve(args);
    emitter.on(event, ok);
    handlers.push([event, ok]);
    for (const bad of failOn) {
      const h = (...args) => reject(new Error(`got "${bad}" while waiting for "${event}": ${fmt(args)}`));
      emitter.on(bad, h);
      handlers.push([bad, h]);
    }
  });
  const result = withTimeout(p, ms, `event "${event}"`).catch((e) => {
    throw new Error(e.message + lostConnection(emitter));
  }).finally(() => {
    for (const [e, h] of handlers) emitter.off(e, h);
  });
  result.catch(() => {});
  return result;
}

function fmt(args) {
  return args.map((a) => (a instanceof Error ? a.message : JSON.stringify(a))).join(', ');
}

/** A free TCP port on 127.0.0.1 (bound to port 0, then released). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, HOST);
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

function tcpConnects(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

const liveServers = new Set();
process.on('exit', () => {
  for (const s of liveServers) s.killNow();
});

/** The server under test, started as its own process group so a kill reaches the whole command. */
export class ServerProcess {
  /** `env`: extra variables for this server only (e.g. the abuse limits a test exercises). */
  constructor(port, env = {}) {
    this.port = port;
    this.env = env;
    this.url = `http://${HOST}:${port}`;
    this.child = null;
    this.output = '';
  }

  async start(timeoutMs = 15000) {
    const env = {
      HOST,
      PING_INTERVAL_MS: String(PING_INTERVAL_MS),
      PING_TIMEOUT_MS: String(PING_TIMEOUT_MS),
      MAX_HTTP_BUFFER_SIZE: String(MAX_PAYLOAD),
      ...process.env,
      ...this.env,
      PORT: String(this.port),
    };
    const child = spawn('/bin/sh', ['-c', `exec ${serverCommand()}`], {
      env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    liveServers.add(this);
    const keep = (chunk) => { this.output = (this.output + chunk.toString()).slice(-65536); };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    this.stopping = false;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => {
      liveServers.delete(this);
      if (!this.stopping) {
        // Every later failure of this file follows from this; say so plainly.
        console.error(`# SERVER EXITED UNEXPECTEDLY (port ${this.port}, code ${code}, signal ${signal}); output:\n${this.output}`);
      }
      resolve({ code, signal });
    }));
    let exitedEarly = false;
    this.exited.then(() => { exitedEarly = true; });
    // Poll the port until it accepts, bounded in count and time; fail fast if the process dies.
    const deadline = performance.now() + timeoutMs;
    for (let i = 0; i < 10000 && performance.now() < deadline; i++) {
      if (exitedEarly) break;
      if (await tcpConnects(this.port)) return this;
      await Promise.race([new Promise((r) => setTimeout(r, 25)), this.exited]);
    }
    const state = exitedEarly ? 'exited' : 'did not listen in time';
    await this.stop();
    throw new Error(`server ${state} (port ${this.port}, command ${serverCommand()}); output:\n${this.output}`);
  }

  killNow() {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
      try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* already gone */ }
    }
  }

  /** Stops the server (SIGTERM, then SIGKILL after 3 s) and waits for the process to exit. */
  async stop(signal = 'SIGTERM') {
    if (!this.child) return;
    this.stopping = true;
    if (this.child.exitCode === null && this.child.signalCode === null) {
      try { process.kill(-this.child.pid, signal); } catch { /* already gone */ }
      try {
        await withTimeout(this.exited, 3000, 'server exit');
      } catch {
        this.killNow();
        await withTimeout(this.exited, 3000, 'server exit after SIGKILL');
      }
    }
  }
}

/** Starts a server for the calling test file and stops it when the file's tests end. */
export async function startServer(env = {}) {
  const server = new ServerProcess(await freePort(), env);
  after(() => server.stop());
  await server.start();
  return server;
}

/** Closes every socket.io-client socket it tracked (use in afterEach/finally). */
export class Clients {
  constructor() { this.sockets = []; }
  track(s) { this.sockets.push(s); return s; }
  closeAll() {
    for (const s of this.sockets.splice(0)) {
      s.io.opts.reconnection = false;
      s.io.reconnection(false);
      s.disconnect();
      s.io.engine?.close();
    }
  }
}

// Browsers reuse HTTP connections for XHR polling; so do the test clients (engine.io-client's
// default for Node is a new TCP connection per request, agent: false).
const keepAliveAgent = new http.Agent({ keepAlive: true });

/** Creates (but does not await) an official socket.io-client socket on the test namespace. */
export function makeClient(server, mode, opts = {}) {
  const socket = io(`${server.url}${NAMESPACE === '/' ? '' : NAMESPACE}`, {
    forceNew: true,
    reconnection: false,
    timeout: 5000,
    agent: keepAliveAgent,
    ...MODES[mode],
    ...opts,
  });
  // Remember why the client lost its connection, for failure messages.
  socket.disconnectReasons = [];
  socket.on('disconnect', (reason, details) => {
    const ctx = details?.context;
    const status = ctx && typeof ctx.status === 'number' ? ` HTTP ${ctx.status} ${ctx.responseText ?? ''}` : '';
    const why = `${details?.description?.message ?? details?.description ?? ''}${status}`.trim();
    socket.disconnectReasons.push(why ? `${reason} (${why})` : reason);
  });
  return socket;
}

function lostConnection(socket) {
  return socket.disconnectReasons?.length ? `; client disconnected: ${socket.disconnectReasons.join(', ')}` : '';
}

/** Waits until `socket` is connected; in "upgrade" mode also until it runs over websocket. */
export async function connected(socket, mode, ms = 5000) {
  if (!socket.connected) await waitEvent(socket, 'connect', ms, ['connect_error']);
  if (mode === 'upgrade') await upgraded(socket, ms);
  return socket;
}

/** Waits until the client's engine runs on the websocket transport (the upgrade happened). */
export async function upgraded(socket, ms = 5000) {
  const engine = socket.io.engine;
  if (engine.transport.name !== 'websocket') await waitEvent(engine, 'upgrade', ms, ['upgradeError']);
  if (engine.transport.name !== 'websocket') throw new Error(`transport is ${engine.transport.name} after upgrade`);
}

/** Asserts the transport a connected socket uses matches its mode (polling stays polling, ...). */
export function transportOf(socket) { return socket.io.engine.transport.name; }

/** Emits and waits for the ack, bounded in time; resolves with all the ack's arguments. */
export function emitAck(socket, ms, event, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...reply) => {
      if (err) reject(new Error(`no ack for "${event}" within ${ms} ms${lostConnection(socket)}`));
      else resolve(reply);
    });
  });
}

/** A client on the test namespace that echoes once: proves the server still serves others. */
export async function assertAlive(socket, tag) {
  const [reply] = await emitAck(socket, 3000, 'message-with-ack', tag);
  if (reply !== tag) throw new Error(`echo returned ${JSON.stringify(reply)}, expected ${tag}`);
}

/**
 * A raw Engine.IO v4 + Socket.IO v5 client over one WebSocket. Keeps every frame in a queue so
 * none is lost, answers pings unless told not to, and records when the server closed it.
 */
export class RawClient {
  constructor(server, { answerPings = true, query = '' } = {}) {
    this.answerPings = answerPings;
    this.frames = [];
    this.waiters = [];
    this.pings = [];
    this.pingWaiters = [];
    this.lastAlive = null; // performance.now() of the handshake, then of each pong we sent
    this.ws = new WebSocket(`ws://${HOST}:${server.port}${SIO_PATH}?EIO=4&transport=websocket${query}`);
    this.ws.on('message', (data, isBinary) => this.#onFrame(isBinary ? Buffer.from(data) : data.toString()));
    this.ws.on('error', (err) => { this.error = err; });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => {
      resolve({ code, reason: reason.toString(), at: performance.now() });
    }));
  }

  #onFrame(frame) {
    if (frame === '2') {
      this.pings.push(performance.now());
      if (this.answerPings && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send('3');
        this.lastAlive = performance.now();
      }
      for (const w of this.pingWaiters.filter((x) => this.pings.length >= x.n)) {
        this.pingWaiters.splice(this.pingWaiters.indexOf(w), 1);
        w.resolve(this.pings.length);
      }
      return;
    }
    const i = this.waiters.findIndex((w) => w.match(frame));
    if (i >= 0) this.waiters.splice(i, 1)[0].resolve(frame);
    else this.frames.push(frame);
  }

  /** Resolves once the server has sent `n` pings in total. */
  pingCount(n, ms) {
    if (this.pings.length >= n) return Promise.resolve(this.pings.length);
    const p = new Promise((resolve, reject) => {
      this.pingWaiters.push({ n, resolve });
      this.closed.then((c) => reject(new Error(`connection closed (code ${c.code}) after ${this.pings.length} pings`)));
    });
    return withTimeout(p, ms, `${n} pings`);
  }

  /** The next frame matching `match` (already queued or still to come). */
  next(match, ms, what) {
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    const p = new Promise((resolve, reject) => {
      const w = { match, resolve };
      this.waiters.push(w);
      this.closed.then((c) => reject(new Error(`connection closed (code ${c.code}) while waiting for ${what}`)));
    });
    return withTimeout(p, ms, what);
  }

  /** Engine.IO open packet, then Socket.IO CONNECT to the test namespace. */
  async handshake(auth = undefined) {
    await withTimeout(once(this.ws, 'open'), 3000, 'websocket open');
    const open = await this.next((f) => typeof f === 'string' && f.startsWith('0'), 3000, 'Engine.IO open packet');
    this.lastAlive = performance.now();
    this.engine = JSON.parse(open.slice(1));
    this.send(`40${NSP_PREFIX}${auth === undefined ? '' : JSON.stringify(auth)}`);
    const ack = await this.next((f) => typeof f === 'string' && f.startsWith(`40${NSP_PREFIX}`), 3000, 'CONNECT reply');
    this.sid = JSON.parse(ack.slice(2 + NSP_PREFIX.length)).sid;
    return this;
  }

  send(data, opts = {}) { this.ws.send(data, opts); }

  /** Resolves with the close record if the server closes within `ms`, else rejects. */
  closedWithin(ms, what) { return withTimeout(this.closed, ms, what); }

  close() { if (this.ws.readyState !== WebSocket.CLOSED) this.ws.terminate(); }
}

/** Plain HTTP against the polling transport. */
export async function pollingRequest(server, method, query, body, ms = 5000) {
  const res = await withTimeout(fetch(`${server.url}${SIO_PATH}?EIO=4&transport=polling${query}`, {
    method,
    body,
    headers: body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' },
  }), ms, `${method} ${query || 'handshake'}`);
  return { status: res.status, text: await withTimeout(res.text(), ms, 'response body') };
}

/** Checks the Engine.IO handshake advertises the limits the timing assertions assume. */
export function expectLimits(handshake) {
  const bad = [];
  if (handshake.pingInterval !== PING_INTERVAL_MS) bad.push(`pingInterval ${handshake.pingInterval}`);
  if (handshake.pingTimeout !== PING_TIMEOUT_MS) bad.push(`pingTimeout ${handshake.pingTimeout}`);
  if (handshake.maxPayload !== MAX_PAYLOAD) bad.push(`maxPayload ${handshake.maxPayload}`);
  if (bad.length) {
    throw new Error(`server limits differ from the test contract (${PING_INTERVAL_MS}/${PING_TIMEOUT_MS}/${MAX_PAYLOAD}): ${bad.join(', ')}`);
  }
}

/**
 * A raw Engine.IO polling session: handshake, then at once a long-poll loop that answers pings
 * (unless answerPings is false) and queues every other packet. `polling` resolves with how the
 * loop ended ({status, text, at} of the last GET, or {error, at}).
 */
export class RawPolling {
  constructor(server, { answerPings = true } = {}) {
    this.server = server;
    this.answerPings = answerPings;
    this.packets = [];
    this.waiters = [];
    this.pings = [];
  }

  async open() {
    const hs = await pollingRequest(this.server, 'GET', '');
    if (hs.status !== 200) throw new Error(`handshake: ${hs.status} ${hs.text}`);
    this.openedAt = performance.now();
    this.lastAlive = this.openedAt;
    this.engine = JSON.parse(hs.text.slice(1));
    this.q = `&sid=${encodeURIComponent(this.engine.sid)}`;
    this.polling = this.#loop();
    this.polling.catch(() => {});
    return this;
  }

  /** Ends the GET loop after the GET in flight (e.g. once the session upgraded). */
  stop() { this.stopped = true; }

  /** POSTs one after the other, as engine.io-client does (concurrent POSTs close a session). */
  post(body, ms = 5000) {
    const run = () => pollingRequest(this.server, 'POST', this.q, body, ms);
    const p = (this.lastPost ?? Promise.resolve()).then(run, run);
    this.lastPost = p.catch(() => {});
    return p;
  }

  get(ms = 5000) { return pollingRequest(this.server, 'GET', this.q, undefined, ms); }

  async #loop() {
    for (let i = 0; i < 10000; i++) {
      let r;
      try {
        r = await this.get(10000);
      } catch (e) {
        return { error: e.message, at: performance.now() };
      }
      r.at = performance.now();
      if (r.status !== 200) return r;
      const packets = r.text.split('\x1e');
      for (const p of packets) {
        if (p === '2') {
          this.pings.push(r.at);
          if (this.answerPings && !this.stopped) {
            this.lastAlive = performance.now();
            this.post('3').catch(() => {});
          }
        } else {
          const w = this.waiters.findIndex((x) => x.match(p));
          if (w >= 0) this.waiters.splice(w, 1)[0].resolve(p);
          else this.packets.push(p);
        }
      }
      if (packets.includes('1') || this.stopped) return r;
    }
    return { error: 'poll loop bound reached', at: performance.now() };
  }

  /** The next packet matching `match` received by the GET loop. */
  next(match, ms, what) {
    const i = this.packets.findIndex(match);
    if (i >= 0) return Promise.resolve(this.packets.splice(i, 1)[0]);
    return withTimeout(new Promise((resolve) => this.waiters.push({ match, resolve })), ms, what);
  }
}

/**
 * One HTTP request with node:http (unlike fetch it can pick the source address: the tests play a
 * second client from 127.0.0.2, another loopback address). Resolves with {status, headers, text}.
 */
export function rawHttp(server, { method = 'GET', path = SIO_PATH, query = '', headers = {}, body, localAddress } = {}, ms = 5000) {
  const p = new Promise((resolve, reject) => {
    const req = http.request({
      host: HOST, port: server.port, method, path: `${path}?EIO=4&transport=polling${query}`, localAddress,
      headers: { ...(body === undefined ? {} : { 'content-type': 'text/plain;charset=UTF-8' }), ...headers },
      agent: false,
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
  return withTimeout(p, ms, `${method} ${query || 'handshake'}`);
}

/** Waits until `check()` is true, polling every `everyMs`, at most `ms`; rejects naming `what`. */
export async function eventually(check, ms, what, everyMs = 20) {
  const deadline = performance.now() + ms;
  for (let i = 0; i < 100000; i++) {
    if (await check()) return;
    if (performance.now() > deadline) break;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new TimeoutError(`timed out after ${ms} ms waiting for ${what}`);
}
