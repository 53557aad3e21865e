#!/usr/bin/env node
// Prints a short summary of an Artillery JSON report (`artillery run -o report.json`) and exits
// non-zero when the error rate is above MAX_ERROR_RATE (a fraction, default 0) or no VU completed.
//   node summarize.mjs report.json [summary.md]
import { readFileSync, writeFileSync } from 'node:fs';

const [reportPath, summaryPath] = process.argv.slice(2);
if (!reportPath) {
  console.error('usage: summarize.mjs report.json [summary.md]');
  process.exit(2);
}
const maxErrorRate = Number(process.env.MAX_ERROR_RATE ?? 0);
const { aggregate } = JSON.parse(readFileSync(reportPath, 'utf8'));
const counters = aggregate.counters || {};
const summaries = aggregate.summaries || {};

const created = counters['vusers.created'] || 0;
const completed = counters['vusers.completed'] || 0;
const failed = counters['vusers.failed'] || 0;
const turnsOk = counters['berth.turns_ok'] || 0;
const errorRate = created > 0 ? failed / created : 1;

const lines = [];
lines.push(`virtual users: created ${created}, completed ${completed}, failed ${failed}; tool turns ok ${turnsOk}`);
lines.push(`error rate: ${(errorRate * 100).toFixed(2)} % (threshold ${(maxErrorRate * 100).toFixed(2)} %)`);
const errors = Object.entries(counters).filter(([k]) => k.startsWith('errors.') || k.startsWith('berth.agent_error.') ||
  ['berth.tool_is_error', 'berth.queued', 'berth.session_end_timeout'].includes(k) || k.startsWith('berth.session_end_refused.'));
for (const [k, v] of errors) lines.push(`  ${k}: ${v}`);

const metrics = [
  ['berth.ready_ms', 'connect -> system:ready'],
  ['berth.approval_wait_ms', 'message -> tool:approval_required'],
  ['berth.tool_roundtrip_ms', 'tool:approval -> tool:output'],
  ['berth.turn_ms', 'message -> agent:response (full turn)'],
  ['socketio.response_time', 'emit -> ack (message, tool:approval)'],
  ['vusers.session_length', 'whole VU (connect .. session:end)']
];
const fmt = (x) => (x === undefined ? '-' : Number(x).toFixed(1));
lines.push('');
lines.push('| metric (ms) | what | count | p50 | p95 | p99 | max |');
lines.push('|---|---|---:|---:|---:|---:|---:|');
for (const [name, what] of metrics) {
  const s = summaries[name];
  if (!s) continue;
  lines.push(`| ${name} | ${what} | ${s.count} | ${fmt(s.p50 ?? s.median)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.max)} |`);
}

const text = lines.join('\n');
console.log(text);
if (summaryPath) writeFileSync(summaryPath, text + '\n');

let rc = 0;
if (completed === 0) {
  console.error('FAIL: no virtual user completed');
  rc = 1;
}
if (errorRate > maxErrorRate) {
  console.error(`FAIL: error rate ${(errorRate * 100).toFixed(2)} % > ${(maxErrorRate * 100).toFixed(2)} %`);
  rc = 1;
}
process.exit(rc);
