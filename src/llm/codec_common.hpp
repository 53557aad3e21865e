#pragma once
// Helpers shared by the provider codecs (private to berth_llm_core).
#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "berth/llm/codec.hpp"

namespace berth::llm::detail {

// base + path with exactly one '/' between them.
std::string join_url(std::string_view base, std::string_view path);

// A non-2xx reply: mapped by status, with the provider's own error text (redacted, bounded).
parse_outcome http_failure(std::string_view provider, const http_reply& rep, std::string_view secret);

// A 2xx reply we could not understand: llm_error, not retryable.
parse_outcome malformed(std::string_view provider, std::string_view what, std::string_view secret);

// Success, after checking every tool call names a tool the request offered.
parse_outcome accept(std::string_view provider, const llm_request& req, llm_reply reply);

// Parses an untrusted body without exceptions; discarded() on failure.
nlohmann::json parse_json(std::string_view body);

// Unsigned integer field, 0 when absent or not a number.
std::uint64_t uint_field(const nlohmann::json& j, std::string_view key);

// Text of a JSON value: strings as-is, anything else dumped.
std::string text_of(const nlohmann::json& j);

// A provider's words for how a reply ended and where it reports usage and model.
struct reply_words {
  std::string_view tool_use;                          // empty: only the presence of tool calls tells
  std::string_view max_tokens;
  std::initializer_list<std::string_view> end_turn;   // an absent reason also ends the turn
  std::string_view usage, input_tokens, output_tokens;
  std::string_view model;
};

// Fills out.raw_stop_reason, stop_reason, usage and model from the reply `j`; the stop reason is
// `stop_holder[stop_field]` (a choice or candidate object for some providers).
void finish_reply(llm_reply& out, const nlohmann::json& j, const nlohmann::json& stop_holder,
                  std::string_view stop_field, const reply_words& words);

}  // namespace berth::llm::detail
