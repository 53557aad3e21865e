#pragma once
// The LLM provider interface the agent talks to, and the factory that picks one from
// LLM_PROVIDER: local (embedded, offline) | gemini | openai | anthropic.
// HTTP providers retry 429/408/5xx and network failures with exponential backoff (honouring
// Retry-After / retry-after-ms / Gemini's RetryInfo up to a cap) for a bounded number of attempts.
// API keys never appear in logs or error messages.
// Lifetime: the provider must outlive its complete() calls. Thread-safety: complete() may run
// concurrently; providers hold no per-call state.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "berth/core/config.hpp"
#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/llm/codec.hpp"
#include "berth/http/client.hpp"
#include "berth/llm/types.hpp"

namespace berth::llm {

struct retry_policy {
  unsigned max_attempts = 4;                          // first try included
  std::chrono::milliseconds base_backoff{500};        // doubles per attempt
  std::chrono::milliseconds max_backoff{8000};
  std::chrono::milliseconds max_retry_after{30000};   // a longer server hint fails fast instead
};

struct provider_options {
  http::client_options http;
  retry_policy retry;
};

// Gets the answer's text piece by piece while the model writes (on the caller's executor).
using delta_fn = std::function<void(std::string_view text)>;

class llm_provider {
 public:
  virtual ~llm_provider() = default;
  virtual std::string_view name() const noexcept = 0;  // "local", "gemini", "openai", "anthropic"
  virtual std::string model() const = 0;               // the default model of this provider
  // Never throws for peer/network failures: errors are llm_error or llm_unavailable.
  virtual boost::asio::awaitable<core::result<llm_reply>> complete(const llm_request& req) = 0;
  // The same answer streamed: `on_delta` gets its text as it arrives (the pieces concatenate to
  // the reply's text), then the whole reply comes back as complete() gives it, tool calls
  // assembled. A failure before any text was delivered is retried like complete(); after it, the
  // call fails at once (LLM_UNAVAILABLE when the stream was cut), as text already shown cannot be
  // taken back. Cancelling the awaiting operation aborts the request (the connection is closed).
  virtual boost::asio::awaitable<core::result<llm_reply>> stream(const llm_request& req, delta_fn on_delta) = 0;
};

// Picks the provider named by cfg.llm_provider. user_api_key (auth.apiKey) replaces the operator's
// key only when cfg.allow_user_api_key is set; otherwise it is ignored. Fails with llm_error when
// the provider needs a key that is missing or a base URL is invalid, or the extra CA file is bad.
// llm_request::model empty -> LLM_MODEL -> the provider's default; max_output_tokens 0 ->
// MAX_OUTPUT_TOKENS.
core::result<std::unique_ptr<llm_provider>> make_provider(const core::config& cfg, boost::asio::any_io_executor ex,
                                                          core::metrics& metrics,
                                                          std::optional<std::string> user_api_key = std::nullopt,
                                                          provider_options opts = {});

// Building blocks (also used by tests): an HTTP provider around a codec, and the local model.
std::unique_ptr<llm_provider> make_http_provider(std::unique_ptr<provider_codec> codec,
                                                 boost::asio::any_io_executor ex, core::metrics& metrics,
                                                 provider_options opts, std::uint32_t default_max_output_tokens);
std::unique_ptr<llm_provider> make_local_provider(core::metrics& metrics, std::uint32_t default_max_output_tokens);

// Delay before attempt `attempt + 1` after `attempt` failures (1-based), without a server hint.
std::chrono::milliseconds backoff_delay(const retry_policy& p, unsigned attempt) noexcept;

}  // namespace berth::llm
