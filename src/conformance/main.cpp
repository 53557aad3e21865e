// berth-conformance-server: the test-server contract of ../shared/conformance/README.md, built
// from Berth's own libraries: raw Engine.IO echo on /engine.io/, Socket.IO on /socket.io/ with
// namespaces "/" and "/custom", ping 300/200, CORS "*". RECOVERY_MAX_DISCONNECTION_MS > 0 turns connection
// state recovery on, for the benchmarks of what recovery costs: in memory, or with
// RECOVERY_REDIS_URL in Redis as the gateway keeps it (session::redis_recovery_store).
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/conformance/handlers.hpp"
#include "berth/core/config.hpp"
#include "berth/core/logging.hpp"
#include "berth/engineio/server.hpp"
#include "berth/redis/client.hpp"
#include "berth/redis/url.hpp"
#include "berth/session/recovery_store.hpp"
#include "berth/socketio/server.hpp"

using namespace berth;
using json = nlohmann::json;

namespace {
// Raw Engine.IO endpoint: every message goes back unchanged (text as text, binary as binary).
class echo_handler : public engineio::session_handler {
 public:
  explicit echo_handler(std::shared_ptr<engineio::session> s) : session_(*s) {}
  void on_message(engineio::packet&& p) override { session_.send_on_strand(std::move(p)); }
  void on_close(engineio::close_reason) override {}

 private:
  engineio::session& session_;
};

// Connection state recovery for one process (the gateway keeps it in Redis, for every replica):
// with RECOVERY_MAX_DISCONNECTION_MS set, the suites and the echo benchmark run with recovery on.
class memory_recovery_store : public socketio::recovery_store {
 public:
  boost::asio::awaitable<void> reserve(std::string pid, std::chrono::milliseconds ttl) override {
    put(std::move(pid), std::nullopt, ttl);
    co_return;
  }
  boost::asio::awaitable<void> seal(std::string pid, std::string state, std::chrono::milliseconds ttl) override {
    put(std::move(pid), std::move(state), ttl);
    co_return;
  }
  boost::asio::awaitable<std::optional<std::string>> take(std::string pid, std::chrono::milliseconds wait) override {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor);
    const auto until = clock::now() + wait;
    for (;;) {
      {
        std::lock_guard lock(mutex_);
        auto it = entries_.find(pid);
        if (it == entries_.end() || it->second.expires < clock::now()) co_return std::nullopt;
        if (it->second.state) {
          auto state = std::move(it->second.state);
          entries_.erase(it);
          co_return state;
        }
      }
      if (clock::now() >= until) co_return std::nullopt;  // still pending
      timer.expires_after(std::chrono::milliseconds(5));
      co_await timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    }
  }

 private:
  using clock = std::chrono::steady_clock;
  struct entry {
    std::optional<std::string> state;  // nullopt: pending
    clock::time_point expires;
  };
  void put(std::string pid, std::optional<std::string> state, std::chrono::milliseconds ttl) {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    std::erase_if(entries_, [now](const auto& e) { return e.second.expires < now; });
    entries_[std::move(pid)] = entry{std::move(state), now + ttl};
  }
  std::mutex mutex_;
  std::map<std::string, entry> entries_;
};

// The abuse limits are off here (the official suites and the benchmarks open thousands of
// sessions from one address) unless the environment sets them, with Berth's own variable names
// and validation, so the socket.io e2e tests can exercise them against this server too.
bool apply_limits_from_env(engineio::server_options& eio, socketio::server_options& sio, http::server_options& http_opts) {
  static const char* const names[] = {"TRUSTED_PROXIES",          "MAX_CONNECTIONS_PER_ADDRESS",
                                      "MAX_ENGINEIO_SESSIONS_PER_ADDRESS", "NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE",
                                      "SOCKET_EVENTS_PER_SECOND", "SOCKET_EVENT_BURST",
                                      "SOCKET_FLOOD_DISCONNECT_SECONDS", "MAX_CONNECTION_BUFFER_BYTES",
                                      "MAX_PROCESS_BUFFER_BYTES", "RECOVERY_MAX_DISCONNECTION_MS",
                                      "RECOVERY_MAX_PACKETS"};
  core::env_map set;
  for (const char* n : names)
    if (const char* v = std::getenv(n); v && *v) set[n] = v;
  auto cfg = core::parse_config(set);
  if (!cfg) {
    std::cerr << cfg.error().to_string() << std::endl;
    return false;
  }
  auto has = [&](const char* n) { return set.count(n) > 0; };
  if (has("TRUSTED_PROXIES")) eio.per_address.trusted_proxies = http_opts.unlimited_peers = cfg->proxies;
  if (has("MAX_CONNECTIONS_PER_ADDRESS")) http_opts.max_connections_per_address = cfg->max_connections_per_address;
  if (has("MAX_ENGINEIO_SESSIONS_PER_ADDRESS")) eio.per_address.max_sessions = cfg->max_engineio_sessions_per_address;
  if (has("NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE")) eio.per_address.new_sessions_per_minute = cfg->new_engineio_sessions_per_address_per_minute;
  if (has("SOCKET_EVENTS_PER_SECOND")) {
    sio.events.per_second = cfg->socket_events_per_second;
    sio.events.burst = cfg->socket_event_burst;
    sio.events.flood_seconds = cfg->socket_flood_disconnect_seconds;
  }
  if (has("MAX_CONNECTION_BUFFER_BYTES"))
    eio.session.max_outbound_bytes = eio.session.max_buffered_bytes = cfg->max_connection_buffer_bytes;
  if (has("MAX_PROCESS_BUFFER_BYTES")) eio.max_process_buffered_bytes = cfg->max_process_buffer_bytes;
  if (has("RECOVERY_MAX_DISCONNECTION_MS")) sio.recovery_window = cfg->recovery_max_disconnection;
  if (has("RECOVERY_MAX_PACKETS")) sio.recovery_max_events = cfg->recovery_max_packets;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const char* port_env = std::getenv("PORT");
  int port = argc > 1 ? std::atoi(argv[1]) : port_env ? std::atoi(port_env) : 3955;
  core::init_logging(std::getenv("LOG_LEVEL") ? std::getenv("LOG_LEVEL") : "warn", "text");
  // THREADS > 1 runs the same server on several threads (the TSan job uses 4); the hint lets
  // Asio skip locking and eventfd wake-ups when there is one.
  const char* threads_env = std::getenv("THREADS");
  const int threads = threads_env ? std::max(1, std::atoi(threads_env)) : 1;
  boost::asio::io_context ioc{threads};
  core::metrics metrics;
  http::server_options http_opts{.host = "127.0.0.1", .port = static_cast<std::uint16_t>(port), .body_limit = 1000000};
  engineio::server_options eio_opts;
  socketio::server_options sio_opts{.connect_timeout = std::chrono::milliseconds(1000)};
  if (!apply_limits_from_env(eio_opts, sio_opts, http_opts)) return 2;
  http::server http(ioc, http_opts, metrics);

  // The official suites need 300/200; benchmarks may set production values through the env.
  auto env_ms = [](const char* name, int fallback) {
    const char* v = std::getenv(name);
    return std::chrono::milliseconds(v ? std::max(10, std::atoi(v)) : fallback);
  };
  eio_opts.session.ping_interval = env_ms("PING_INTERVAL_MS", 300);
  eio_opts.session.ping_timeout = env_ms("PING_TIMEOUT_MS", 200);
  eio_opts.cors.allowed = {"*"};
  eio_opts.path = "/engine.io/";
  engineio::server raw(ioc, eio_opts, metrics, [](std::shared_ptr<engineio::session> s) {
    return std::make_unique<echo_handler>(std::move(s));
  });
  socketio::server io(sio_opts, metrics);
  memory_recovery_store recovery;
  io.set_recovery_store(&recovery);  // used only when RECOVERY_MAX_DISCONNECTION_MS > 0
  std::shared_ptr<redis::redis_client> recovery_redis;
  std::unique_ptr<session::redis_recovery_store> redis_recovery;
  if (const char* url = std::getenv("RECOVERY_REDIS_URL"); url && *url) {
    auto endpoint = redis::parse_redis_url(url);
    if (!endpoint) {
      std::cerr << "RECOVERY_REDIS_URL: " << endpoint.error().message << std::endl;
      return 2;
    }
    redis::client_options ropts;
    ropts.endpoint = *endpoint;
    recovery_redis = redis::redis_client::create(ioc.get_executor(), ropts, metrics);
    recovery_redis->start();
    redis_recovery = std::make_unique<session::redis_recovery_store>(recovery_redis, session::key_schema{}, metrics);
    io.set_recovery_store(redis_recovery.get());
  }
  conformance::register_echo_handlers(io.of("/"));
  io.of("/custom").on_connection([](std::shared_ptr<socketio::socket> s) { s->emit("auth", json::array({s->auth()})); });
  eio_opts.path = "/socket.io/";
  engineio::server sio(ioc, eio_opts, metrics, io.handler_factory());
  raw.attach(http);
  sio.attach(http);
  auto bound = http.listen();
  http.start();
  std::cout << "berth-conformance-server listening on 127.0.0.1:" << bound << std::endl;
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) {
    http.stop();
    raw.close_all();
    sio.close_all();
    if (recovery_redis) recovery_redis->stop();
    ioc.stop();
  });
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
  ioc.run();
  for (auto& t : pool) t.join();
}
