#include "berth/llm/provider.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/llm/local_model.hpp"
#include "berth/llm/sse.hpp"
#include "berth/http/url.hpp"

namespace berth::llm {
namespace asio = boost::asio;
using std::chrono::milliseconds;

std::chrono::milliseconds backoff_delay(const retry_policy& p, unsigned attempt) noexcept {
  milliseconds d = p.base_backoff;
  for (unsigned i = 1; i < attempt && d < p.max_backoff; ++i) d *= 2;
  return std::min(d, p.max_backoff);
}

namespace {

// Counters shared by the providers; labels name the provider so dashboards can split them.
struct provider_counters {
  core::counter& ok;
  core::counter& llm_error;
  core::counter& unavailable;
  core::counter& retries;
  provider_counters(core::metrics& m, std::string_view provider)
      : ok(m.get_counter("berth_llm_requests_total", "LLM completions by provider and outcome",
                         "provider=\"" + std::string(provider) + "\",outcome=\"ok\"")),
        llm_error(m.get_counter("berth_llm_requests_total", "LLM completions by provider and outcome",
                                "provider=\"" + std::string(provider) + "\",outcome=\"llm_error\"")),
        unavailable(m.get_counter("berth_llm_requests_total", "LLM completions by provider and outcome",
                                  "provider=\"" + std::string(provider) + "\",outcome=\"llm_unavailable\"")),
        retries(m.get_counter("berth_llm_retries_total", "LLM attempts retried after 429/5xx/network failures",
                              "provider=\"" + std::string(provider) + "\"")) {}
  void count(const core::error& e) { (e.code == core::errc::llm_unavailable ? unavailable : llm_error).inc(); }
};

// The request as sent: MAX_OUTPUT_TOKENS where the caller left the cap at 0 (copied into `copy`
// only then).
const llm_request& with_output_cap(const llm_request& in, std::uint32_t cap, llm_request& copy) {
  if (in.max_output_tokens != 0) return in;
  copy = in;
  copy.max_output_tokens = cap;
  return copy;
}

class local_provider final : public llm_provider {
 public:
  local_provider(core::metrics& m, std::uint32_t max_tokens) : counters_(m, "local"), max_tokens_(max_tokens) {}
  std::string_view name() const noexcept override { return "local"; }
  std::string model() const override { return std::string(local_model_name); }
  asio::awaitable<core::result<llm_reply>> complete(const llm_request& req) override {
    llm_request copy;
    llm_reply reply = local_complete(with_output_cap(req, max_tokens_, copy));
    counters_.ok.inc();
    co_return reply;
  }

  asio::awaitable<core::result<llm_reply>> stream(const llm_request& req, delta_fn on_delta) override {
    auto reply = co_await complete(req);
    if (!reply || !on_delta) co_return reply;
    // Word groups, one turn of the event loop apart, so clients see the answer arrive in pieces.
    const std::string& text = reply->text;
    auto ex = co_await asio::this_coro::executor;
    std::size_t from = 0;
    while (from < text.size()) {
      std::size_t to = from;
      for (int words = 0; words < local_words_per_delta && to < text.size(); ++words) {
        const auto space = text.find(' ', to);
        to = space == std::string::npos ? text.size() : space + 1;
      }
      on_delta(std::string_view(text).substr(from, to - from));
      from = to;
      if (from < text.size()) co_await asio::post(ex, asio::use_awaitable);
    }
    co_return reply;
  }

 private:
  static constexpr int local_words_per_delta = 3;
  provider_counters counters_;
  std::uint32_t max_tokens_;
};

class http_provider final : public llm_provider {
 public:
  http_provider(std::unique_ptr<provider_codec> codec, asio::any_io_executor ex, core::metrics& m,
                provider_options opts, std::uint32_t max_tokens)
      : codec_(std::move(codec)),
        ex_(ex),
        client_(ex, opts.http),
        retry_(opts.retry),
        counters_(m, codec_->name()),
        max_tokens_(max_tokens),
        log_(core::logger("llm")) {
    if (retry_.max_attempts == 0) retry_.max_attempts = 1;
  }
  std::string_view name() const noexcept override { return codec_->name(); }
  std::string model() const override { return codec_->settings().default_model; }

  // A call that got no reply: LLM_UNAVAILABLE when the provider could not be reached, LLM_ERROR
  // when the URL or the reply cannot be used; the key never in the text.
  parse_outcome transport_failure(const http::outcome& sent, std::string_view secret) const {
    const auto code = sent.failed == http::failure::unreachable ? core::errc::llm_unavailable : core::errc::llm_error;
    return parse_outcome{core::make_error(code, std::string(name()) + ": " + redact(sent.error, secret)), sent.retryable,
                         std::nullopt};
  }

  asio::awaitable<core::result<llm_reply>> stream(const llm_request& in, delta_fn on_delta) override {
    llm_request copy;
    const llm_request& req = with_output_cap(in, max_tokens_, copy);
    auto call = codec_->build_stream(req);
    if (!call) {
      counters_.count(call.error());
      co_return call.error();
    }
    const auto& secret = codec_->api_key();
    bool shown = false;  // text went to on_delta: no retry can take it back
    for (unsigned attempt = 1;; ++attempt) {
      const auto started = std::chrono::steady_clock::now();
      auto decoder = codec_->make_stream_decoder(req);
      sse_parser events;
      std::vector<sse_event> batch;
      std::optional<parse_outcome> failed;
      bool done = false;
      std::size_t bytes = 0;
      auto on_body = [&](std::string_view piece) {
        bytes += piece.size();
        if (events.feed(piece, batch) != sse_status::ok) {
          failed = parse_outcome{core::make_error(core::errc::llm_error,
                                                  std::string(name()) + ": a reply stream event exceeds " +
                                                      std::to_string(sse_parser::default_max_event_bytes) + " bytes"),
                                 false, std::nullopt};
          return false;
        }
        for (const auto& ev : batch) {
          auto step = decoder->on_event(ev);
          if (!step.text.empty() && on_delta) {
            shown = true;
            on_delta(step.text);
          }
          if (step.failed) {
            failed = std::move(step.failed);
            break;
          }
          if (step.done) done = true;
        }
        batch.clear();
        return !failed && !done;
      };
      auto sent = co_await client_.stream(*call, on_body);
      parse_outcome outcome;
      if (failed) {
        outcome = std::move(*failed);
      } else if (sent.reply && sent.streamed) {
        outcome = decoder->finish();
      } else if (sent.reply) {
        // An error status, or a server that answered with one JSON body: as complete() does.
        outcome = codec_->parse(req, *sent.reply);
        if (outcome.reply && on_delta && !outcome.reply->text.empty()) {
          shown = true;
          on_delta(outcome.reply->text);
        }
      } else {
        outcome = transport_failure(sent, secret);
      }
      if (!outcome.reply && shown && outcome.reply.error().code == core::errc::llm_unavailable) {
        // (result::error() returns a copy: build the amended error and put it back.)
        core::error amended = outcome.reply.error();
        amended.message += " (after part of the answer was streamed)";
        outcome.reply = std::move(amended);
      }
      log_->debug("provider={} stream status={} attempt={} bytes={} ms={}", name(), sent.reply ? sent.reply->status : 0,
                  attempt, bytes,
                  std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started).count());
      if (outcome.reply) {
        counters_.ok.inc();
        co_return std::move(outcome.reply);
      }
      core::error err = outcome.reply.error();
      if (shown || !outcome.retryable || attempt >= retry_.max_attempts) {
        if (outcome.retryable && !shown) err.message += " (gave up after " + std::to_string(attempt) + " attempts)";
        log_->warn("provider={} stream failed: {} {}", name(), core::to_string(err.code), err.message);
        counters_.count(err);
        co_return err;
      }
      auto delay = retry_delay(outcome, err, attempt);
      if (!delay) {
        counters_.count(err);
        co_return err;
      }
      counters_.retries.inc();
      log_->warn("provider={} attempt {}/{} failed: {}; retrying in {} ms", name(), attempt, retry_.max_attempts,
                 err.message, delay->count());
      asio::steady_timer timer(ex_, *delay);
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        counters_.count(err);
        co_return err;
      }
    }
  }

  // The wait before the next attempt, or nullopt (with err explained and logged) when the
  // server's hint is too long to wait inside a chat turn: waiting minutes helps nobody, so the
  // user is told, with the server's hint as the error's retry-after (retryAfterMs on the wire).
  std::optional<milliseconds> retry_delay(const parse_outcome& outcome, core::error& err, unsigned attempt) {
    milliseconds delay = backoff_delay(retry_, attempt);
    if (!outcome.retry_after) return delay;
    if (*outcome.retry_after > retry_.max_retry_after) {
      err.retry_after = *outcome.retry_after;
      err.message += " (server asks to retry after " + std::to_string(outcome.retry_after->count() / 1000) + " s)";
      log_->warn("provider={} request failed: {} {}", name(), core::to_string(err.code), err.message);
      return std::nullopt;
    }
    return *outcome.retry_after;
  }

  asio::awaitable<core::result<llm_reply>> complete(const llm_request& in) override {
    llm_request copy;
    const llm_request& req = with_output_cap(in, max_tokens_, copy);
    auto call = codec_->build(req);
    if (!call) {
      counters_.count(call.error());
      co_return call.error();
    }
    const auto& secret = codec_->api_key();
    for (unsigned attempt = 1;; ++attempt) {
      const auto started = std::chrono::steady_clock::now();
      auto sent = co_await client_.send(*call);
      parse_outcome outcome;
      if (sent.reply) {
        outcome = codec_->parse(req, *sent.reply);
        log_->debug("provider={} status={} attempt={} bytes={} ms={}", name(), sent.reply->status, attempt,
                    sent.reply->body.size(),
                    std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - started).count());
      } else {
        outcome = transport_failure(sent, secret);
      }
      if (outcome.reply) {
        counters_.ok.inc();
        co_return std::move(outcome.reply);
      }
      core::error err = outcome.reply.error();
      if (!outcome.retryable || attempt >= retry_.max_attempts) {
        if (outcome.retryable) err.message += " (gave up after " + std::to_string(attempt) + " attempts)";
        log_->warn("provider={} request failed: {} {}", name(), core::to_string(err.code), err.message);
        counters_.count(err);
        co_return err;
      }
      auto delay = retry_delay(outcome, err, attempt);
      if (!delay) {
        counters_.count(err);
        co_return err;
      }
      counters_.retries.inc();
      log_->warn("provider={} attempt {}/{} failed: {}; retrying in {} ms", name(), attempt, retry_.max_attempts,
                 err.message, delay->count());
      asio::steady_timer timer(ex_, *delay);
      auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        counters_.count(err);
        co_return err;  // cancelled (shutdown): report the last failure
      }
    }
  }

 private:
  std::unique_ptr<provider_codec> codec_;
  asio::any_io_executor ex_;
  http::client client_;
  retry_policy retry_;
  provider_counters counters_;
  std::uint32_t max_tokens_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace

std::unique_ptr<llm_provider> make_http_provider(std::unique_ptr<provider_codec> codec, asio::any_io_executor ex,
                                                 core::metrics& metrics, provider_options opts,
                                                 std::uint32_t default_max_output_tokens) {
  return std::make_unique<http_provider>(std::move(codec), std::move(ex), metrics, std::move(opts),
                                         default_max_output_tokens);
}

std::unique_ptr<llm_provider> make_local_provider(core::metrics& metrics, std::uint32_t default_max_output_tokens) {
  return std::make_unique<local_provider>(metrics, default_max_output_tokens);
}

core::result<std::unique_ptr<llm_provider>> make_provider(const core::config& cfg, asio::any_io_executor ex,
                                                          core::metrics& metrics, std::optional<std::string> user_api_key,
                                                          provider_options opts) {
  if (cfg.llm_provider == "local" || cfg.llm_provider.empty())
    return make_local_provider(metrics, cfg.max_output_tokens);

  auto pick_key = [&](const std::string& operator_key) {
    if (cfg.allow_user_api_key && user_api_key && !user_api_key->empty()) return *user_api_key;
    return operator_key;
  };
  codec_settings s;
  s.default_model = cfg.llm_model;
  std::unique_ptr<provider_codec> codec;
  std::string key_var;
  if (cfg.llm_provider == "gemini") {
    s.base_url = cfg.gemini_base_url;
    s.api_key = pick_key(cfg.gemini_api_key);
    key_var = "GEMINI_API_KEY";
    codec = make_gemini_codec(s);
  } else if (cfg.llm_provider == "openai") {
    s.base_url = cfg.openai_base_url;
    s.api_key = pick_key(cfg.openai_api_key);  // optional: vLLM / Ollama need none
    codec = make_openai_codec(s);
  } else if (cfg.llm_provider == "anthropic") {
    s.base_url = cfg.anthropic_base_url;
    s.api_key = pick_key(cfg.anthropic_api_key);
    key_var = "ANTHROPIC_API_KEY";
    codec = make_anthropic_codec(s);
  } else {
    return core::make_error(core::errc::llm_error, "unknown LLM_PROVIDER '" + core::log_prefix(cfg.llm_provider) +
                                                       "' (allowed: local, gemini, openai, anthropic)");
  }
  if (!key_var.empty() && codec->api_key().empty())
    return core::make_error(core::errc::llm_error, cfg.llm_provider + ": no API key configured (" + key_var + ")");
  if (auto u = http::parse_url(codec->settings().base_url); !u)
    return core::make_error(core::errc::llm_error, cfg.llm_provider + ": " + u.error().message);
  try {
    return make_http_provider(std::move(codec), std::move(ex), metrics, std::move(opts), cfg.max_output_tokens);
  } catch (const std::exception& e) {
    return core::make_error(core::errc::llm_error, cfg.llm_provider + ": " + e.what());
  }
}

}  // namespace berth::llm
