#pragma once
// History persistence mapping (pure): one Redis history entry per chat message, and one entry per
// tool call of an assistant message, so a resumed conversation keeps its call/result pairs.
#include <cstdint>
#include <vector>

#include "berth/llm/types.hpp"
#include "berth/session/schema.hpp"

namespace berth::gateway {

std::vector<session::history_entry> to_history_entries(const llm::chat_message& m, std::int64_t ts_ms);
// Rebuilds the conversation; assistant calls left without results (a crash mid-turn) are dropped.
std::vector<llm::chat_message> from_history_entries(const std::vector<session::history_entry>& entries);

}  // namespace berth::gateway
