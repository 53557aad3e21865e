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
// - Sentinel (options.sentinel.sentinels not empty): before each connect the master is found
//   through the sentinels (master_discovery in sentinel.hpp) and must answer ROLE "master"; the
//   endpoint's host/port are then ignored (its password, user and db still apply). A watcher
//   subscribed to +switch-master on one sentinel drops the connection as soon as a failover is
//   announced, so the next command goes to the new master without waiting for a timeout. The
//   health loop sends ROLE instead of PING and drops a connection to a node that stopped being
//   the master.
// - Failover replies: READONLY / MASTERDOWN / LOADING (the node is not a usable master now) fail
//   the command as "redis unavailable: ..." and drop the connection (then: find the master again).
//   Nothing was applied, so the caller sees a clean failure, as during any outage.
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
#include <optional>
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
#include "berth/redis/sentinel.hpp"
#include "berth/redis/url.hpp"

namespace berth::redis {

struct sentinel_options {
  std::vector<host_port> sentinels;  // empty: no Sentinel, connect to the endpoint's host/port
  std::string master_name = "mymaster";
  std::string username;              // ACL user on the sentinels (empty: default user)
  std::string password;              // secret: AUTH on the sentinels; never logged; empty = none
};

struct client_options {
  redis_endpoint endpoint;
  sentinel_options sentinel{};
  std::chrono::milliseconds connect_timeout{2000};   // TCP/unix connect + AUTH/SELECT/SCRIPT LOAD
  std::chrono::milliseconds command_timeout{2000};   // default per-command deadline
  std::chrono::milliseconds backoff_base{50};        // first reconnect delay, doubles per failure
  std::chrono::milliseconds backoff_max{2000};       // cap
  std::chrono::milliseconds health_interval{1000};   // PING period
  std::size_t max_pending = 100000;                  // commands queued + in flight; above: fail fast
  std::size_t max_reply_bytes = 64u * 1024 * 1024;   // one reply's buffered bytes
  std::string name = "redis";                        // metrics label client="..." and log tag
  // eval() (Berth's writes are scripts) appends WAIT <n> <wait_timeout> while the master reports
  // replicas (Sentinel mode: ROLE), so a write is acknowledged only once a replica has it and
  // survives a failover. 0: never wait. A WAIT that times out still returns the write (it is on
  // the master) and counts berth_redis_unreplicated_writes_total.
  unsigned wait_replicas = 0;
  std::chrono::milliseconds wait_timeout{100};
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
  // Failovers followed: connections made to a master other than the one before.
  std::uint64_t failover_count() const noexcept { return failovers_.load(std::memory_order_relaxed); }
  // "host:port" of the master of the current (or last) connection; "" before the first one.
  std::string master_address() const;
  bool uses_sentinel() const noexcept { return !opts_.sentinel.sentinels.empty(); }
  // Replicas attached to the master per the last ROLE (Sentinel mode); -1 when unknown.
  std::int64_t attached_replicas() const noexcept { return master_view_->replicas.load(std::memory_order_relaxed); }
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
  static boost::asio::awaitable<core::result<host_port>> find_master(std::shared_ptr<redis_client> self);
  static boost::asio::awaitable<core::result<std::vector<reply>>> sentinel_request(
      std::shared_ptr<redis_client> self, host_port target, std::vector<std::vector<std::string>> cmds);
  static boost::asio::awaitable<void> sentinel_watch_loop(std::shared_ptr<redis_client> self);
  void on_connected_to(const std::string& master);
  unsigned replicas_to_wait_for() const noexcept;
  boost::asio::awaitable<core::result<reply>> run_script(std::vector<std::string> cmd);
  void on_switch_master(const switch_master_event& ev);

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
  core::counter& c_failovers_;
  core::counter& c_failover_replies_;
  core::counter& c_not_master_;
  core::counter& c_sentinel_failures_;
  core::counter& c_switch_events_;
  core::counter& c_unreplicated_;

  // strand-only state
  boost::asio::generic::stream_protocol::socket socket_;
  boost::asio::steady_timer write_signal_;
  boost::asio::steady_timer closed_signal_;
  boost::asio::steady_timer backoff_timer_;
  boost::asio::steady_timer health_timer_;
  boost::asio::steady_timer connect_deadline_;
  resp_reader reader_;
  redis_endpoint target_;                    // where connect_socket goes (the master, with Sentinel)
  std::optional<master_discovery> discovery_;
  std::string last_master_;                  // address of the last successful connection
  boost::asio::generic::stream_protocol::socket watch_socket_;  // +switch-master subscription
  boost::asio::steady_timer watch_timer_;
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
  std::atomic<std::uint64_t> failovers_{0};
  // Shared with the metrics gauges, which may be read after the client is gone.
  struct master_view {
    mutable std::mutex mutex;
    std::string addr;                     // current master "host:port"
    std::vector<std::string> gauged;      // addresses that have a berth_redis_master gauge
    std::atomic<std::int64_t> replicas{-1};  // replicas attached to it (last ROLE); -1 unknown
  };
  std::shared_ptr<master_view> master_view_ = std::make_shared<master_view>();
  mutable std::mutex scripts_mutex_;
  std::vector<std::shared_ptr<const redis_script>> scripts_;
};

// True when the error came from the transport (unavailable/timeout/overloaded), not from Redis.
bool is_transport_error(const core::error& e) noexcept;
// A transport error after which the command may still have run on Redis (its reply was lost:
// a timeout, or the connection dropped while it was in flight); false when it never left this
// process (not connected, overloaded) or Redis refused it (a failover reply). Callers that
// reserve something (the limiter) undo it in the first case.
bool may_have_been_applied(const core::error& e) noexcept;

}  // namespace berth::redis
