// One user sends MAX_REQUESTS_PER_USER + 1 messages at once (each waits for a tool approval, so
// none finishes): the last one must be refused with TOO_MANY_REQUESTS, which Berth logs as
// "Too many concurrent requests" (the phrase the operator guide greps for). Used by
// tests/deploy/guide_commands.sh. Env: BERTH_URL, LIMIT (5), STEP_TIMEOUT_MS (30000).
// Prints the ack codes and 'N passed, N failed'; exit 0 only if the refusal came.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
function loadClient() {
  for (const dir of ['tests/e2e', 'client']) {
    try { return createRequire(path.join(root, dir, 'package.json'))('socket.io-client'); } catch { /* next */ }
  }
  throw new Error('socket.io-client not found: npm ci in tests/e2e (or client)');
}
const { io } = loadClient();
const url = process.env.BERTH_URL || 'http://127.0.0.1:3000';
const limit = Number(process.env.LIMIT || 5);
const stepMs = Number(process.env.STEP_TIMEOUT_MS || 30000);

const sock = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: stepMs });
const timer = setTimeout(() => { console.log('FAILED: timeout'); console.log('0 passed, 1 failed'); process.exit(1); }, stepMs * 2);
await new Promise((resolve, reject) => {
  sock.once('system:ready', resolve);
  sock.once('connect_error', (e) => reject(e));
});
const acks = await Promise.all(Array.from({ length: limit + 1 }, (_, i) =>
  sock.timeout(stepMs).emitWithAck('message', `List all files in /workspace (${i})`).catch((e) => ({ ok: false, code: `NO_ACK ${e.message}` }))));
const codes = acks.map((a) => (Array.isArray(a) ? a[0] : a)).map((a) => (a && a.ok ? "ok" : (a && (a.code || (a.error && a.error.code))) || JSON.stringify(a)));
console.log(`acks: ${codes.join(' ')}`);
const refused = codes.filter((c) => c === 'TOO_MANY_REQUESTS').length;
sock.emit('session:end');
sock.close();
clearTimeout(timer);
if (refused >= 1 && codes.filter((c) => c === 'ok').length === limit) {
  console.log(`ok: ${limit} accepted, ${refused} refused with TOO_MANY_REQUESTS`);
  console.log('1 passed, 0 failed');
  process.exit(0);
}
console.log('FAILED: expected exactly the request over the limit to be refused');
console.log('0 passed, 1 failed');
process.exit(1);
