#pragma once
// Helpers shared by the provider codecs (private to berth_llm_core).
#include <array>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "berth/llm/codec.hpp"

namespace berth::llm::detail {

// base + path with exactly one '/' between them.
std::string join_url(std::string_view base, std::string_view path);

// A non-2xx reply: mapped by status, with the provider's own error text (redacted, bounded).
parse_outcome http_failure(std::string_view provider, const http::reply& rep, std::string_view secret);

// A 2xx reply we could not understand: llm_error, not retryable.
parse_outcome malformed(std::string_view provider, std::string_view what, std::string_view secret);

// An error event inside a 200 event stream ({"error": {...}} or {"type":"error","error":{...}}):
// LLM_UNAVAILABLE for overload, rate limit and server errors (worth another attempt when no text
// was shown yet), LLM_ERROR otherwise. The provider's text is redacted and bounded.
parse_outcome stream_error(std::string_view provider, std::string_view event_data, std::string_view secret);

// The stream ended (the connection closed) before the provider's documented last event.
parse_outcome stream_cut(std::string_view provider, std::string_view missing);

// Success, after checking every tool call names a tool the request offered.
parse_outcome accept(std::string_view provider, const llm_request& req, llm_reply reply);

// Text of a JSON value: strings as-is, anything else dumped.
std::string text_of(const nlohmann::json& j);

// A provider's words for how a reply ended and where it reports usage and model.
struct reply_words {
  std::string_view stop_field;                  // in the object passed to finish_reply as stop_holder
  std::string_view tool_use;                    // empty: only the presence of tool calls tells
  std::string_view max_tokens;
  std::array<std::string_view, 2> end_turn{};   // an absent (empty) reason also ends the turn
  std::string_view usage, input_tokens, output_tokens;
  std::string_view model;
};

// Fills out.raw_stop_reason, stop_reason, usage and model from the reply `j`; the stop reason is
// `stop_holder[words.stop_field]` (a choice or candidate object for some providers).
void finish_reply(llm_reply& out, const nlohmann::json& j, const nlohmann::json& stop_holder,
                  const reply_words& words);

// Base of the JSON provider codecs. A non-2xx reply, or a body that is not a JSON object, is
// classified here alike for every provider; parse_object reads the rest.
class json_codec : public provider_codec {
 public:
  parse_outcome parse(const llm_request& req, const http::reply& rep) const final;

 protected:
  using provider_codec::provider_codec;
  virtual parse_outcome parse_object(const llm_request& req, const http::reply& rep,
                                     const nlohmann::json& j) const = 0;
  // A POST of `body` as JSON to `url`; the caller adds its auth header.
  static http::call json_post(std::string url, const nlohmann::json& body);
};

// A `Codec` for the provider's public endpoint and model where the settings leave them empty.
template <class Codec>
std::unique_ptr<provider_codec> make_codec(codec_settings s, std::string_view base_url, std::string_view model) {
  if (s.base_url.empty()) s.base_url = base_url;
  if (s.default_model.empty()) s.default_model = model;
  return std::make_unique<Codec>(std::move(s));
}

}  // namespace berth::llm::detail
