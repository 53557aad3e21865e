#pragma once
// Sans-I/O provider codecs: an llm_request becomes an HTTP call (URL, headers, JSON body), and an
// HTTP reply (status, headers, body) becomes an llm_reply or a classified error. No sockets here,
// so every provider's wire format is unit-tested byte by byte.
// Thread-safety: codecs are immutable after construction; build/parse are const and reentrant.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"
#include "berth/http/message.hpp"
#include "berth/llm/sse.hpp"
#include "berth/llm/types.hpp"

namespace berth::llm {

// A parsed reply or a classified failure: llm_error (4xx except 408/429, malformed body, unknown
// tool) or llm_unavailable (408, 429, 5xx, network). retry_after is the server's hint, if any.
struct parse_outcome {
  core::result<llm_reply> reply;
  bool retryable = false;
  std::optional<std::chrono::milliseconds> retry_after;
};

struct codec_settings {
  std::string base_url;       // e.g. https://api.openai.com/v1 (a trailing '/' is ignored)
  std::string api_key;        // may be empty for openai-compatible local servers
  std::string default_model;  // used when llm_request::model is empty
};

// What one event of a streamed reply brought: answer text to show at once (may be empty), or
// the end of the stream (`done`: the provider said it finished), or a failure (an error event,
// or an event we cannot understand): stop reading.
struct stream_progress {
  std::string text;
  bool done = false;
  std::optional<parse_outcome> failed;
};

// Assembles one streamed reply (sans-I/O): server-sent events in, text deltas out; tool calls
// that arrive in pieces are kept until finish() returns them whole. One per HTTP response; the
// llm_request given to make_stream_decoder must outlive it.
class stream_decoder {
 public:
  virtual ~stream_decoder() = default;
  virtual stream_progress on_event(const sse_event& ev) = 0;
  // The stream ended: the complete reply (tool names checked like parse()), or LLM_UNAVAILABLE
  // when the provider stopped before its documented end (no finish reason / message_stop).
  virtual parse_outcome finish() = 0;
};

class provider_codec {
 public:
  virtual ~provider_codec() = default;
  virtual std::string_view name() const noexcept = 0;
  // Fails (llm_error) only when the request cannot be expressed, e.g. a missing required key.
  virtual core::result<http::call> build(const llm_request& req) const = 0;
  // `req` is the request that produced `rep`: tool names are checked against req.tools.
  virtual parse_outcome parse(const llm_request& req, const http::reply& rep) const = 0;
  // The same request asking for a streamed reply (text/event-stream): OpenAI `stream: true` with
  // `stream_options.include_usage`, Anthropic `stream: true`, Gemini
  // `:streamGenerateContent?alt=sse`. A reply that is not an event stream (an error status, or a
  // server that ignores the flag) goes to parse() as usual.
  virtual core::result<http::call> build_stream(const llm_request& req) const = 0;
  virtual std::unique_ptr<stream_decoder> make_stream_decoder(const llm_request& req) const = 0;
  const std::string& api_key() const noexcept { return settings_.api_key; }
  const codec_settings& settings() const noexcept { return settings_; }

 protected:
  explicit provider_codec(codec_settings s) : settings_(std::move(s)) {}
  codec_settings settings_;
};

std::unique_ptr<provider_codec> make_gemini_codec(codec_settings s);
std::unique_ptr<provider_codec> make_openai_codec(codec_settings s);
std::unique_ptr<provider_codec> make_anthropic_codec(codec_settings s);

// Default models when LLM_MODEL is unset.
inline constexpr std::string_view default_gemini_model = "gemini-2.5-flash";
inline constexpr std::string_view default_openai_model = "gpt-4o-mini";
inline constexpr std::string_view default_anthropic_model = "claude-sonnet-4-5";
inline constexpr std::string_view local_model_name = "berth-local";

// Replaces the secret (and words that start with its first characters, as providers echo a masked
// key such as "sk-abcd****wxyz") by "[redacted]". Empty secret: text unchanged.
std::string redact(std::string text, std::string_view secret);

// Retry hint from `retry-after-ms` or `retry-after` (delta-seconds); nullopt when absent/invalid.
std::optional<std::chrono::milliseconds> retry_after_hint(const http::reply& rep);

}  // namespace berth::llm
