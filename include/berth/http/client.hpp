#pragma once
// Minimal outgoing HTTP/1.1 client (LLM APIs, remote MCP servers): one request per connection
// over http:// or https://.
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

#include "berth/http/message.hpp"

namespace berth::http {

struct client_options {
  std::chrono::milliseconds connect_timeout{10000};   // TCP connect + TLS handshake
  std::chrono::milliseconds total_timeout{120000};    // resolve .. last byte of the response
  std::chrono::milliseconds idle_timeout{60000};      // stream(): header, then between two reads
  std::size_t max_response_bytes = 8 * 1024 * 1024;   // body limit; headers are capped at 64 KiB
  std::string extra_ca_file;  // PEM bundle trusted in addition to the system store (empty: none)
};

// Why no reply came: the server could not be reached or did not answer in time (network,
// timeout, TLS), or what was asked or answered cannot be used (bad URL, oversized reply).
enum class failure { none, unreachable, unusable };

// A transport outcome: a reply (any status), or a failure with its text (never a header value).
// retryable: worth another attempt.
struct outcome {
  std::optional<http::reply> reply;
  failure failed = failure::none;
  std::string error;
  bool retryable = false;
  bool streamed = false;  // stream(): the body went to the sink (reply->body is empty)
};

// Gets each piece of a streamed body as it arrives; returns false to stop reading (the
// connection is then closed).
using body_sink = std::function<bool(std::string_view piece)>;

class client {
 public:
  // Throws std::runtime_error if extra_ca_file cannot be loaded (a start-up error).
  client(boost::asio::any_io_executor ex, client_options opts);
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  boost::asio::awaitable<outcome> send(const call& c);
  // Like send(), but a 2xx text/event-stream reply body goes to `on_body` as it arrives (the
  // outcome then has `streamed` set and an empty body); any other reply is collected as send()
  // does. Cancelling the awaiting operation (e.g. `||` with another) closes the connection.
  boost::asio::awaitable<outcome> stream(const call& c, body_sink on_body);

  const client_options& options() const noexcept { return opts_; }

 private:
  boost::asio::awaitable<outcome> run(const call& c, const body_sink* sink);
  boost::asio::any_io_executor ex_;
  client_options opts_;
  boost::asio::ssl::context tls_;
};

}  // namespace berth::http
