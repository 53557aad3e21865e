#pragma once
// MCP tools as Berth sees them (sans-I/O): what a server says a tool is (tools/list), what a
// call gave (tools/call, flattened for the model), and the one flat list of the tools of every
// server of a session. Thread-safety: none (values and a per-session list).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"

namespace berth::mcp {

// One tool as a server describes it (tools/list).
struct tool_descriptor {
  std::string name;
  std::string title;
  std::string description;
  nlohmann::json input_schema = nlohmann::json{{"type", "object"}};
};

// A tools/call result flattened for the model: text parts joined with "\n"; non-text parts
// (image, audio, resource) become a short placeholder line.
struct tool_call_outcome {
  std::string text;
  bool is_error = false;
  nlohmann::json structured;  // structuredContent when present, else null
};

// The results of tools/list and tools/call; TOOL_FAILED naming what is malformed.
core::result<std::vector<tool_descriptor>> map_tools_list(const nlohmann::json& result);
core::result<tool_call_outcome> map_tool_call_result(const nlohmann::json& result);

// Tools of several servers in one flat list. Servers are added in priority order: the first to
// expose a name keeps it; a later tool with a clashing name is exposed as "<server>__<name>"
// (characters outside [A-Za-z0-9_-] become '_', at most 64 chars: what every LLM API accepts),
// with "_2", "_3", ... appended if that clashes too.
class tool_namespace {
 public:
  struct entry {
    std::string exposed_name;
    std::string server;
    tool_descriptor tool;  // tool.name is the server's own name
  };
  void add_server(const std::string& server, const std::vector<tool_descriptor>& tools);
  void remove_server(const std::string& server);
  const entry* find(std::string_view exposed_name) const;
  const std::vector<entry>& entries() const noexcept { return entries_; }

 private:
  void rebuild();
  std::vector<std::pair<std::string, std::vector<tool_descriptor>>> servers_;
  std::vector<entry> entries_;
};

}  // namespace berth::mcp
