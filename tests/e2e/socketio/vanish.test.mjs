// A client that stops answering pings is dropped within pingInterval + pingTimeout (300 + 200 ms,
// plus BERTH_E2E_SLACK_MS), measured from its last sign of life to the server's close (an event:
// the WebSocket close, or the pending long-poll GET completing). A client that keeps answering
// is not dropped (control), and other clients are unaffected.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import {
  Clients, NSP_PREFIX, PING_INTERVAL_MS, PING_TIMEOUT_MS, RawClient, RawPolling, SLACK_MS, assertAlive, connected,
  expectLimits, makeClient, startServer, withTimeout,
} from './lib.mjs';

const server = await startServer();
const clients = new Clients();
const raws = [];
afterEach(() => {
  clients.closeAll();
  for (const r of raws.splice(0)) r.close();
});

const BUDGET = PING_INTERVAL_MS + PING_TIMEOUT_MS;
const LIMIT = BUDGET + SLACK_MS;

function checkDropTime(elapsed) {
  console.log(`# dropped ${elapsed.toFixed(0)} ms after the last sign of life (limit ${LIMIT} ms)`);
  assert.ok(elapsed <= LIMIT, `dropped after ${elapsed.toFixed(0)} ms, limit ${LIMIT} ms`);
  // Not before the server could have known: its ping goes out pingInterval after the last pong.
  assert.ok(elapsed >= BUDGET / 2, `dropped too early: ${elapsed.toFixed(0)} ms`);
}

describe('vanishing client', () => {
  test('control: a raw websocket client that answers pings stays connected over 3 pings', { timeout: 10000 }, async () => {
    const raw = new RawClient(server, { answerPings: true });
    raws.push(raw);
    await raw.handshake();
    expectLimits(raw.engine);
    await raw.pingCount(3, 3 * PING_INTERVAL_MS + PING_TIMEOUT_MS + 2000);
    raw.send(`42${NSP_PREFIX}["message","still"]`);
    assert.equal(await raw.next((f) => f === `42${NSP_PREFIX}["message-back","still"]`, 2000, 'message-back'),
      `42${NSP_PREFIX}["message-back","still"]`);
  });

  test('[websocket] silent client is closed within ping interval + timeout', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'websocket')), 'websocket');
    const raw = new RawClient(server, { answerPings: false });
    raws.push(raw);
    await raw.handshake();
    const lastAlive = raw.lastAlive;
    const closed = await raw.closedWithin(LIMIT + 1000, 'the server to drop the silent client');
    assert.ok(raw.pings.length >= 1, 'the server should have pinged before dropping the client');
    checkDropTime(closed.at - lastAlive);
    await assertAlive(bystander, 'bystander');
  });

  test('[polling] silent client: the pending GET ends and the session is gone', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'polling')), 'polling');
    // Engine.IO level only: long-polls from the handshake on, never answers the ping.
    const raw = await new RawPolling(server, { answerPings: false }).open();
    const lastAlive = raw.openedAt;
    const ended = await withTimeout(raw.polling, LIMIT + 2000, 'the server to end the long-poll of the silent client');
    assert.ok(raw.pings.length >= 1, `the server should have pinged first; last GET: ${JSON.stringify(ended)}`);
    // The pending GET ends with the close packet / a noop, or an error status once the session is gone.
    assert.ok(ended.status !== 200 || /(^|\x1e)[16]$/.test(ended.text), `last GET: ${JSON.stringify(ended)}`);
    checkDropTime(ended.at - lastAlive);
    const after = await raw.get();
    assert.equal(after.status, 400, 'the session must be gone');
    assert.deepEqual(JSON.parse(after.text), { code: 1, message: 'Session ID unknown' });
    await assertAlive(bystander, 'bystander');
  });

  test('[polling->upgrade] client silent after upgrading is closed in time', { timeout: 10000 }, async () => {
    const bystander = await connected(clients.track(makeClient(server, 'upgrade')), 'upgrade');
    // Polling phase: answer pings (as a live client does) until the upgrade is done.
    const poll = await new RawPolling(server).open();
    const raw = new RawClient(server, { answerPings: false, query: poll.q });
    raws.push(raw);
    await withTimeout(new Promise((resolve, reject) => {
      raw.ws.once('open', resolve);
      raw.ws.once('error', reject);
    }), 3000, 'upgrade websocket open');
    raw.send('2probe');
    await raw.next((f) => f === '3probe', 2000, '3probe');
    poll.stop();
    raw.send('5');
    // The pending GET is released (noop) by the upgrade; the loop then stops.
    await withTimeout(poll.polling, 3000, 'the pending GET to be released by the upgrade');
    // The server's heartbeat runs from the last pong (or the handshake); an upgrade is not a pong.
    const lastAlive = poll.lastAlive;
    const closed = await raw.closedWithin(LIMIT + 1000, 'the server to drop the silent upgraded client');
    assert.ok(raw.pings.length >= 1, 'the server should have pinged over the websocket');
    checkDropTime(closed.at - lastAlive);
    await assertAlive(bystander, 'bystander');
  });
});
