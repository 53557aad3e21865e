// bench/chaos/run.sh's runner: tests/chaos at the issue's size, with the figures written out and
// the 5 s recovery goal judged (the CI test only bounds it).
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { runChaos, scenarios } from "../../tests/chaos/scenarios.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const { io } = createRequire(path.join(root, "tests/e2e/package.json"))("socket.io-client");
const users = Number(process.env.USERS || 50);
const names = (process.env.SCENARIOS || Object.keys(scenarios).join(",")).split(",").filter(Boolean);
const goalP95 = Number(process.env.RECOVER_P95_GOAL_MS || 5000);
const git = (a) => { try { return execFileSync("git", ["-C", root, ...a]).toString().trim(); } catch { return null; } };

const started = new Date();
const result = await runChaos({ io, userCount: users, names, log: (l) => console.error(`chaos: ${l}`) });
const verdicts = {};
for (const name of names) {
  const f = result.scenarios[name];
  const why = [];
  if (!f) why.push("did not run");
  else {
    if (f.sessionsLost) why.push(`${f.sessionsLost} sessions lost`);
    if (f.historyMissing) why.push(`${f.historyMissing} history entries missing`);
    if (f.limiterSlotsLeaked) why.push(`${f.limiterSlotsLeaked} limiter slots leaked`);
    if (f.usersAffected !== f.usersRecovered) why.push(`${f.usersAffected - f.usersRecovered} users never worked again`);
    if (f.recoverMsP95 !== null && f.recoverMsP95 > goalP95) why.push(`recovery p95 ${f.recoverMsP95} ms > ${goalP95} ms`);
  }
  verdicts[name] = why.length ? `FAIL: ${why.join("; ")}` : "PASS";
}
if (result.containersLeaked) verdicts["containers at the end"] = `FAIL: ${result.containersLeaked} leaked`;
const out = { date: started.toISOString(), commit: git(["rev-parse", "HEAD"]), dirty: Boolean(git(["status", "--porcelain", "--untracked-files=no"])),
  liveRestore: process.env.CHAOS_LIVE_RESTORE === "1", ...result, verdicts };
const dir = path.join(root, "bench/results/chaos");
mkdirSync(dir, { recursive: true });
const file = path.join(dir, `chaos-${started.toISOString().replace(/[-:]|\.\d+/g, "")}.json`);
writeFileSync(file, JSON.stringify(out, null, 1));
console.log(`chaos: ${users} users, ${out.date}, ${out.commit?.slice(0, 12)}${out.dirty ? "+dirty" : ""}${out.liveRestore ? ", dockerd with live-restore" : ""}`);
console.log("| scenario | users affected | recovered | recovery p50 / p95 / max ms | sessions lost | history missing | containers unaccounted right after | limiter slots leaked | client errors | verdict |");
console.log("|---|---:|---:|---|---:|---:|---:|---:|---|---|");
for (const name of names) {
  const f = result.scenarios[name];
  if (!f) continue;
  console.log(`| ${name} | ${f.usersAffected} | ${f.usersRecovered} | ${f.recoverMsP50 ?? "–"} / ${f.recoverMsP95 ?? "–"} / ${f.recoverMsMax ?? "–"}${f.recoverFromInjectionStartMsP95 != null ? ` (from the injection's start: p95 ${f.recoverFromInjectionStartMsP95})` : ""} | ${f.sessionsLost} | ${f.historyMissing} | ${f.containersUnaccounted} | ${f.limiterSlotsLeaked} | ${JSON.stringify(f.errorCodes)} | ${verdicts[name]} |`);
}
console.log(`containers leaked at the end (after the orphan reaper's rounds): ${result.containersLeaked} ${JSON.stringify(result.containersAtEnd)}`);
console.log(`result: ${file}`);
process.exit(Object.values(verdicts).every((v) => v === "PASS") ? 0 : 1);
