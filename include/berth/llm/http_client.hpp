#pragma once
// Minimal HTTP/1.1 client for LLM APIs: one request per connection over http:// or https://.
// TLS: peer verification against the system store (plus an optional extra CA file), SNI and
// host-name (or IP SAN) verification. Deadlines: one for TCP connect + TLS handshake, one for the
// whole exchange. Header values marked secret are sent but never logged or echoed.
// Lifetime: outlives its send() calls. Thread-safety: send() may run concurrently (the TLS
// context is only read); each call owns its socket.
#include <chrono>
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
  std::size_t max_response_bytes = 8 * 1024 * 1024;   // body limit; headers are capped at 64 KiB
  std::string extra_ca_file;  // PEM bundle trusted in addition to the system store (empty: none)
};

// A transport outcome: a reply (any status), or an error that is llm_unavailable (network,
// timeout, TLS) or llm_error (bad URL, oversized/garbled HTTP). retryable: worth another attempt.
struct http_outcome {
  std::optional<http_reply> reply;
  core::error error;
  bool retryable = false;
};

class http_client {
 public:
  // Throws std::runtime_error if extra_ca_file cannot be loaded (a start-up error).
  http_client(boost::asio::any_io_executor ex, http_client_options opts);
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  boost::asio::awaitable<http_outcome> send(const http_call& call);

  const http_client_options& options() const noexcept { return opts_; }

 private:
  boost::asio::any_io_executor ex_;
  http_client_options opts_;
  boost::asio::ssl::context tls_;
};

}  // namespace berth::llm
