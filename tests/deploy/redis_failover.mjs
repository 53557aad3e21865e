// The compose `sentinel` profile under load, through nginx (tests/deploy/sentinel_e2e.sh):
// users chat, $KILL_CMD kills the Redis master container, every session is resumed. Prints
// "SUMMARY {...}" (sessions lost, client errors, time to recover) and 'N passed, N failed'.
// Env: BERTH_URL (http://127.0.0.1:3000), USERS (6), KILL_CMD (required), RECOVER_WITHIN_MS (60000).
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { failoverUnderLoad } from '../e2e/support/failover-load.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
function loadClient() {
  for (const dir of ['tests/e2e', 'client', 'tests/deploy']) {
    try { return createRequire(path.join(root, dir, 'package.json'))('socket.io-client'); } catch { /* next */ }
  }
  throw new Error('socket.io-client not found: npm ci in tests/e2e (or client)');
}
const { io } = loadClient();
const url = process.env.BERTH_URL || 'http://127.0.0.1:3000';
const killCmd = process.env.KILL_CMD;
if (!killCmd) { console.log('KILL_CMD missing'); console.log('0 passed, 1 failed'); process.exit(1); }
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) { passed++; console.log(`ok: ${what}`); } else { failed++; console.log(`FAILED: ${what}`); } };

const r = await failoverUnderLoad({
  io, urls: [url], users: Number(process.env.USERS || 6), resumeUrl: () => url,
  recoverWithinMs: Number(process.env.RECOVER_WITHIN_MS || 60000),
  kill: async () => { console.log(execSync(killCmd).toString().trim()); },
});
console.log('SUMMARY ' + JSON.stringify(r.figures));
check(r.recoveredAll, `every user answered again after the kill (median ${r.figures.recoverMsMedian} ms, max ${r.figures.recoverMsMax} ms)`);
check(r.lost.length === 0, `no session lost (${JSON.stringify(r.lost)})`);
check(r.historyMissing === 0, 'history answered before the kill is intact');
const unclean = Object.keys(r.figures.errorCodes).filter((c) => !['INTERNAL', 'LLM_UNAVAILABLE', 'HISTORY_NOT_SAVED'].includes(c));
check(unclean.length === 0, `clients saw only clean errors (${JSON.stringify(r.figures.errorCodes)})`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
