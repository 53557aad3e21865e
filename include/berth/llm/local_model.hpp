#pragma once
// The embedded `local` model: offline and deterministic (same request, same reply). It maps plain
// requests to the sandbox tools and turns tool results into a final answer, so the whole agent
// flow works with no key and no network:
//   "List all files in /workspace"           -> list_files {path:"/workspace"}
//   "read X" / "show me X" / "cat X"         -> read_file {path}
//   "write <content> to X" / "create X with <content>" -> write_file {path, content}
//   "run `cmd`" / "run: cmd"                 -> run_command {command}
//   anything else                            -> a plain answer listing what it can do
// After tool results it answers with a summary ("Here are the files in /workspace: ...").
// Relative paths are taken under /workspace. Only tools offered in the request are called (by exact
// name, or a namespaced name ending in "<sep>list_files").
#include "berth/llm/types.hpp"

namespace berth::llm {

llm_reply local_complete(const llm_request& req);

}  // namespace berth::llm
