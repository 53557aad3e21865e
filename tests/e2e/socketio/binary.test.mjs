// Binary both ways in the three transport modes: Buffers / Uint8Arrays as arguments, nested in
// objects and arrays, several attachments per packet, in events and in acks in both directions.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { Clients, MODES, connected, emitAck, makeClient, startServer, waitEvent } from './lib.mjs';

const server = await startServer();
const clients = new Clients();
afterEach(() => clients.closeAll());

/** Replaces binary values by {bin: hex} so deepEqual compares bytes whatever the binary type. */
function norm(v) {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (v instanceof ArrayBuffer) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

function bytes(n, seed) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

const payload = () => [
  Buffer.from([1, 2, 3]),
  { a: new Uint8Array([4, 5, 6]), nested: { b: bytes(256, 7), list: [bytes(1, 9), 'text', 12] } },
  'between',
  [bytes(70000, 3), { deep: { deeper: [Buffer.from([0xff, 0x00, 0x1e, 0x0a])] } }],
];

for (const mode of Object.keys(MODES)) {
  describe(`binary [${mode}]`, () => {
    test('event with several attachments comes back byte-exact', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const args = payload();
      const back = waitEvent(socket, 'message-back', 5000);
      socket.emit('message', ...args);
      assert.deepEqual(norm(await back), norm(args));
    });

    test('a lone binary argument and a placeholder look-alike that is plain JSON', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const back = waitEvent(socket, 'message-back', 5000);
      const args = [bytes(1024, 1), { _placeholder: 'not a real one', num: 'x' }];
      socket.emit('message', ...args);
      assert.deepEqual(norm(await back), norm(args));
    });

    test('empty and one-byte attachments', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const args = [Buffer.alloc(0), { e: new Uint8Array(0), one: Buffer.from([0]) }];
      const reply = await emitAck(socket, 5000, 'message-with-ack', ...args);
      assert.deepEqual(norm(reply), norm(args));
    });

    test('client -> server ack with binary (BINARY_EVENT answered by BINARY_ACK)', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const args = payload();
      const reply = await emitAck(socket, 5000, 'message-with-ack', ...args);
      assert.deepEqual(norm(reply), norm(args));
    });

    test('server -> client binary event and binary ack', { timeout: 8000 }, async () => {
      const socket = await connected(clients.track(makeClient(server, mode)), mode);
      const sent = { blob: bytes(4096, 5), parts: [Buffer.from('abc'), Buffer.from([0])] };
      const answer = { echoed: bytes(300, 11), more: [Buffer.from([9, 8, 7])] };
      let received;
      socket.on('ack-me', (p, cb) => { received = p; cb(answer); });
      const [res] = await emitAck(socket, 5000, 'request-server-ack', sent);
      assert.deepEqual(norm(received), norm(sent));
      assert.deepEqual(norm(res), norm({ reply: answer }));
    });
  });
}
