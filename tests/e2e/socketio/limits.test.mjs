// maxPayload (MAX_HTTP_BUFFER_SIZE = 1000000): a message over it closes only that connection (websocket: the server closes the socket; polling: the
// POST gets 413 and the session is gone), while another connected client keeps working.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, MAX_PAYLOAD, MODES, NSP_PREFIX, RawClient, assertAlive, connected, makeClient,
  RawPolling, SIO_PATH, startServer, waitEvent, withTimeout,
} from './lib.mjs';

const server = await startServer();
const clients = new Clients();
const raws = [];
afterEach(() => {
  clients.closeAll();
  for (const r of raws.splice(0)) r.close();
});

const OVER = 'o'.repeat(MAX_PAYLOAD + 1);

for (const mode of Object.keys(MODES)) {
  describe(`maxPayload [${mode}]`, () => {
    test('an over-limit message closes only that connection', { timeout: 10000 }, async () => {
      const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
      const bystanderPolling = await connected(clients.track(makeClient(server, 'polling')), 'polling');
      let bystanderDropped = false;
      for (const b of [bystander, bystanderPolling]) b.on('disconnect', () => { bystanderDropped = true; });
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const disconnected = waitEvent(socket, 'disconnect', 8000);
      socket.emit('message', OVER);
      const [reason] = await disconnected;
      assert.ok(['transport close', 'transport error'].includes(reason), `reason ${reason}`);
      await assertAlive(bystander, 'ws bystander');
      await assertAlive(bystanderPolling, 'polling bystander');
      assert.equal(bystanderDropped, false, 'a bystander was disconnected');
    });
  });
}

describe('maxPayload, raw', () => {
  test('[polling] POST over the limit gets 413, then the session is gone', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const raw = await new RawPolling(server).open();
    assert.equal((await raw.post(`40${NSP_PREFIX}`)).status, 200);
    await raw.next((p) => p.startsWith(`40${NSP_PREFIX}{`), 3000, 'CONNECT reply');
    // No GET in flight from here on (the loop ends after the GET it has pending, at the latest
    // with the next ping, which it answers), so the GET below is not a concurrent poll.
    raw.stop();
    await withTimeout(raw.polling, 3000, 'the poll loop to stop');
    const res = await raw.post(`4${'x'.repeat(MAX_PAYLOAD)}`, 8000);
    assert.equal(res.status, 413, `over-limit POST answered ${res.status} ${res.text}`);
    const after = await raw.get();
    assert.equal(after.status, 400, `GET after the 413 answered ${after.status} ${JSON.stringify(after.text)}: the session is still open`);
    assert.deepEqual(JSON.parse(after.text), { code: 1, message: 'Session ID unknown' });
    await assertAlive(bystander, 'bystander');
  });

  test('[polling] a request header cannot claim an over-limit body', { timeout: 10000 }, async () => {
    // The HTTP layer tells the Engine.IO route about an over-limit body out of band; a client's
    // header of the name Berth once used for it must change nothing.
    const raw = await new RawPolling(server).open();
    raws.push({ close: () => raw.stop() });
    assert.equal((await raw.post(`40${NSP_PREFIX}`)).status, 200);
    await raw.next((p) => p.startsWith(`40${NSP_PREFIX}{`), 3000, 'CONNECT reply');
    const res = await withTimeout(fetch(`${server.url}${SIO_PATH}?EIO=4&transport=polling${raw.q}`, {
      method: 'POST',
      body: `42${NSP_PREFIX}["message","small"]`,
      headers: { 'content-type': 'text/plain;charset=UTF-8', 'x-berth-body-too-large': '1' },
    }), 5000, 'POST with the header');
    assert.equal(res.status, 200, `POST answered ${res.status} ${await res.text()}`);
    await raw.next((p) => p.startsWith(`42${NSP_PREFIX}["message-back","small"`), 3000, 'the echo of that POST');
  });

  test('[websocket] frame over the limit closes that websocket (1009)', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const raw = new RawClient(server);
    raws.push(raw);
    await raw.handshake();
    raw.send(`42${NSP_PREFIX}["message","${'z'.repeat(MAX_PAYLOAD)}"]`);
    const closed = await raw.closedWithin(5000, 'close after an over-limit frame');
    assert.equal(closed.code, 1009, `close code ${closed.code}`);
    await assertAlive(bystander, 'bystander');
  });
});
