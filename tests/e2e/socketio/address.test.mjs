// Client addresses (docs/HARDENING.md): an Engine.IO sid is honoured only from the address that
// opened the session (a stolen sid used from elsewhere cannot poll, post, or take the transport
// over with an upgrade probe), X-Forwarded-For counts only from a trusted proxy, and the
// per-address limits (open sessions, new sessions per minute, TCP connections).
// A second client address is played from 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux).
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, test } from 'node:test';
import WebSocket from 'ws';
import {
  Clients, HOST, NSP_PREFIX, SIO_PATH, assertAlive, connected, eventually, makeClient, rawHttp, startServer,
  transportOf, waitEvent, withTimeout,
} from './lib.mjs';

const OTHER = '127.0.0.2';
/** The server's log reaches us through a pipe that may lag behind the socket: wait for the line. */
const logged = (server, re) => eventually(() => re.test(server.output), 3000, `the server to log ${re}`);
const clients = new Clients();
const sockets = [];
afterEach(() => {
  clients.closeAll();
  for (const s of sockets.splice(0)) s.terminate ? s.terminate() : s.destroy();
});

/** A websocket to the Engine.IO endpoint; resolves with {status} for a refused upgrade, {ws} for an open one. */
function openWs(server, query, { localAddress, headers } = {}) {
  const ws = new WebSocket(`ws://${HOST}:${server.port}${SIO_PATH}?EIO=4&transport=websocket${query}`, { localAddress, headers });
  sockets.push(ws);
  ws.on('error', () => {});
  const p = new Promise((resolve) => {
    ws.once('unexpected-response', (req, res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    ws.once('open', () => resolve({ ws }));
  });
  return withTimeout(p, 5000, `websocket ${query}`);
}

async function handshake(server, opts = {}) {
  const res = await rawHttp(server, opts);
  assert.equal(res.status, 200, `handshake answered ${res.status} ${res.text}`);
  return JSON.parse(res.text.slice(1)).sid;
}

const server = await startServer();

describe('a stolen sid', () => {
  test('cannot poll or post from another address; the owner is not disturbed', { timeout: 10000 }, async () => {
    const sid = await handshake(server);
    const q = `&sid=${encodeURIComponent(sid)}`;
    const get = await rawHttp(server, { query: q, localAddress: OTHER });
    assert.equal(get.status, 403, `GET with a stolen sid answered ${get.status} ${get.text}`);
    assert.deepEqual(JSON.parse(get.text), { code: 4, message: 'Forbidden' });
    const post = await rawHttp(server, { method: 'POST', query: q, body: `40${NSP_PREFIX}`, localAddress: OTHER });
    assert.equal(post.status, 403);
    // The owner still uses its session: CONNECT, then its GET gets the CONNECT reply.
    assert.equal((await rawHttp(server, { method: 'POST', query: q, body: `40${NSP_PREFIX}` })).status, 200);
    const reply = await rawHttp(server, { query: q });
    assert.equal(reply.status, 200);
    assert.match(reply.text, new RegExp(`^40${NSP_PREFIX.replace('/', '\\/')}\\{"sid"`));
  });

  test('cannot take the transport over with an upgrade probe from another address', { timeout: 10000 }, async () => {
    // The victim: the official client, on polling (an upgrade would make the sid useless anyway).
    const victim = await connected(clients.track(makeClient(server, 'polling')), 'polling');
    const sid = victim.io.engine.id;
    const attack = await openWs(server, `&sid=${encodeURIComponent(sid)}`, { localAddress: OTHER });
    assert.equal(attack.status, 403, `the probe from ${OTHER} was ${attack.ws ? 'accepted' : attack.status}`);
    await assertAlive(victim, 'victim after the attack');
    assert.equal(transportOf(victim), 'polling');
    await logged(server, /upgrade probe from 127\.0\.0\.2 refused: the session was opened from 127\.0\.0\.1/);
  });

  test('the owner still upgrades (official client, polling then websocket)', { timeout: 10000 }, async () => {
    const s = await connected(clients.track(makeClient(server, 'upgrade')), 'upgrade');
    await assertAlive(s, 'upgraded');
  });
});

describe('X-Forwarded-For', () => {
  test('is ignored from a peer that is not a trusted proxy', { timeout: 10000 }, async () => {
    const plain = await startServer({ TRUSTED_PROXIES: '' });
    // Opened from 127.0.0.1 claiming to be 203.0.113.5: the claim is ignored, so another
    // address claiming to be 127.0.0.1 is still someone else.
    const sid = await handshake(plain, { headers: { 'x-forwarded-for': '203.0.113.5' } });
    const q = `&sid=${encodeURIComponent(sid)}`;
    const forged = await rawHttp(plain, { query: q, localAddress: OTHER, headers: { 'x-forwarded-for': '127.0.0.1' } });
    assert.equal(forged.status, 403);
  });

  test('names the client behind a trusted proxy', { timeout: 10000 }, async () => {
    const server = await startServer({ TRUSTED_PROXIES: '127.0.0.1/32' });
    const sid = await handshake(server, { headers: { 'x-forwarded-for': '198.51.100.1, 203.0.113.5' } });
    const q = `&sid=${encodeURIComponent(sid)}`;
    // Same client (the hop the proxy added), through the proxy: accepted.
    const ok = await openWs(server, q, { headers: { 'x-forwarded-for': '203.0.113.5' } });
    assert.ok(ok.ws, `probe for the same client refused: ${ok.status} ${ok.text}`);
    ok.ws.terminate();
    // Another client behind the same proxy: refused.
    const other = await openWs(server, q, { headers: { 'x-forwarded-for': '203.0.113.6' } });
    assert.equal(other.status, 403);
    // The header from an untrusted peer counts for nothing: that peer is 127.0.0.2.
    const direct = await rawHttp(server, { query: q, localAddress: OTHER, headers: { 'x-forwarded-for': '203.0.113.5' } });
    assert.equal(direct.status, 403);
  });
});

describe('per-address limits', () => {
  test('MAX_ENGINEIO_SESSIONS_PER_ADDRESS: the next session gets 429, other addresses do not notice', { timeout: 15000 }, async () => {
    const server = await startServer({ MAX_ENGINEIO_SESSIONS_PER_ADDRESS: '3' });
    const sids = [];
    for (let i = 0; i < 3; i++) sids.push(await handshake(server));
    const refused = await rawHttp(server);
    assert.equal(refused.status, 429, `4th session answered ${refused.status} ${refused.text}`);
    assert.equal(JSON.parse(refused.text).code, 'TOO_MANY_SESSIONS');
    const ws = await openWs(server, '');
    assert.equal(ws.status, 429, 'a websocket session counts the same');
    await handshake(server, { localAddress: OTHER });
    // A session that ends frees its place.
    assert.equal((await rawHttp(server, { method: 'POST', query: `&sid=${sids[0]}`, body: '1' })).status, 200);
    await eventually(async () => (await rawHttp(server)).status === 200, 5000, 'a place after a session closed');
  });

  test('NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE: a burst, then 429 with retryAfterMs', { timeout: 15000 }, async () => {
    const server = await startServer({ NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE: '5' });
    for (let i = 0; i < 5; i++) await handshake(server);
    const refused = await rawHttp(server);
    assert.equal(refused.status, 429);
    const body = JSON.parse(refused.text);
    assert.equal(body.code, 'RATE_LIMITED');
    assert.ok(body.retryAfterMs > 0 && body.retryAfterMs <= 12000, `retryAfterMs ${body.retryAfterMs}`);
    assert.ok(Number(refused.headers['retry-after']) >= 1);
    // The official client sees a connect_error, and another address is not limited.
    const limited = clients.track(makeClient(server, 'websocket'));
    await waitEvent(limited, 'connect_error', 5000);
    const other = clients.track(makeClient(server, 'websocket', { localAddress: OTHER }));
    await connected(other, 'websocket');
    await logged(server, /refused: over NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE=5/);
  });

  test('MAX_CONNECTIONS_PER_ADDRESS: the next TCP connection is closed at once', { timeout: 15000 }, async () => {
    const server = await startServer({ MAX_CONNECTIONS_PER_ADDRESS: '4' });
    const open = [];
    for (let i = 0; i < 4; i++) {
      const c = net.connect({ host: HOST, port: server.port, localAddress: OTHER });
      sockets.push(c);
      await once(c, 'connect');
      open.push(c);
    }
    // Idle connections (a slowloris) hold their places; the fifth is closed without an answer.
    await eventually(async () => {
      const c = net.connect({ host: HOST, port: server.port, localAddress: OTHER });
      sockets.push(c);
      c.on('error', () => {});
      c.write(`GET ${SIO_PATH}?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n`);
      let data = '';
      c.on('data', (d) => { data += d; });
      // (events.once would reject on the ECONNRESET a write to the closed socket may cause)
      await withTimeout(new Promise((resolve) => c.once('close', resolve)), 3000, 'the refused connection to close');
      return data === '';
    }, 5000, 'a fifth connection to be refused');
    // Other addresses are not affected.
    await handshake(server);
    // Closing one frees a place.
    open[0].destroy();
    await eventually(async () => {
      try { return (await rawHttp(server, { localAddress: OTHER }, 2000)).status === 200; } catch { return false; }
    }, 5000, 'a place after a connection closed');
    await logged(server, /connection from 127\.0\.0\.2 refused: 4 open from this address/);
  });
});
