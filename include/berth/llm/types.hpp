#pragma once
// Provider-neutral chat types: what the agent hands to an LLM provider and what it gets back.
// Plain values (copyable, no I/O); every provider codec maps them to and from its wire format.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::llm {

enum class role { system, user, assistant, tool };

std::string_view to_string(role r) noexcept;

// One tool invocation proposed by the model. `id` is unique within a conversation.
struct tool_call {
  std::string id;
  std::string name;
  nlohmann::json args = nlohmann::json::object();
};

struct chat_message {
  llm::role role = role::user;
  std::string content;                 // text (for role::tool: the tool's output)
  std::vector<tool_call> tool_calls;   // role::assistant only
  std::string tool_call_id;            // role::tool only: the call this result answers
  std::string name;                    // role::tool: the tool's name (Gemini needs it)
  bool is_error = false;               // role::tool: the tool failed (or the user rejected it)

  static chat_message system(std::string text) { return {role::system, std::move(text), {}, {}, {}, false}; }
  static chat_message user(std::string text) { return {role::user, std::move(text), {}, {}, {}, false}; }
  static chat_message assistant(std::string text, std::vector<tool_call> calls = {}) {
    return {role::assistant, std::move(text), std::move(calls), {}, {}, false};
  }
  static chat_message tool_result(std::string call_id, std::string tool_name, std::string output,
                                  bool error = false) {
    return {role::tool, std::move(output), {}, std::move(call_id), std::move(tool_name), error};
  }
};

// A tool the model may call; input_schema is a JSON Schema object.
struct tool_spec {
  std::string name;
  std::string description;
  nlohmann::json input_schema = nlohmann::json{{"type", "object"}};
};

struct llm_request {
  std::string system_prompt;
  std::vector<chat_message> messages;
  std::vector<tool_spec> tools;
  std::uint32_t max_output_tokens = 8192;
  std::string model;  // empty: the provider's default
};

enum class stop_reason { end_turn, tool_use, max_tokens, other };

std::string_view to_string(stop_reason r) noexcept;

struct usage {
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
};

struct llm_reply {
  std::string text;
  std::vector<tool_call> tool_calls;
  llm::stop_reason stop_reason = stop_reason::end_turn;
  std::string raw_stop_reason;  // the provider's own word ("STOP", "tool_calls", ...)
  llm::usage usage;
  std::string model;  // as reported by the provider, when it does
};

}  // namespace berth::llm
