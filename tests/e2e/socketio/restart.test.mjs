// The client reconnects by itself after the server process is killed and restarted on the same
// port, in the three modes.
import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import {
  Clients, MODES, ServerProcess, assertAlive, connected, freePort, makeClient, upgraded, waitEvent,
} from './lib.mjs';

const server = new ServerProcess(await freePort());
after(() => server.stop());
await server.start();
const clients = new Clients();
afterEach(() => clients.closeAll());

for (const mode of Object.keys(MODES)) {
  describe(`server restart [${mode}]`, () => {
    test('killed server, restarted on the same port: the client reconnects', { timeout: 20000 }, async () => {
      const auth = { token: `restart-${mode}` };
      const socket = clients.track(makeClient(server, mode, {
        auth, reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 300, randomizationFactor: 0,
        reconnectionAttempts: 100,
      }));
      await connected(socket, mode);
      const disconnected = waitEvent(socket, 'disconnect', 5000);
      await server.stop('SIGKILL');
      const [reason] = await disconnected;
      assert.ok(['transport close', 'transport error'].includes(reason), `reason ${reason}`);
      const reconnected = waitEvent(socket.io, 'reconnect', 15000);
      const authAgain = waitEvent(socket, 'auth', 15000);
      await server.start();
      await reconnected;
      await connected(socket, mode);
      assert.deepEqual((await authAgain)[0], auth);
      if (mode === 'upgrade') await upgraded(socket);
      await assertAlive(socket, `after restart ${mode}`);
    });
  });
}
