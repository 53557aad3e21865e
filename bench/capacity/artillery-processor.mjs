// Artillery processor of bench/capacity: bench/artillery's processor (the event inbox, ready /
// approval / tool / turn metrics, agent:error counters) plus one step for the guide's think time.
// capacity.mjs writes the scenario; it runs with KEEP_SESSIONS=1 (no session:end: the guide's flow).
import { performance } from "node:perf_hooks";

export { waitReady, markTurnStart, captureCallId, waitAnswer } from "../artillery/processor.mjs";

// After the think step, just before tool:approval is emitted: berth.tool_roundtrip_ms then
// measures approval -> tool:output without the think time.
export async function markApproval(context) {
  context.vars.$approvalAt = performance.now();
}
