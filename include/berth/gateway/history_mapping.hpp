#pragma once
// History persistence mapping (pure): one Redis history entry per chat message, and one entry per
// tool call of an assistant message, so a resumed conversation keeps its call/result pairs.
#include <cstdint>
#include <vector>

#include "berth/llm/types.hpp"
#include "berth/session/schema.hpp"

namespace berth::gateway {

std::vector<session::history_entry> to_history_entries(const llm::chat_message& m, std::int64_t ts_ms);
// Rebuilds the conversation as every provider accepts it, whatever Redis holds (a crash mid-turn,
// a list trimmed mid-turn by an older Berth, garbage): it starts with a user message; a tool
// result is kept only right after the assistant message that made its call (once per call);
// calls left without a result are dropped, and an assistant message left with neither text nor
// calls goes too.
std::vector<llm::chat_message> from_history_entries(const std::vector<session::history_entry>& entries);

}  // namespace berth::gateway
