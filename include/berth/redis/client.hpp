#pragma once
// redis_client: one pipelined RESP2 connection (TCP or unix socket) driven by Asio; hiredis is
// used only as the reader/formatter (berth/redis/resp.hpp), so nothing blocks the event loop.
//
// - Pipelining: any number of commands in flight; replies are matched FIFO.
// - Per-command deadline (options.command_timeout or per call); a late reply is discarded.
// - Reconnect with capped exponential backoff; AUTH / SELECT / SCRIPT LOAD on every connect.
//   While disconnected, commands fail at once with "redis unavailable: ..." (never hang).
// - Health: a PING every health_interval; health() = {ok, latency_ms}. Three PING failures in a
//   row on an open connection drop it (half-open TCP) and reconnect.
// - Scripts: register_script() once; eval() calls EVALSHA and, on NOSCRIPT, SCRIPT LOAD + retry.
//
// Errors: transport failures come back as core::error{errc::internal, "redis unavailable: ..." |
// "redis timeout: ..." | "redis overloaded: ..."}; a Redis error *reply* is a successful call
// whose reply has type error (use the accessors in reply.hpp to turn it into an error).
//
// Lifetime: create() returns a shared_ptr; call start() once and stop() before dropping the last
// reference (spawned loops hold a reference until stop()). Thread-safety: every public method
// may be called from any thread/executor; state lives on an internal strand.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/reply.hpp"
#include "berth/redis/resp.hpp"
#include "berth/redis/url.hpp"

namespace berth::redis {

struct client_options {
  redis_endpoint endpoint;
  std::chrono::milliseconds connect_timeout{2000};   // TCP/unix connect + AUTH/SELECT/SCRIPT LOAD
  std::chrono::milliseconds command_timeout{2000};   // default per-command deadline
  std::chrono::milliseconds backoff_base{50};        // first reconnect delay, doubles per failure
  std::chrono::milliseconds backoff_max{2000};       // cap
  std::chrono::milliseconds health_interval{1000};   // PING period
  std::size_t max_pending = 100000;                  // commands queued + in flight; above: fail fast
  std::size_t max_reply_bytes = 64u * 1024 * 1024;   // one reply's buffered bytes
  std::string name = "redis";                        // metrics label client="..." and log tag
};

struct health_figure {
  bool ok = false;
  double latency_ms = 0;  // last successful PING round trip
};

// A Lua script: body + its SHA-1 (computed locally, identical to SCRIPT LOAD's answer).
class redis_script {
 public:
  explicit redis_script(std::string body);
  const std::string& body() const noexcept { return body_; }
  const std::string& sha() const noexcept { return sha_; }

 private:
  std::string body_;
  std::string sha_;
};

class redis_client : public std::enable_shared_from_this<redis_client> {
  struct private_tag {};

 public:
  static std::shared_ptr<redis_client> create(boost::asio::any_io_executor ex, client_options opts,
                                              core::metrics& metrics);
  redis_client(private_tag, boost::asio::any_io_executor ex, client_options opts, core::metrics& metrics);
  ~redis_client();
  redis_client(const redis_client&) = delete;
  redis_client& operator=(const redis_client&) = delete;

  // Starts connecting in the background (returns at once). Call once.
  void start();
  // Closes the connection; queued/in-flight commands fail; loops exit. Idempotent, any thread.
  void stop();

  // One command, e.g. {"SET", key, value, "PX", "30000"}. Arguments are binary-safe.
  boost::asio::awaitable<core::result<reply>> command(std::vector<std::string> args);
  boost::asio::awaitable<core::result<reply>> command(std::vector<std::string> args,
                                                      std::chrono::milliseconds timeout);
  // Several commands written together; replies in order. A transport failure fails the batch;
  // per-command Redis errors are replies of type error inside the vector.
  boost::asio::awaitable<core::result<std::vector<reply>>> pipeline(std::vector<std::vector<std::string>> cmds);
  boost::asio::awaitable<core::result<std::vector<reply>>> pipeline(std::vector<std::vector<std::string>> cmds,
                                                                    std::chrono::milliseconds timeout);

  // Registers a script: loaded (SCRIPT LOAD) on each connect; eval() falls back on NOSCRIPT.
  std::shared_ptr<const redis_script> register_script(std::string body);
  boost::asio::awaitable<core::result<reply>> eval(std::shared_ptr<const redis_script> script,
                                                   std::vector<std::string> keys, std::vector<std::string> args);

  health_figure health() const noexcept;
  bool connected() const noexcept { return connected_.load(std::memory_order_acquire); }
  // Waits (polling every 10 ms) until connected or the timeout; for start-up and tests.
  boost::asio::awaitable<bool> wait_connected(std::chrono::milliseconds timeout);
  std::uint64_t connect_count() const noexcept { return connects_.load(std::memory_order_relaxed); }
  const client_options& options() const noexcept { return opts_; }
  boost::asio::any_io_executor get_executor() const { return strand_; }

 private:
  struct pending;
  struct batch;
  using strand_type = boost::asio::strand<boost::asio::any_io_executor>;

  static boost::asio::awaitable<void> run_loop(std::shared_ptr<redis_client> self);
  static boost::asio::awaitable<void> read_loop(std::shared_ptr<redis_client> self, std::uint64_t gen);
  static boost::asio::awaitable<void> write_loop(std::shared_ptr<redis_client> self, std::uint64_t gen);
  static boost::asio::awaitable<void> health_loop(std::shared_ptr<redis_client> self);
  static boost::asio::awaitable<core::result<std::vector<reply>>> run_batch(std::shared_ptr<redis_client> self,
                                                                            std::shared_ptr<batch> b);
  static boost::asio::awaitable<boost::system::error_code> connect_socket(std::shared_ptr<redis_client> self);
  static boost::asio::awaitable<core::result<void>> handshake(std::shared_ptr<redis_client> self);

  void fail_connection(std::uint64_t gen, const std::string& reason);
  void fail_all(const std::string& reason);
  void deliver(reply r, std::uint64_t gen);
  core::error unavailable(std::string_view why) const;

  strand_type strand_;
  client_options opts_;
  core::metrics& metrics_;
  core::counter& c_reconnects_;
  core::counter& c_connect_failures_;
  core::counter& c_conn_lost_;
  core::counter& c_timeouts_;
  core::counter& c_unavailable_;
  core::counter& c_overloaded_;
  core::counter& c_noscript_;
  core::counter& c_protocol_;

  // strand-only state
  boost::asio::generic::stream_protocol::socket socket_;
  boost::asio::steady_timer write_signal_;
  boost::asio::steady_timer closed_signal_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer connect_deadline_;
  resp_reader reader_;
  std::deque<std::shared_ptr<pending>> inflight_;
  std::string wbuf_;
  std::uint64_t generation_ = 0;
  bool conn_alive_ = false;   // socket open and loops running for generation_
  bool handshaking_ = false;  // commands allowed before connected_ (handshake batch only)
  bool stopping_ = false;
  bool started_ = false;
  unsigned ping_failures_ = 0;
  std::uint64_t connect_attempt_ = 0;

  // any-thread state
  std::atomic<bool> connected_{false};
  std::atomic<bool> health_ok_{false};
  std::atomic<double> latency_ms_{0};
  std::atomic<std::uint64_t> connects_{0};
  mutable std::mutex scripts_mutex_;
  std::vector<std::shared_ptr<const redis_script>> scripts_;
};

// True when the error came from the transport (unavailable/timeout/overloaded), not from Redis.
bool is_transport_error(const core::error& e) noexcept;

}  // namespace berth::redis
