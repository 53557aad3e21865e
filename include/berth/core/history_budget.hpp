#pragma once
// The one trim policy for a conversation history over its token budget, shared by the Redis list
// (session/schema.cpp's append script mirrors it in Lua) and the turn machine's in-memory history
// (what each LLM request sends). It cuts only where a turn starts (before a user message): a
// trimmed history never begins with an assistant message or with a tool result whose call was
// dropped, which providers answer with a 400. Pure; thread-safe.
#include <cstddef>
#include <span>

namespace berth::core {

struct budget_item {
  std::size_t tokens = 0;    // the entry's estimate
  bool starts_turn = false;  // a user message
};

// How many of the oldest items to drop. The smallest cut that makes the rest fit in `budget`,
// moved forward to the next turn start; when no turn starts after it, the newest turn is kept
// whole even though it alone is over the budget (cutting into it would orphan its tool results).
// Items before the first turn start (a history damaged elsewhere, e.g. trimmed mid-turn by an
// older Berth) are always dropped. Without any turn start at all: the plain smallest cut (the
// newest item is always kept).
std::size_t turns_to_drop(std::span<const budget_item> items, std::size_t budget) noexcept;

}  // namespace berth::core
