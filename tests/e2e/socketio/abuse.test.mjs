// Abuse bounds (docs/HARDENING.md): binary attachments (only for a joined namespace, at most
// maxPayload per packet), the bytes one connection and the whole process may buffer, pongs owed
// to a peer that does not read, and the per-socket event rate (RATE_LIMITED acks, a sustained
// flood closes the connection). Each case checks that a bystander keeps working.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, NSP_PREFIX, RawClient, assertAlive, connected, emitAck, eventually, makeClient, rawHttp, startServer,
} from './lib.mjs';

// A client that stops reading also stops answering pings: where a test needs one to stay
// connected while it does not read, the heartbeat is slowed down.
const SLOW_HEARTBEAT = { PING_INTERVAL_MS: '20000', PING_TIMEOUT_MS: '20000' };

const clients = new Clients();
const raws = [];
afterEach(() => {
  clients.closeAll();
  for (const r of raws.splice(0)) r.close();
});

async function raw(server) {
  const r = new RawClient(server);
  raws.push(r);
  return r.handshake();
}

/** The server's log reaches us through a pipe that may lag behind the socket: wait for the line. */
const logged = (server, re) => eventually(() => re.test(server.output), 3000, `the server to log ${re}`);

const placeholders = (n) => Array.from({ length: n }, (_, i) => `{"_placeholder":true,"num":${i}}`).join(',');

/** A masked client frame header (RFC 6455) for a binary frame of `length` bytes, and its mask. */
function frameHeader(length) {
  const mask = randomBytes(4);
  let head;
  if (length < 126) {
    head = Buffer.from([0x82, 0x80 | length]);
  } else if (length < 65536) {
    head = Buffer.alloc(4);
    head.writeUInt16BE(length, 2);
    head[0] = 0x82; head[1] = 0x80 | 126;
  } else {
    head = Buffer.alloc(10);
    head.writeBigUInt64BE(BigInt(length), 2);
    head[0] = 0x82; head[1] = 0x80 | 127;
  }
  return { head: Buffer.concat([head, mask]), mask };
}

describe('binary attachments', () => {
  test('for a namespace the connection has not joined: refused at the header', { timeout: 10000 }, async () => {
    const server = await startServer();
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const r = await raw(server);
    // 256 attachments announced: not one of them is waited for or buffered.
    r.send(`45256-/not-joined,["upload",${placeholders(256)}]`);
    const closed = await r.closedWithin(3000, 'close after attachments for a namespace not joined');
    assert.equal(closed.code, 1002, `close code ${closed.code}`);
    await logged(server, /binary packet with 256 attachments for namespace '\/not-joined', not joined/);
    await assertAlive(bystander, 'bystander');
  });

  test('adding up to more than maxPayload in one packet closes that connection (1009)', { timeout: 10000 }, async () => {
    const server = await startServer();
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const r = await raw(server);
    r.send(`452-${NSP_PREFIX}["message",${placeholders(2)}]`);
    r.send(Buffer.alloc(600000, 1));
    r.send(Buffer.alloc(600000, 2));
    const closed = await r.closedWithin(5000, 'close after 1.2 MB of attachments');
    assert.equal(closed.code, 1009, `close code ${closed.code}`);
    assert.equal(closed.reason, 'buffer limit');
    await logged(server, /binary attachments of one packet over 1000000 bytes/);
    await assertAlive(bystander, 'bystander');
  });
});

describe('MAX_CONNECTION_BUFFER_BYTES', () => {
  test('attachments plus a partial frame over the cap close the connection; under it all is well', { timeout: 15000 }, async () => {
    const server = await startServer({ MAX_CONNECTION_BUFFER_BYTES: '1500000' });
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    // Under the cap: a 900 KB attachment held, then the packet completes and is echoed.
    const ok = await raw(server);
    ok.send(`452-${NSP_PREFIX}["message",${placeholders(2)}]`);
    ok.send(Buffer.alloc(900000, 7));
    ok.send(Buffer.from('tail'));
    const header = await ok.next((f) => typeof f === 'string' && f.startsWith(`452-${NSP_PREFIX}["message-back"`), 5000, 'the echo');
    assert.ok(header);
    // Over it: the same 900 KB held, and 700 KB of a 900 KB frame still arriving.
    const r = await raw(server);
    r.send(`452-${NSP_PREFIX}["message",${placeholders(2)}]`);
    r.send(Buffer.alloc(900000, 7));
    const { head, mask } = frameHeader(900000);
    const part = Buffer.alloc(700000, 9);
    for (let i = 0; i < part.length; i++) part[i] ^= mask[i & 3];
    r.ws._socket.write(Buffer.concat([head, part]));
    const closed = await r.closedWithin(5000, 'close over MAX_CONNECTION_BUFFER_BYTES');
    assert.equal(closed.code, 1009, `close code ${closed.code}`);
    await logged(server, /over MAX_CONNECTION_BUFFER_BYTES=1500000/);
    await assertAlive(bystander, 'bystander');
  });
});

describe('MAX_PROCESS_BUFFER_BYTES', () => {
  test('a slow reader fills the budget: new sessions get 503, inbound growth is shed, then it recovers', { timeout: 30000 }, async () => {
    // The socket's event budget is raised: every message below must be echoed, however fast the
    // server takes them (with the default burst of 100, how many got through depended on how long
    // parsing them took).
    const server = await startServer({ ...SLOW_HEARTBEAT, MAX_PROCESS_BUFFER_BYTES: '1m', MAX_CONNECTION_BUFFER_BYTES: '64m',
      SOCKET_EVENT_BURST: '1000' });
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const grower = await raw(server);
    const slow = await raw(server);
    slow.ws.pause();  // reads nothing: the server's echoes pile up (the kernel holds a few MB, then Berth)
    // 400 messages of 50 KB: 20 MB of echoes, far more than the kernel's socket buffers absorb
    // (a few MB), so the rest piles up in Berth. (At most one read's worth is ever partial, which
    // the budget tolerates.)
    const chunk = 'x'.repeat(50000);
    for (let i = 0; i < 400; i++) slow.send(`42${NSP_PREFIX}["message","${chunk}"]`);
    await eventually(async () => (await rawHttp(server)).status === 503, 10000, 'a new session to be refused with 503');
    const refused = await rawHttp(server);
    assert.equal(refused.status, 503);
    assert.equal(JSON.parse(refused.text).code, 'SERVER_OVERLOADED');
    // A connection that wants to buffer more inbound bytes now is closed (1013, try again later).
    grower.send(`452-${NSP_PREFIX}["message",${placeholders(2)}]`);
    grower.send(Buffer.alloc(100000, 1));
    const closed = await grower.closedWithin(5000, 'the growing connection to be shed');
    assert.equal(closed.code, 1013, `close code ${closed.code}`);
    assert.equal(closed.reason, 'server overloaded');
    // The slow reader reads again: the budget frees and new sessions are welcome again.
    slow.ws.resume();
    await eventually(async () => (await rawHttp(server)).status === 200, 15000, 'new sessions after the backlog drained');
    await assertAlive(bystander, 'bystander');
    await logged(server, /new session from 127\.0\.0\.1 refused: the process buffers \d+ bytes, over MAX_PROCESS_BUFFER_BYTES=1048576/);
    await logged(server, /closed: the process buffers \d+ bytes, over MAX_PROCESS_BUFFER_BYTES=1048576, and this connection wanted to buffer more/);
  });
});

describe('pongs owed', () => {
  test('a peer that pings faster than it reads is closed', { timeout: 20000 }, async () => {
    const server = await startServer(SLOW_HEARTBEAT);
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const r = await raw(server);
    r.ws.pause();  // never reads: every pong stays owed once the kernel buffers are full
    const payload = Buffer.alloc(125, 1);
    for (let i = 0; i < 100000; i++) r.ws.ping(payload);
    await eventually(() => /pongs owed and unread/.test(server.output), 15000, 'the server to give up on the peer');
    r.ws.resume();
    await r.closedWithin(5000, 'the connection to end');
    await assertAlive(bystander, 'bystander');
  });
});

describe('events per second per socket', () => {
  const limited = { SOCKET_EVENTS_PER_SECOND: '5', SOCKET_EVENT_BURST: '5', SOCKET_FLOOD_DISCONNECT_SECONDS: '0' };
  for (const mode of ['polling', 'websocket']) {
    test(`[${mode}] over the limit, an ack answers RATE_LIMITED with retryAfterMs`, { timeout: 15000 }, async () => {
      const server = await startServer(limited);
      const s = await connected(clients.track(makeClient(server, mode)), mode);
      const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => emitAck(s, 5000, 'message-with-ack', i)));
      const refused = replies.filter((r) => r[0]?.ok === false);
      const accepted = replies.filter((r) => r[0]?.ok !== false);
      assert.ok(accepted.length >= 5 && refused.length >= 2, JSON.stringify(replies));
      accepted.forEach((r, i) => assert.deepEqual(r, [i]));  // the first ones, in order
      for (const [r] of refused) {
        assert.equal(r.code, 'RATE_LIMITED');
        assert.equal(typeof r.message, 'string');
        assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 1000, `retryAfterMs ${r.retryAfterMs}`);
      }
      // After retryAfterMs the socket may send again.
      await new Promise((resolve) => setTimeout(resolve, refused[refused.length - 1][0].retryAfterMs));
      assert.deepEqual(await emitAck(s, 3000, 'message-with-ack', 'again'), ['again']);
      await logged(server, /over 5 events per second \(burst 5\): events refused/);
    });
  }

  test('events without an ack over the limit are dropped', { timeout: 15000 }, async () => {
    const server = await startServer(limited);
    const s = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    let backs = 0;
    s.on('message-back', () => { backs++; });
    for (let i = 0; i < 10; i++) s.emit('message', i);
    // A marker with an ack, retried once the bucket has a token: every message-back of an
    // accepted event was sent before its answer.
    let answer;
    for (let i = 0; i < 20; i++) {
      [answer] = await emitAck(s, 3000, 'message-with-ack', 'marker');
      if (answer?.ok !== false) break;
      await new Promise((resolve) => setTimeout(resolve, answer.retryAfterMs));
    }
    assert.equal(answer, 'marker');
    assert.equal(backs, 5);
  });

  test('a sustained flood closes the connection (1008), bystanders keep working', { timeout: 15000 }, async () => {
    const server = await startServer({ SOCKET_EVENTS_PER_SECOND: '5', SOCKET_EVENT_BURST: '5', SOCKET_FLOOD_DISCONNECT_SECONDS: '2' });
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const r = await raw(server);
    let sent = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 20 && r.ws.readyState === 1; i++) r.send(`42${NSP_PREFIX}["message",${sent++}]`);
    }, 10);  // ~2,000 events per second: far over 10 x 5
    try {
      const closed = await r.closedWithin(8000, 'the flooding connection to be closed');
      assert.equal(closed.code, 1008, `close code ${closed.code}`);
      assert.equal(closed.reason, 'policy violation');
    } finally {
      clearInterval(timer);
    }
    await logged(server, /sent at least 50 events per second for 2 seconds/);
    await assertAlive(bystander, 'bystander');
  });
});
