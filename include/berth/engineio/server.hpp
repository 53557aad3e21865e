#pragma once
// Engine.IO v4 server shell: binds the sans-I/O session_fsm to HTTP long-polling requests and
// WebSocket connections (framed by websocket_codec), with one strand per session.
// Lifetime: sessions are owned by the server's registry until closed; the server must outlive
// its io_context's run(). Thread-safety: session::send/close may be called from any thread.
#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "berth/core/client_address.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/rate_limit.hpp"
#include "berth/engineio/session_fsm.hpp"
#include "berth/engineio/websocket_codec.hpp"
#include "berth/http/request_info.hpp"
#include "berth/http/server.hpp"

namespace berth::engineio {

namespace asio = boost::asio;
namespace detail {
class read_signal;
class readiness_hub;
}  // namespace detail
using strand_type = asio::strand<asio::io_context::executor_type>;

struct handshake_info {
  std::string sid;
  http::query_map query;
  std::string remote_address;  // the client (X-Forwarded-For only from a trusted proxy)
  std::string address_key;     // what per-address limits and the sid binding compare (IPv6: its /64)
  std::string origin;
  std::string user_agent;
};

// Application side of one session (Socket.IO, or the raw echo of the conformance server).
// Called on the session's strand only.
class session_handler {
 public:
  virtual ~session_handler() = default;
  virtual void on_message(packet&& p) = 0;
  virtual void on_close(close_reason reason) = 0;
  // Inbound bytes the handler holds for this connection (e.g. binary attachments waiting for
  // the rest of their packet); they count toward the connection's and the process's budgets.
  virtual std::size_t buffered_bytes() const noexcept { return 0; }
};

class server;

class session : public std::enable_shared_from_this<session> {
 public:
  session(server& srv, strand_type strand, transport_kind kind, handshake_info info);
  const std::string& id() const noexcept { return info_->sid; }
  const handshake_info& info() const noexcept { return *info_; }
  // Shared so Socket.IO sockets can keep it without a copy per namespace.
  std::shared_ptr<const handshake_info> info_ptr() const noexcept { return info_; }
  strand_type& strand() noexcept { return strand_; }
  // Thread-safe; packets keep their order per calling thread.
  void send(packet p);
  // Thread-safe server-side close (the client is told with a close packet).
  void close(close_reason reason = close_reason::server_close);
  // On the strand only.
  void send_on_strand(packet p);
  bool is_closed() const noexcept { return fsm_.closed(); }
  transport_kind transport() const noexcept { return fsm_.transport(); }

 private:
  friend class server;
  static asio::awaitable<void> start(std::shared_ptr<session> s, std::shared_ptr<asio::ip::tcp::socket> ws,
                                     std::shared_ptr<std::string> initial);
  static asio::awaitable<void> start_probe(std::shared_ptr<session> s, std::shared_ptr<asio::ip::tcp::socket> sock,
                                           std::shared_ptr<std::string> initial);
  asio::awaitable<void> run();
  asio::awaitable<std::pair<unsigned, std::string>> poll_get();
  asio::awaitable<std::pair<unsigned, std::string>> poll_post(std::shared_ptr<std::string> body, bool binary_body, bool too_large);
  asio::awaitable<void> ws_read_loop(std::shared_ptr<asio::ip::tcp::socket> sock, std::shared_ptr<std::string> initial, bool probe);
  asio::awaitable<void> ws_close();
  void deliver(std::vector<packet>& delivered);
  // After every state change: releases a waiting GET; with run() driving (polling) wakes it;
  // on a websocket writes what is owed, re-arms the heartbeat, wakes the reader to close.
  void wake();
  void flush();
  void on_written(boost::system::error_code ec);
  void arm_timer();
  void on_heartbeat();
  void close_probe();
  void fail_upgrade();
  void arm_close_deadline();
  // Brings the server's buffered-bytes total up to date with this connection's and closes it
  // when it holds more than max_buffered_bytes, or wants to hold more inbound bytes while the
  // process is over its budget.
  void enforce_buffer_limits();
  // Updates this connection's share of the server's total; returns its inbound bytes.
  std::size_t sync_accounting();
  void release_accounting();
  // A pong for a ping; false (and nothing queued) when the owed control frames are over the limit.
  bool queue_pong(std::string_view payload);

  server& server_;
  strand_type strand_;
  std::shared_ptr<const handshake_info> info_;
  session_fsm fsm_;
  asio::steady_timer timer_;
  asio::steady_timer* poll_waiter_ = nullptr;
  std::shared_ptr<asio::ip::tcp::socket> ws_;     // the websocket transport, once active
  std::shared_ptr<asio::ip::tcp::socket> probe_;  // a websocket probing an upgrade
  std::shared_ptr<detail::read_signal> ws_readable_;     // ws_'s reader waits on it
  std::shared_ptr<detail::read_signal> probe_readable_;  // probe_'s reader waits on it
  std::string ws_control_;                        // pong/close frames owed to the peer
  std::string wbuf_;                              // unwritten rest while an async write is in flight
  std::unique_ptr<session_handler> handler_;
  asio::steady_timer* write_waiter_ = nullptr;    // the close sequence waiting for that write
  clock::time_point timer_at_;                    // when the armed heartbeat wait fires
  std::size_t inbound_buffered_ = 0;  // the websocket decoder's partial frames and messages
  std::size_t inbound_accounted_ = 0;  // inbound bytes (decoder + handler) at the last check
  std::size_t accounted_ = 0;          // this connection's share of server::buffered_
  // One coroutine per websocket session: the reader. Writes go straight to the (non-blocking)
  // socket from wake(), with an async write only for what the kernel did not take; the
  // heartbeat is a plain timer wait. Polling sessions keep the run() driver until upgraded.
  bool driver_ = false;     // run() owns timer_ (polling, until the upgrade hands over)
  bool timer_armed_ = false;
  bool writing_ = false;    // an async write of wbuf_ is in flight
  bool deferring_ = false;  // the reader is dispatching a read: it flushes once afterwards
  bool closing_ = false;    // the reader runs the close sequence and owns the socket
  bool finished_ = false;
};

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
  std::unordered_map<std::string, std::shared_ptr<session>> sessions_;
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
