#pragma once
// Helpers shared by the provider codecs (private to berth_llm_core).
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

}  // namespace berth::llm::detail
