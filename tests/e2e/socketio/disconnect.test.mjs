// Server-side disconnect and client reconnect after a transport close, in the three modes.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, MODES, assertAlive, connected, emitAck, makeClient, startServer, upgraded, waitEvent,
} from './lib.mjs';

const server = await startServer();
const clients = new Clients();
afterEach(() => clients.closeAll());

const QUICK_RECONNECT = {
  reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 200, randomizationFactor: 0,
  reconnectionAttempts: 20,
};

for (const mode of Object.keys(MODES)) {
  describe(`server disconnect [${mode}]`, () => {
    test('force-disconnect: "io server disconnect", connection closed, no auto-reconnect', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode, QUICK_RECONNECT)), mode);
      const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
      const engine = socket.io.engine;
      const engineClosed = waitEvent(engine, 'close', 5000);
      const disconnected = waitEvent(socket, 'disconnect', 5000);
      socket.emit('force-disconnect');
      const [reason] = await disconnected;
      assert.equal(reason, 'io server disconnect');
      assert.equal(socket.connected, false);
      assert.equal(socket.active, false, 'a server disconnect must not be retried by the client');
      await engineClosed; // the server also closed the Engine.IO connection
      await assertAlive(bystander, 'bystander ok');
    });
  });

  describe(`client reconnect [${mode}]`, () => {
    test('transport closed by the client: "transport close", then a new connect', { timeout: 10000 }, async () => {
      const auth = { token: 'again' };
      const socket = clients.track(makeClient(server, mode, { ...QUICK_RECONNECT, auth }));
      const firstAuth = waitEvent(socket, 'auth', 5000);
      await connected(socket, mode);
      assert.deepEqual((await firstAuth)[0], auth);
      const firstId = socket.id;
      const disconnected = waitEvent(socket, 'disconnect', 5000);
      const reconnected = waitEvent(socket.io, 'reconnect', 8000);
      socket.io.engine.transport.close(); // as when the network drops the connection
      const [reason] = await disconnected;
      assert.equal(reason, 'transport close');
      const secondAuth = waitEvent(socket, 'auth', 8000);
      await reconnected;
      await connected(socket, mode);
      assert.notEqual(socket.id, firstId, 'a reconnect gets a new Socket.IO session');
      assert.deepEqual((await secondAuth)[0], auth);
      if (mode === 'upgrade') await upgraded(socket);
      await assertAlive(socket, 'after reconnect');
    });

    test('engine closed by the client: disconnect, then a new connect', { timeout: 10000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode, QUICK_RECONNECT)), mode);
      const firstId = socket.id;
      const disconnected = waitEvent(socket, 'disconnect', 5000);
      const reconnected = waitEvent(socket.io, 'reconnect', 8000);
      socket.io.engine.close();
      const [reason] = await disconnected;
      // engine.io-client 6.6 reports its own close() as "forced close" (transport.close() above
      // is what yields "transport close"); either way the manager must reconnect.
      assert.ok(['forced close', 'transport close'].includes(reason), `reason ${reason}`);
      await reconnected;
      await connected(socket, mode);
      assert.notEqual(socket.id, firstId);
      const [echo] = await emitAck(socket, 3000, 'message-with-ack', 'ok');
      assert.equal(echo, 'ok');
    });
  });
}
