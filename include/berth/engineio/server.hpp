#pragma once
// Engine.IO v4 server: the registry of sessions (session.hpp), the HTTP entry point that
// admits, routes and answers polling and websocket requests, and the per-address limits.
// Lifetime: sessions are owned by the server's registry until closed; the server must outlive
// its io_context's run().
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/io_context.hpp>

#include "berth/core/client_address.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/rate_limit.hpp"
#include "berth/engineio/session.hpp"
#include "berth/http/server.hpp"

namespace berth::engineio {

namespace detail {
class readiness_hub;
}  // namespace detail

// Limits per client address: the socket peer, or the X-Forwarded-For hop named by a trusted proxy.
struct address_limits {
  core::trusted_proxies trusted_proxies;
  std::size_t max_sessions = 0;         // sessions open at once per address; 0: no limit
  double new_sessions_per_minute = 0;   // token bucket per address, burst the same; 0: no limit
  std::size_t max_tracked_addresses = 100000;  // rate-limiter map bound (least recently used forgotten)
};

struct server_options {
  std::string path = "/socket.io/";
  // Put in front of every sid this server issues (e.g. 8 hex of a hash of the replica's address):
  // a load balancer maps `?sid=` back to the replica that holds the session (nginx/nginx.conf).
  std::string sid_prefix;
  session_options session;
  http::cors_policy cors;
  address_limits per_address;
  // Bytes all sessions together may buffer; past it new sessions get 503 and sessions that want
  // to buffer more inbound bytes are closed (overloaded). 0: no limit.
  std::size_t max_process_buffered_bytes = 0;
};

class server {
 public:
  using handler_factory = std::function<std::unique_ptr<session_handler>(std::shared_ptr<session>)>;

  server(asio::io_context& ioc, server_options opts, core::metrics& metrics, handler_factory factory);
  ~server();
  // Registers this endpoint on an HTTP server under opts.path.
  void attach(http::server& http);
  // Closes every session (shutdown).
  void close_all(close_reason reason = close_reason::server_shutdown);
  std::size_t session_count() const;
  const server_options& options() const noexcept { return opts_; }
  // Bytes all sessions buffer right now (what max_process_buffered_bytes bounds).
  std::size_t buffered_bytes() const noexcept { return static_cast<std::size_t>(std::max<std::int64_t>(0, buffered_.load())); }

 private:
  friend class session;
  asio::awaitable<std::optional<http::response>> handle(http::request& req, http::connection_context& ctx);
  asio::awaitable<std::optional<http::response>> handle_websocket(http::request& req, http::connection_context& ctx,
                                                                  handshake_info info, const std::string& sid);
  std::shared_ptr<session> find(const std::string& sid) const;
  std::shared_ptr<session> create(strand_type strand, transport_kind kind, handshake_info info);
  void remove(const std::string& sid);
  // The client address of a request (trusted-proxy rule); fills remote_address and address_key.
  void identify_client(const http::request& req, http::connection_context& ctx, handshake_info& info) const;
  // Whether a new session from this client may open now; the refusal answer otherwise.
  std::optional<http::response> admit_new_session(http::request& req, const handshake_info& info);
  // A request for an existing session must come from the address that opened it.
  bool same_client(const session& s, const handshake_info& info, std::string_view what);
  void warn_throttled(core::log_limiter& limiter, const std::string& line);
  http::response error_response(http::request& req, unsigned status, std::optional<http_error> e);
  void add_cors(http::request& req, http::response& res);

  asio::io_context& ioc_;
  server_options opts_;
  core::metrics& metrics_;
  handler_factory factory_;
  std::unique_ptr<detail::readiness_hub> hub_;  // read readiness of every websocket
  std::atomic<std::int64_t> buffered_{0};  // sum of every live session's accounted_
  core::log_limiter address_log_, overload_log_;
  mutable std::mutex mutex_;
  // Keyed by a view of the session's own sid (it lives as long as the entry): no second copy.
  std::unordered_map<std::string_view, std::shared_ptr<session>> sessions_;
  std::unordered_map<std::string, std::size_t> sessions_per_address_;  // under mutex_
  std::unique_ptr<core::keyed_token_buckets> new_session_buckets_;    // under mutex_; null: no rate limit
  core::counter& opened_;
  core::counter& bad_requests_;
  core::counter& protocol_errors_;
  core::counter& ping_timeouts_;
  core::counter& overflows_;
  core::counter& upgrades_;
  core::counter& refused_address_rate_;
  core::counter& refused_address_sessions_;
  core::counter& refused_overloaded_;
  core::counter& sid_address_mismatch_;
  core::counter& control_overflows_;
  core::counter& buffer_overflows_;
  core::counter& overload_closes_;
};

}  // namespace berth::engineio
