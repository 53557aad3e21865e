#include "berth/gateway/history_mapping.hpp"
#include "berth/core/json.hpp"

#include <algorithm>
#include <set>

namespace berth::gateway {

using json = nlohmann::json;

std::vector<session::history_entry> to_history_entries(const llm::chat_message& m, std::int64_t ts_ms) {
  std::vector<session::history_entry> out;
  const std::string role(llm::to_string(m.role));
  if (m.role == llm::role::assistant && !m.tool_calls.empty()) {
    if (!m.content.empty()) out.push_back({role, m.content, std::nullopt, std::nullopt, ts_ms});
    for (const auto& c : m.tool_calls) out.push_back({role, c.args.dump(), c.name, c.id, ts_ms});
    return out;
  }
  session::history_entry e{role, m.content, std::nullopt, std::nullopt, ts_ms};
  if (m.role == llm::role::tool) {
    e.name = m.name;
    e.call_id = m.tool_call_id;
    if (m.is_error) e.content = "[error] " + e.content;
  }
  out.push_back(std::move(e));
  return out;
}

namespace {

// See from_history_entries: providers answer a conversation that starts elsewhere than at a user
// message, or holds an orphan tool result or an unanswered call, with a 400.
std::vector<llm::chat_message> whole_conversation(std::vector<llm::chat_message> in) {
  std::vector<llm::chat_message> out;
  std::size_t i = 0;
  while (i < in.size() && in[i].role != llm::role::user) ++i;
  while (i < in.size()) {
    auto& m = in[i++];
    if (m.role == llm::role::tool) continue;  // not right after its call: an orphan
    if (m.role != llm::role::assistant || m.tool_calls.empty()) {
      out.push_back(std::move(m));
      continue;
    }
    // The results that follow, each answering one call of this message once.
    std::vector<llm::chat_message> results;
    std::set<std::string> answered;
    for (; i < in.size() && in[i].role == llm::role::tool; ++i) {
      const auto& id = in[i].tool_call_id;
      const bool ours = std::any_of(m.tool_calls.begin(), m.tool_calls.end(), [&](const auto& c) { return c.id == id; });
      if (ours && answered.insert(id).second) results.push_back(std::move(in[i]));
    }
    std::erase_if(m.tool_calls, [&](const llm::tool_call& c) { return answered.count(c.id) == 0; });
    if (m.tool_calls.empty() && m.content.empty()) continue;
    out.push_back(std::move(m));
    for (auto& r : results) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace

std::vector<llm::chat_message> from_history_entries(const std::vector<session::history_entry>& entries) {
  std::vector<llm::chat_message> out;
  for (const auto& e : entries) {
    if (e.role == "user") {
      out.push_back(llm::chat_message::user(e.content));
    } else if (e.role == "assistant" && e.call_id) {
      auto args = core::parse_json(e.content);
      llm::tool_call call{*e.call_id, e.name.value_or(""), args.is_object() ? args : json::object()};
      // Tool-call entries join the assistant message just before them (its text, or earlier calls).
      if (!out.empty() && out.back().role == llm::role::assistant)
        out.back().tool_calls.push_back(std::move(call));
      else
        out.push_back(llm::chat_message::assistant("", {std::move(call)}));
    } else if (e.role == "assistant") {
      out.push_back(llm::chat_message::assistant(e.content));
    } else if (e.role == "tool" && e.call_id) {
      const bool is_error = e.content.rfind("[error] ", 0) == 0;
      out.push_back(llm::chat_message::tool_result(*e.call_id, e.name.value_or(""),
                                                   is_error ? e.content.substr(8) : e.content, is_error));
    }
  }
  return whole_conversation(std::move(out));
}

}  // namespace berth::gateway
