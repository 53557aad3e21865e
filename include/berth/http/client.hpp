#pragma once
// Minimal HTTP/1.1 client for LLM APIs: one request per connection over http:// or https://.
// TLS: peer verification against the system store (plus an optional extra CA file), SNI and
// host-name (or IP SAN) verification. Deadlines: one for TCP connect + TLS handshake, one for the
// whole exchange, and for streamed replies one between two reads (idle). A streamed
// (text/event-stream) body is handed over piece by piece as it arrives, chunked or
// close-delimited, within the same byte cap. Header values marked secret are sent but never logged or echoed.
// Lifetime: outlives its send() calls. Thread-safety: send() may run concurrently (the TLS
// context is only read); each call owns its socket.
#include <chrono>
#include <functional>
#include <string_view>
#include <optional>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "berth/core/errors.hpp"
#include "berth/llm/codec.hpp"

namespace berth::llm {

struct http_client_options {
  std::chrono::milliseconds connect_timeout{10000};   // TCP connect + TLS handshake
  std::chrono::milliseconds total_timeout{120000};    // resolve .. last byte of the response
  std::chrono::milliseconds idle_timeout{60000};      // stream(): header, then between two reads
  std::size_t max_response_bytes = 8 * 1024 * 1024;   // body limit; headers are capped at 64 KiB
  std::string extra_ca_file;  // PEM bundle trusted in addition to the system store (empty: none)
};

// A transport outcome: a reply (any status), or an error that is llm_unavailable (network,
// timeout, TLS) or llm_error (bad URL, oversized/garbled HTTP). retryable: worth another attempt.
struct http_outcome {
  std::optional<http_reply> reply;
  core::error error;
  bool retryable = false;
  bool streamed = false;  // stream(): the body went to the sink (reply->body is empty)
};

// Gets each piece of a streamed body as it arrives; returns false to stop reading (the
// connection is then closed).
using body_sink = std::function<bool(std::string_view piece)>;

class http_client {
 public:
  // Throws std::runtime_error if extra_ca_file cannot be loaded (a start-up error).
  http_client(boost::asio::any_io_executor ex, http_client_options opts);
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  boost::asio::awaitable<http_outcome> send(const http_call& call);
  // Like send(), but a 2xx text/event-stream reply body goes to `on_body` as it arrives (the
  // outcome then has `streamed` set and an empty body); any other reply is collected as send()
  // does. Cancelling the awaiting operation (e.g. `||` with another) closes the connection.
  boost::asio::awaitable<http_outcome> stream(const http_call& call, body_sink on_body);

  const http_client_options& options() const noexcept { return opts_; }

 private:
  boost::asio::awaitable<http_outcome> run(const http_call& call, const body_sink* sink);
  boost::asio::any_io_executor ex_;
  http_client_options opts_;
  boost::asio::ssl::context tls_;
};

}  // namespace berth::llm
