// Acknowledgements both ways in the three transport modes: client -> server ("message-with-ack"
// acks with the same arguments) and server -> client ("request-server-ack" makes the server emit
// "ack-me" with a callback, then ack {reply: <what the client answered>}).
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { Clients, MODES, connected, emitAck, makeClient, startServer, waitEvent } from './lib.mjs';

const server = await startServer();
const clients = new Clients();
afterEach(() => clients.closeAll());

for (const mode of Object.keys(MODES)) {
  describe(`acks [${mode}]`, () => {
    test('client -> server ack returns every argument', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const args = [1, '2', { 3: [true, false, null] }, [], 'ünïcödé ✓ \u2028', -0.5, 1e21];
      const reply = await emitAck(socket, 3000, 'message-with-ack', ...args);
      assert.deepEqual(reply, args);
    });

    test('100 concurrent acks are matched to their own emits', { timeout: 10000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => emitAck(socket, 5000, 'message-with-ack', i, `n${i}`)));
      replies.forEach((r, i) => assert.deepEqual(r, [i, `n${i}`]));
    });

    test('plain event round trip (message -> message-back)', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const back = waitEvent(socket, 'message-back', 3000);
      socket.emit('message', 1, '2', { 3: [true] });
      assert.deepEqual(await back, [1, '2', { 3: [true] }]);
    });

    test('server -> client ack: the server gets what the client answered', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const seen = [];
      socket.on('ack-me', (payload, cb) => {
        seen.push(payload);
        assert.equal(typeof cb, 'function', 'ack-me must carry an ack callback');
        cb({ got: payload, from: 'client' });
      });
      const payload = { q: 'ping?', list: [1, 2, 3] };
      const [res] = await emitAck(socket, 5000, 'request-server-ack', payload);
      assert.deepEqual(seen, [payload]);
      assert.deepEqual(res, { reply: { got: payload, from: 'client' } });
    });

    test('server -> client ack: several in flight at once', { timeout: 10000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      // Answer out of order: hold every callback, then answer the last one first.
      const pending = [];
      let all;
      const allSeen = new Promise((resolve) => { all = resolve; });
      socket.on('ack-me', (payload, cb) => {
        pending.push([payload, cb]);
        if (pending.length === 10) all();
      });
      const results = Array.from({ length: 10 }, (_, i) => emitAck(socket, 5000, 'request-server-ack', i));
      await Promise.race([allSeen, Promise.all(results)]);
      assert.equal(pending.length, 10);
      for (const [payload, cb] of pending.reverse()) cb(`answer-${payload}`);
      const got = await Promise.all(results);
      got.forEach(([r], i) => assert.deepEqual(r, { reply: `answer-${i}` }));
    });
  });
}
