// Malformed-packet catalogue over a raw websocket (after a successful CONNECT to the test
// namespace): each bad input closes that connection, promptly, and another client is unaffected.
// A well-formed control over the same raw client proves the client itself is not the problem.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, NSP_PREFIX, PING_INTERVAL_MS, RawClient, RawPolling, assertAlive, connected, makeClient,
  startServer, withTimeout,
} from './lib.mjs';

const server = await startServer();
const clients = new Clients();
const raws = [];
afterEach(() => {
  clients.closeAll();
  for (const r of raws.splice(0)) r.close();
});

const N = NSP_PREFIX;
const CLOSE_WITHIN_MS = 2000; // pings are answered, so only the bad input can close the socket

// Nested 100,000 deep (~600 KB, under the 1 MB limit): one such message used to kill the process.
const DEEP_ARRAYS = '['.repeat(100000) + ']'.repeat(100000);
const DEEP_OBJECTS = '{"a":'.repeat(100000) + '1' + '}'.repeat(100000);

const CASES = [
  ['EVENT whose arguments nest 100,000 arrays deep', (raw) => raw.send(`42${N}["message",${DEEP_ARRAYS}]`)],
  ['EVENT whose arguments nest 100,000 objects deep', (raw) => raw.send(`42${N}["message",${DEEP_OBJECTS}]`)],
  ['BINARY_EVENT whose arguments nest 100,000 deep', (raw) => {
    raw.send(`451-${N}["message",{"_placeholder":true,"num":0},${DEEP_ARRAYS}]`);
    raw.send(Buffer.from([1, 2, 3]));
  }],
  ['unknown Socket.IO packet type "4abc"', (raw) => raw.send('4abc')],
  ['EVENT payload not an array "42{}"', (raw) => raw.send(`42${N}{}`)],
  ['EVENT with an empty array "42[]"', (raw) => raw.send(`42${N}[]`)],
  ['non-numeric ack id "42abc[\\"x\\"]"', (raw) => raw.send(`42${N}abc["x"]`)],
  ['unknown Socket.IO packet type "49[]"', (raw) => raw.send(`49${N}[]`)],
  ['EVENT whose JSON is cut "42[\\"x\\""', (raw) => raw.send(`42${N}["x"`)],
  ['unknown Engine.IO packet type "9"', (raw) => raw.send('9')],
  ['binary frame with no pending binary packet', (raw) => raw.send(Buffer.from([1, 2, 3]))],
  ['BINARY_EVENT whose placeholder num is out of range', (raw) => {
    raw.send(`451-${N}["m",{"_placeholder":true,"num":5}]`);
    raw.send(Buffer.from([1, 2, 3]));
  }],
  ['BINARY_EVENT whose placeholder num is not a number', (raw) => {
    raw.send(`451-${N}["m",{"_placeholder":true,"num":"0"}]`);
    raw.send(Buffer.from([1, 2, 3]));
  }],
  ['text frame with invalid UTF-8', (raw) => {
    raw.send(Buffer.concat([Buffer.from(`42${N}["message","`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"]')]),
      { binary: false });
  }],
  ['unmasked client frame', (raw) => raw.send(`42${N}["message","unmasked"]`, { mask: false })],
];

describe('malformed input over websocket', () => {
  test('control: a well-formed event on the same kind of raw client is answered', { timeout: 5000 }, async () => {
    const raw = new RawClient(server);
    raws.push(raw);
    await raw.handshake({ token: 'raw' });
    await raw.next((f) => f === `42${N}["auth",{"token":"raw"}]`, 2000, 'auth event');
    raw.send(`42${N}7["message-with-ack","ok",{"n":1}]`);
    assert.equal(await raw.next((f) => f.startsWith?.(`43${N}7`), 2000, 'ack'), `43${N}7["ok",{"n":1}]`);
    raw.send(`451-${N}["message",{"_placeholder":true,"num":0}]`);
    raw.send(Buffer.from([7, 8, 9]));
    assert.equal(await raw.next((f) => f.startsWith?.(`451-${N}["message-back"`), 2000, 'binary echo'),
      `451-${N}["message-back",{"_placeholder":true,"num":0}]`);
    assert.deepEqual([...await raw.next((f) => Buffer.isBuffer(f), 2000, 'attachment')], [7, 8, 9]);
    // Still open after a full ping cycle.
    await raw.pingCount(1, PING_INTERVAL_MS + 2000);
    assert.equal(raw.ws.readyState, 1);
  });

  // Before any namespace is joined, so before any auth middleware runs.
  test('CONNECT whose auth nests 100,000 deep, before auth: closes that connection only', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const raw = new RawClient(server);
    raws.push(raw);
    await withTimeout(once(raw.ws, 'open'), 3000, 'websocket open');
    await raw.next((f) => typeof f === 'string' && f.startsWith('0'), 3000, 'Engine.IO open packet');
    raw.send(`40{"token":${DEEP_OBJECTS}}`);
    await raw.closedWithin(CLOSE_WITHIN_MS, 'the server to close after a deep CONNECT');
    await assertAlive(bystander, 'bystander after a deep CONNECT');
  });

  test('polling POST of an event nested 100,000 deep: closes that session only', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'polling')), 'polling');
    const raw = new RawPolling(server);
    await raw.open();
    try {
      const res = await raw.post(`40{"token":${DEEP_ARRAYS}}`);
      assert.ok(res.status === 200 || res.status === 400, `POST answered ${res.status}`);
      const end = await withTimeout(raw.polling, 5000, 'the session to close');
      assert.ok(end.status === 400 || (end.text ?? '').split('\x1e').includes('1'),
        `session closed (last GET: ${end.status} ${(end.text ?? end.error ?? '').slice(0, 40)})`);
    } finally {
      raw.stop();
    }
    await assertAlive(bystander, 'bystander after a deep polling POST');
  });

  for (const [name, send] of CASES) {
    test(`${name}: closes that connection only`, { timeout: 10000 }, async () => {
      const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
      const raw = new RawClient(server);
      raws.push(raw);
      await raw.handshake();
      send(raw);
      const closed = await raw.closedWithin(CLOSE_WITHIN_MS, `the server to close after: ${name}`);
      console.log(`# ${name}: closed with code ${closed.code}`);
      await assertAlive(bystander, `bystander after ${name}`);
    });
  }
});
