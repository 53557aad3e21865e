// Connect with query + auth in the three transport modes; the server sees both (the "auth" event
// on connection and the "get-handshake" ack), and the client runs on the transport of its mode.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, MODES, NAMESPACE, connected, emitAck, expectLimits, makeClient, pollingRequest, startServer,
  transportOf, waitEvent,
} from './lib.mjs';

const server = await startServer();
const clients = new Clients();
afterEach(() => clients.closeAll());

test('handshake advertises ping 300/200 and maxPayload 1000000', { timeout: 5000 }, async () => {
  const res = await pollingRequest(server, 'GET', '');
  assert.equal(res.status, 200);
  assert.match(res.text, /^0\{/);
  const hs = JSON.parse(res.text.slice(1));
  assert.deepEqual(hs.upgrades, ['websocket']);
  expectLimits(hs);
});

for (const mode of Object.keys(MODES)) {
  describe(`connect [${mode}]`, () => {
    test('query and auth reach the server', { timeout: 8000 }, async () => {
      const auth = { token: 'tok-é✓', n: 42, nested: { list: [1, 'two', null] } };
      const query = { room: 'r1', 'weird key': 'a&b=c/é' };
      const socket = clients.track(makeClient(server, mode, { auth, query }));
      const authEvent = waitEvent(socket, 'auth', 5000);
      await connected(socket, mode);
      assert.equal(typeof socket.id, 'string');
      assert.ok(socket.id.length > 0);
      assert.deepEqual((await authEvent)[0], auth);
      const [hs] = await emitAck(socket, 3000, 'get-handshake');
      assert.deepEqual(hs.auth, auth);
      assert.equal(hs.query.room, 'r1');
      assert.equal(hs.query['weird key'], 'a&b=c/é');
      assert.equal(hs.query.EIO, '4');
      assert.equal(transportOf(socket), mode === 'polling' ? 'polling' : 'websocket');
    });

    test('no auth gives an empty auth object', { timeout: 8000 }, async () => {
      const socket = clients.track(makeClient(server, mode));
      const authEvent = waitEvent(socket, 'auth', 5000);
      await connected(socket, mode);
      assert.deepEqual((await authEvent)[0], {});
      const [hs] = await emitAck(socket, 3000, 'get-handshake');
      assert.deepEqual(hs.auth, {});
    });

    test('unknown namespace is refused with "Invalid namespace"', { timeout: 8000 }, async () => {
      const socket = clients.track(makeClient(server, mode, {}));
      const bad = clients.track(socket.io.socket(`${NAMESPACE === '/' ? '' : NAMESPACE}/no-such-namespace-e2e`));
      await connected(socket, mode);
      bad.connect();
      const [err] = await waitEvent(bad, 'connect_error', 5000, ['connect']);
      assert.equal(err.message, 'Invalid namespace');
      // The connection (shared by both namespaces) keeps working.
      const [echo] = await emitAck(socket, 3000, 'message-with-ack', 'still here');
      assert.equal(echo, 'still here');
    });
  });
}
