// Users chatting while something (the caller's `kill`) takes the Redis master away; then every
// session is resumed elsewhere. Shared by tests/e2e/agent/failover.test.mjs (berth processes on
// loopback) and tests/deploy/redis_failover.mjs (the compose `sentinel` profile through nginx).
// Returns {figures, lost, recoveredAll}: figures is what the reports print (sessions lost,
// client errors by code, time to recover), lost the sessions that did not come back.
import { once } from "./berth.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One turn: "note <user>-<n>" -> ack -> agent:response (or the error the client saw).
async function turn(s, text) {
  const answered = new Promise((resolve) => {
    const ok = () => { s.off("agent:error", bad); clearTimeout(t); resolve({ ok: true }); };
    const bad = (e) => { s.off("agent:response", ok); clearTimeout(t); resolve({ ok: false, code: e?.code }); };
    const t = setTimeout(() => { s.off("agent:response", ok); s.off("agent:error", bad); resolve({ ok: false, code: "NO_ANSWER" }); }, 10000);
    s.once("agent:response", ok);
    s.once("agent:error", bad);
  });
  let ack;
  try {
    ack = await s.timeout(10000).emitWithAck("message", text);
  } catch {
    ack = { ok: false, code: "ACK_TIMEOUT" };
  }
  if (!ack.ok) {
    answered.then(() => {}); // settles by itself (timer) if nothing comes
    return { ok: false, code: ack.code };
  }
  return answered;
}

// io: socket.io-client's io(); urls: where users connect (round robin); resumeUrl(i): where user
// i resumes; kill(): takes the master away; loadMs: chatting before the kill.
export async function failoverUnderLoad({ io, urls, users = 8, kill, resumeUrl = (i) => urls[(i + 1) % urls.length],
  loadMs = 2000, recoverWithinMs = 30000, transports = ["websocket"] }) {
  const all = [];
  for (let i = 0; i < users; i++) {
    const url = urls[i % urls.length];
    all.push({ id: i, url, socket: io(url, { transports, reconnection: false }), answered: [], errors: [] });
  }
  try {
    const readies = await Promise.all(all.map((u) => once(u.socket, "system:ready", 60000)));
    all.forEach((u, i) => { u.ready = readies[i]; });
    let stopping = false;
    const loads = all.map(async (u) => {
      for (let n = 0; !stopping && n < 100000; n++) {
        const at = Date.now();
        const text = `note ${u.id}-${n}`;
        const r = await turn(u.socket, text);
        if (r.ok) u.answered.push({ text, start: at, at: Date.now() });
        else {
          u.errors.push({ code: r.code, at });
          await sleep(100); // a client that retries, not one that spins
        }
      }
    });
    await sleep(loadMs);
    const killedAt = Date.now();
    await kill();
    // Recovered: a turn *started* after the kill was answered (one in flight at the kill may be
    // answered without touching Redis again).
    const recovered = (u) => u.answered.some((x) => x.start > killedAt);
    while (Date.now() < killedAt + recoverWithinMs && !all.every(recovered)) await sleep(100);
    const recoveredAll = all.every(recovered);
    await sleep(1000);
    stopping = true;
    await Promise.all(loads);

    // A session is lost if it does not resume with its container, or if a turn answered >= 1 s
    // before the kill is missing from its history (its write had long been acknowledged).
    const lost = [];
    let historyMissing = 0;
    for (const u of all) {
      u.socket.close();
      const s = io(resumeUrl(u.id), { transports, reconnection: false, query: { sessionId: u.ready.sessionId },
        auth: { resumeToken: u.ready.resumeToken } });
      try {
        const readyP = once(s, "system:ready", 30000);
        readyP.catch(() => {}); // the loser of the race must not reject unobserved
        const refusedP = once(s, "connect_error", 30000).then((e) => ({ error: e }), () => ({ error: { message: "no answer in 30 s" } }));
        const r = await Promise.race([readyP, refusedP]);
        if (r.error || !r.resumed || r.containerId !== u.ready.containerId) {
          lost.push({ sid: u.ready.sessionId, why: r.error ? r.error.message : `resumed=${r.resumed}` });
          continue;
        }
        const texts = new Set((r.history || []).map((h) => h.content));
        historyMissing += u.answered.filter((x) => x.at < killedAt - 1000 && !texts.has(x.text)).length;
      } finally {
        s.close();
      }
    }
    const recoverMs = all.filter(recovered)
      .map((u) => Math.min(...u.answered.filter((x) => x.start > killedAt).map((x) => x.at)) - killedAt)
      .sort((x, y) => x - y);
    const errors = all.flatMap((u) => u.errors);
    const errorCodes = {};
    for (const e of errors) errorCodes[e.code] = (errorCodes[e.code] || 0) + 1;
    const figures = {
      users,
      sessionsLost: lost.length,
      turnsAnswered: all.reduce((n, u) => n + u.answered.length, 0),
      clientErrors: errors.length,
      errorCodes,
      recoveredUsers: recoverMs.length,
      recoverMsMedian: recoverMs.length ? recoverMs[Math.floor(recoverMs.length / 2)] : null,
      recoverMsMax: recoverMs.length ? recoverMs[recoverMs.length - 1] : null,
      historyMissingBeforeKill: historyMissing,
    };
    return { figures, lost, recoveredAll, historyMissing };
  } finally {
    for (const u of all) u.socket.close();
  }
}
