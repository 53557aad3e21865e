#include "berth/app/app.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "berth/app/status.hpp"
#include "berth/app/web_assets.hpp"
#include "berth/conformance/handlers.hpp"
#include "berth/docker/client.hpp"
#include "berth/gateway/gateway.hpp"
#include "berth/llm/provider.hpp"
#include "berth/mcp/config.hpp"
#include "berth/pool/container_pool.hpp"
#include "berth/redis/client.hpp"
#include "berth/redis/url.hpp"
#include "berth/session/container_registry.hpp"
#include "berth/session/history.hpp"
#include "berth/session/janitor.hpp"
#include "berth/session/limiter.hpp"
#include "berth/session/migrate.hpp"
#include "berth/session/orphan_reaper.hpp"
#include "berth/session/recovery_store.hpp"
#include "berth/session/schema.hpp"
#include "berth/session/store.hpp"
#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"
#include "berth/engineio/server.hpp"
#include "berth/http/server.hpp"
#include "berth/socketio/server.hpp"

namespace berth::app {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {
// MCP_CONFIG_FILE: the enabled extra MCP servers. A missing or invalid file stops start-up with
// the file and the JSON path of the mistake; header values (credentials) are never printed.
std::vector<mcp::server_config> load_mcp_config(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) throw std::runtime_error("MCP_CONFIG_FILE=" + path + ": cannot read the file");
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = mcp::parse_mcp_config(ss.str());
  if (!parsed) throw std::runtime_error("MCP_CONFIG_FILE=" + path + ": " + parsed.error().message);
  std::vector<mcp::server_config> enabled;
  for (auto& s : parsed->servers) {
    core::logger("app")->info("mcp server '{}' ({}){}", s.name,
                              s.transport == mcp::transport_kind::http ? "http" : "stdio-docker",
                              s.enabled ? "" : ": disabled");
    if (s.enabled) enabled.push_back(std::move(s));
  }
  return enabled;
}

// The file descriptor limit is the ceiling on connections: take the whole hard limit the
// container (or service manager) grants instead of asking compose for a number the Docker daemon
// may not allow ("error setting rlimit type 7").
void raise_open_files_limit(std::size_t max_connections) {
  auto log = core::logger("app");
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log->warn("open files limit: getrlimit failed: {}", std::strerror(errno));
    return;
  }
  const auto before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
      log->warn("open files limit: raising soft {} to hard {} failed: {}", before, lim.rlim_max, std::strerror(errno));
      lim.rlim_cur = before;
    }
  }
  log->info("open files limit: {} (soft was {}, hard {})", lim.rlim_cur, before, lim.rlim_max);
  // A few hundred descriptors go to Redis, Docker, sandbox streams and files.
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < max_connections + 256)
    log->warn("open files limit {} is below MAX_CONNECTIONS ({}) + 256: connections beyond it are refused at accept",
              lim.rlim_cur, max_connections);
}

// ROUTE_ADDRESS, else this host's first non-loopback IPv4 address (a container's address on its
// network: what docker/nginx/watch-upstreams.sh resolves the service name to) and PORT.
std::string route_address(const core::config& cfg) {
  if (!cfg.route_address.empty()) return cfg.route_address;
  std::string ip = "127.0.0.1";
  char host[256] = {};
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* res = nullptr;
  if (::gethostname(host, sizeof host - 1) == 0 && ::getaddrinfo(host, nullptr, &hints, &res) == 0) {
    for (auto* a = res; a; a = a->ai_next) {
      char buf[INET_ADDRSTRLEN] = {};
      const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf) && std::string_view(buf).rfind("127.", 0) != 0) {
        ip = buf;
        break;
      }
    }
    ::freeaddrinfo(res);
  }
  return ip + ":" + std::to_string(cfg.port);
}

// The sid prefix nginx routes by: 8 hex of SHA-256("HOST:PORT"). A hash, not the address, so a
// client learns nothing about the internal network; watch-upstreams.sh computes the same.
std::string route_key(const std::string& address) { return session::sha256_hex(address).substr(0, 8); }

}  // namespace

struct app::impl {
  core::config cfg;
  asio::io_context ioc{static_cast<int>(cfg.threads)};
  core::metrics metrics;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  http::server http_server;
  socketio::server io;
  engineio::server eio;
  web_assets assets;
  bool stopping = false;
  // Set when the pool's start-up finished; start_ok if it warmed up. A pool that started degraded
  // (Docker away) becomes ready once it holds a warm container again.
  std::atomic<bool> pool_started{false}, pool_start_ok{false};
  // Set once Redis holds only hash-tagged keys (session/migrate.hpp): not ready before, or a
  // resume could miss a session still under its old name.
  std::atomic<bool> keys_migrated{false};
  // Dependencies (built in build_services(): they need a valid config, checked there).
  std::unique_ptr<docker::client> docker;
  std::unique_ptr<pool::container_pool> pool;
  std::shared_ptr<redis::redis_client> redis;
  std::unique_ptr<session::session_store> sessions;
  std::unique_ptr<session::history_store> history;
  std::unique_ptr<session::user_limiter> limiter;
  std::unique_ptr<session::llm_token_budget> llm_budget;
  std::unique_ptr<session::redis_recovery_store> recovery;
  std::shared_ptr<session::replica_heartbeat> heartbeat;
  std::shared_ptr<session::janitor> janitor;
  std::shared_ptr<session::orphan_reaper> reaper;
  std::shared_ptr<session::container_registry> containers;
  std::unique_ptr<gateway::gateway> gw;
  static constexpr std::chrono::milliseconds heartbeat_ttl{10000};
  std::string stats_key;  // the `replica-stats` hash every replica publishes to

  explicit impl(core::config c)
      : cfg(std::move(c)),
        http_server(ioc,
                    {.host = cfg.host,
                     .port = cfg.port,
                     .max_connections = cfg.max_connections,
                     .body_limit = cfg.max_http_buffer_size,
                     .max_connections_per_address = cfg.max_connections_per_address,
                     .unlimited_peers = cfg.proxies},
                    metrics),
        io(sio_options(cfg), metrics),
        eio(ioc, eio_options(cfg), metrics, io.handler_factory()) {}

  static socketio::server_options sio_options(const core::config& cfg) {
    socketio::server_options o;
    o.connect_timeout = cfg.connect_timeout;
    o.max_attachment_bytes = cfg.max_http_buffer_size;
    o.events.per_second = cfg.socket_events_per_second;
    o.events.burst = cfg.socket_event_burst;
    o.events.flood_seconds = cfg.socket_flood_disconnect_seconds;
    o.recovery_window = cfg.recovery_max_disconnection;
    o.recovery_max_events = cfg.recovery_max_packets;
    return o;
  }

  static engineio::server_options eio_options(const core::config& cfg) {
    engineio::server_options o;
    o.path = cfg.socketio_path;
    o.sid_prefix = route_key(route_address(cfg));
    o.session.ping_interval = cfg.ping_interval;
    o.session.ping_timeout = cfg.ping_timeout;
    o.session.upgrade_timeout = cfg.upgrade_timeout;
    o.session.max_payload = cfg.max_http_buffer_size;
    o.session.max_outbound_bytes = cfg.max_connection_buffer_bytes;
    o.session.max_buffered_bytes = cfg.max_connection_buffer_bytes;
    o.cors.allowed = cfg.cors_origins;
    o.per_address.trusted_proxies = cfg.proxies;
    o.per_address.max_sessions = cfg.max_engineio_sessions_per_address;
    o.per_address.new_sessions_per_minute = cfg.new_engineio_sessions_per_address_per_minute;
    o.max_process_buffered_bytes = cfg.max_process_buffer_bytes;
    return o;
  }

  http::response json_ok(const json& body, unsigned status = 200) {
    return http::json_response(status, body.dump());
  }

  // The pool counts its containers in Redis (MAX_CONTAINERS) and, at start-up, leaves running the
  // containers of a previous run that live sessions still hold.
  pool::pool_options pool_options() {
    pool::pool_options o;
    // The sandbox server runs as each container's main process; sessions attach to it.
    o.sandbox_server_main = true;
    auto reg = containers;
    o.budget.reserve = [reg](std::string r) { return reg->reserve(std::move(r)); };
    o.budget.settle = [reg](std::string r, std::string c) { return reg->settle(std::move(r), std::move(c)); };
    o.budget.remove = [reg](std::string c) { return reg->remove(std::move(c)); };
    o.budget.refresh = [reg](std::vector<std::string> cs) { return reg->refresh(std::move(cs)); };
    o.referenced_containers = [store = sessions.get()] { return referenced_set(*store); };
    return o;
  }
  static asio::awaitable<core::result<std::set<std::string>>> referenced_set(session::session_store& store) {
    auto refs = co_await store.referenced_containers();
    if (!refs) co_return refs.error();
    std::set<std::string> out;
    for (const auto& [container, _] : *refs) out.insert(container);
    co_return out;
  }

  // Builds docker, pool, redis, session stores and the gateway from the config. Throws on a
  // start-up error (e.g. a bad REDIS_URL), which main reports in one line.
  void build_services() {
    auto ex = ioc.get_executor();
    auto docker_opts = docker::options_from_config(cfg);
    if (!docker_opts) throw std::runtime_error(docker_opts.error().message);
    docker = std::make_unique<docker::client>(ex, *docker_opts, metrics);
    auto endpoint = redis::parse_redis_url(cfg.redis_url);
    if (!endpoint) throw std::runtime_error("REDIS_URL: " + endpoint.error().message);
    redis::client_options ropts;
    if (!cfg.redis_password.empty()) {
      // One place for the password: two that disagree would be a guess (never echo either).
      if (!endpoint->password.empty())
        throw std::runtime_error("REDIS_PASSWORD is set and REDIS_URL carries a password too: keep one");
      endpoint->password = cfg.redis_password;
    }
    if (!cfg.redis_sentinels.empty()) {
      auto sentinels = redis::parse_sentinel_list(cfg.redis_sentinels);
      if (!sentinels) throw std::runtime_error("REDIS_SENTINELS: " + sentinels.error().message);
      if (endpoint->transport != redis::redis_endpoint::kind::tcp)
        throw std::runtime_error("REDIS_SENTINELS needs a redis:// REDIS_URL (its host is replaced by the master's)");
      ropts.sentinel.sentinels = std::move(*sentinels);
      ropts.sentinel.master_name = cfg.redis_sentinel_master;
      ropts.sentinel.password = cfg.redis_sentinel_password;
      // A write is acknowledged once a replica has it: the failover then loses none of them.
      ropts.wait_replicas = 1;
      // Sentinel names the host: REDIS_URL's host need not resolve (it is only a placeholder).
    } else if (!cfg.redis_sentinel_password.empty()) {
      throw std::runtime_error("REDIS_SENTINEL_PASSWORD is set but REDIS_SENTINELS is not");
    } else if (endpoint->transport == redis::redis_endpoint::kind::tcp) {
      // A name that does not exist is a configuration error (fail fast); anything else, such as
      // Redis not up yet, is an outage the client rides out with backoff.
      boost::system::error_code ec;
      asio::ip::tcp::resolver resolver(ioc);
      resolver.resolve(endpoint->host, std::to_string(endpoint->port), ec);
      if (ec == asio::error::host_not_found)
        throw std::runtime_error("REDIS_URL: Redis host '" + endpoint->host + "' does not resolve (" +
                                 endpoint->redacted() + ")");
    }
    ropts.endpoint = *endpoint;
    redis = redis::redis_client::create(ex, ropts, metrics);
    session::session_options sopts;
    sopts.replica_id = cfg.replica_id;
    sopts.idle_timeout = cfg.session_idle_timeout;
    sessions = std::make_unique<session::session_store>(redis, sopts, metrics);
    session::container_registry_options copts;
    copts.max_containers = cfg.max_containers;
    containers = std::make_shared<session::container_registry>(redis, copts, metrics);
    pool = std::make_unique<pool::container_pool>(ex, *docker, cfg, metrics, pool_options());
    session::history_options hopts;
    hopts.max_tokens = cfg.max_history_tokens;
    hopts.ttl = std::chrono::seconds(cfg.history_ttl_seconds);
    hopts.max_entry_bytes = cfg.max_http_buffer_size;
    history = std::make_unique<session::history_store>(redis, hopts, metrics);
    session::limiter_options lopts;
    lopts.max_per_user = cfg.max_requests_per_user;
    lopts.lease_ttl = std::max(std::chrono::milliseconds(90000), cfg.tool_timeout * 3);
    lopts.refresh_interval = lopts.lease_ttl / 3;
    limiter = std::make_unique<session::user_limiter>(redis, lopts, metrics);
    llm_budget = std::make_unique<session::llm_token_budget>(
        redis, session::token_budget_options{sopts.keys, cfg.llm_tokens_per_user_per_minute}, metrics);
    gateway::gateway_deps gdeps{cfg, metrics, *docker, *pool, *sessions, *history, *limiter, *llm_budget,
                                [this, ex](std::optional<std::string> key) {
                                  llm::provider_options popts;
                                  popts.http.extra_ca_file = cfg.llm_ca_file;
                                  return llm::make_provider(cfg, ex, metrics, std::move(key), popts);
                                }};
    gdeps.extra_mcp_servers = load_mcp_config(cfg.mcp_config_path);
    gw = std::make_unique<gateway::gateway>(std::move(gdeps));
    gw->attach(io.of("/"));
    if (cfg.recovery_max_disconnection.count() > 0) {
      recovery = std::make_unique<session::redis_recovery_store>(redis, sopts.keys, metrics);
      io.set_recovery_store(recovery.get());
    }
    heartbeat = session::replica_heartbeat::create(redis, sopts.keys, cfg.replica_id, heartbeat_ttl, metrics);
    heartbeat->set_status([this] { return replica_status().dump(); });
    stats_key = sopts.keys.replica_stats();
    register_gauges();
    // Each replica refreshes its connected sessions every sweep, so the sweep must run well inside
    // the idle timeout: otherwise another replica's janitor can claim a session that is connected
    // (and busy) here between two refreshes.
    session::janitor_options jopts;
    jopts.interval = std::min(jopts.interval, std::max(std::chrono::milliseconds(100), cfg.session_idle_timeout / 4));
    janitor = session::janitor::create(
        *sessions, jopts, [this](session::session_record rec) { return gw->on_session_reaped(std::move(rec)); },
        [this] { return gw->connected_sessions(); }, metrics);
    session::orphan_reaper_options ropts_reap;
    ropts_reap.interval = cfg.orphan_reap_interval;
    ropts_reap.own_held = [p = pool.get()] { return p->held_containers(); };
    reaper = session::orphan_reaper::create(*sessions, *docker, ropts_reap, metrics);
    // An unusable LLM configuration (e.g. a missing key) is a start-up error, not a per-user one.
    llm::provider_options popts;
    popts.http.extra_ca_file = cfg.llm_ca_file;
    if (auto p = llm::make_provider(cfg, ex, metrics, std::nullopt, popts); !p)
      throw std::runtime_error("LLM_PROVIDER=" + cfg.llm_provider + ": " + p.error().message);
  }

  // Renames keys of the untagged schema once Redis is reachable; retried every second until done.
  static asio::awaitable<void> migrate_keys(impl* self) {
    auto& failures = self->metrics.get_counter("berth_redis_key_migration_failures_total",
                                               "start-up key migrations that failed (retried every second)");
    asio::steady_timer retry(self->ioc);
    bool logged = false;
    while (!self->stopping) {
      if (co_await self->redis->wait_connected(std::chrono::seconds(5))) {
        auto r = co_await session::migrate_legacy_keys(self->redis, self->sessions->options().keys);
        if (r) {
          self->keys_migrated = true;
          co_return;
        }
        failures.inc();
        if (!logged) core::logger("app")->warn("redis key migration failed: {} (retrying)", r.error().message);
        logged = true;
      }
      retry.expires_after(std::chrono::seconds(1));
      co_await retry.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  static asio::awaitable<void> start_services(impl* self) {
    self->redis->start();
    asio::co_spawn(self->ioc, migrate_keys(self), asio::detached);
    self->heartbeat->start();
    self->janitor->start();
    self->reaper->start();  // first round now (start-up), then every ORPHAN_REAP_INTERVAL_MS
    // Every create takes a MAX_CONTAINERS slot in Redis, and the start-up adoption asks Redis
    // which containers live sessions hold: warming up before Redis answers (compose starts the
    // replicas and Redis together) would fail three creates in a row and leave the pool degraded.
    if (!self->redis->connected()) {
      core::logger("app")->info("waiting for Redis before warming the container pool");
      if (!co_await self->redis->wait_connected(std::chrono::seconds(60)))
        core::logger("app")->warn("Redis still unreachable after 60 s: warming the pool anyway");
    }
    auto started = co_await self->pool->start();
    if (!started) core::logger("app")->error("container pool failed to start: {}", started.error().message);
    self->pool_start_ok = started.has_value();
    self->pool_started = true;
  }

  static asio::awaitable<void> stop_services(impl* self) {
    self->janitor->stop();
    self->reaper->stop();
    self->heartbeat->stop();
    co_await self->pool->stop();
    self->redis->stop();
  }

  // Waits (bounded) for sessions to flush their close packets and to hibernate, then stops the
  // services.
  static asio::awaitable<void> drain_and_stop(impl* s, asio::steady_timer* grace) {
    asio::steady_timer poll(s->ioc);
    for (int i = 0; i < 250 && s->eio.session_count() > 0; ++i) {
      poll.expires_after(std::chrono::milliseconds(20));
      co_await poll.async_wait(asio::use_awaitable);
    }
    if (s->gw) {
      const auto left = co_await s->gw->hibernate_parked(s->cfg.shutdown_grace * 3 / 4);
      if (left > 0)
        core::logger("app")->warn("{} sessions did not hibernate in time: they keep their containers", left);
    }
    co_await stop_services(s);
    grace->cancel();
  }

  // What this replica publishes with each heartbeat: the guide's pool fields and a few more.
  json replica_status() {
    auto body = pool::to_json(pool->stats());
    body["replica"] = cfg.replica_id;
    body["sessions"] = eio.session_count();
    body["sockets"] = io.connected_sockets();
    body["updatedMs"] = session::system_now_ms();
    return body;
  }

  // The cluster as the replicas last published it (one HGETALL, no fan-out). Entries older than
  // the heartbeat TTL belong to replicas that are gone: left out of the totals, listed under
  // `stale` (ids only) until a minute has passed, then deleted.
  asio::awaitable<json> cluster_status() {
    std::vector<std::string> get;
    get.push_back("HGETALL");
    get.push_back(stats_key);
    auto r = co_await redis->command(std::move(get));
    if (!r) co_return error_json(r.error().message);
    auto flat = redis::as_string_array(*r, "HGETALL replica-stats");
    if (!flat) co_return error_json(flat.error().message);
    std::vector<std::string> forget;
    auto body = summarize_cluster(*flat, session::system_now_ms(), heartbeat_ttl, forget);
    if (!forget.empty()) {
      std::vector<std::string> del;
      del.push_back("HDEL");
      del.push_back(stats_key);
      del.insert(del.end(), forget.begin(), forget.end());
      (void)co_await redis->command(std::move(del));
    }
    co_return body;
  }

  static json error_json(const std::string& message) {
    json e = json::object();
    e["error"] = message;
    return e;
  }

  // Per-replica figures Prometheus alerts on (docker/prometheus, monitoring/rules).
  void register_gauges() {
    metrics.add_gauge("berth_replica_info", "Always 1; the label names this replica", [] { return 1.0; },
                      "replica=\"" + cfg.replica_id + "\"");
    metrics.add_gauge("berth_pool_max_size", "POOL_MAX_SIZE of this replica (0 with pooling off)",
                      [this] { return static_cast<double>(pool->stats().max_pool_size); });
    metrics.add_gauge("berth_pool_min_size", "POOL_MIN_SIZE of this replica",
                      [this] { return static_cast<double>(pool->stats().min_pool_size); });
    for (const auto& [q, field] : {std::pair{"0.5", &pool::pool_stats::acquire_p50_ms},
                                   std::pair{"0.95", &pool::pool_stats::acquire_p95_ms},
                                   std::pair{"0.99", &pool::pool_stats::acquire_p99_ms}}) {
      metrics.add_gauge("berth_pool_acquire_seconds", "Container acquisition time quantiles (recent acquires)",
                        [this, f = field] { return pool->stats().*f / 1000.0; },
                        std::string("quantile=\"") + q + "\"");
    }
  }

  // The facts /health and /health/ready report (app/status.hpp turns them into the answer).
  asio::awaitable<health_facts> health_now() {
    health_facts f;
    f.replica = cfg.replica_id;
    f.uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
    f.stopping = stopping;
    const auto r = redis->health();
    f.redis_ok = r.ok;
    f.redis_latency_ms = r.latency_ms;
    f.redis_master = redis->master_address();
    f.redis_sentinel = redis->uses_sentinel();
    f.redis_failovers = redis->failover_count();
    if (auto v = co_await docker->version(); v) {
      f.docker_ok = true;
      f.docker_api_version = docker->negotiated() ? docker->negotiated()->to_string() : "";
    } else {
      f.docker_error = v.error().message;
    }
    f.pool = pool::to_json(pool->stats());
    f.connections = http_server.open_connections();
    f.sockets = io.connected_sockets();
    co_return f;
  }

  void register_routes() {
    http_server.route("GET", "/health/live", [this](http::request&) -> asio::awaitable<http::response> {
      co_return json_ok(json{{"status", "ok"}, {"replica", cfg.replica_id}});
    });
    http_server.route("GET", "/health/ready", [this](http::request&) -> asio::awaitable<http::response> {
      const auto facts = co_await health_now();
      const auto stats = pool->stats();
      const bool is_ready = ready(facts, {.keys_migrated = keys_migrated.load(), .pool_started = pool_started.load(),
                                          .pool_start_ok = pool_start_ok.load(), .pooling = stats.pooling, .idle = stats.idle});
      auto body = health_report(facts);
      body["status"] = is_ready ? "ready" : "not ready";
      co_return json_ok(body, is_ready ? 200 : 503);
    });
    http_server.route("GET", "/health", [this](http::request&) -> asio::awaitable<http::response> {
      const auto facts = co_await health_now();
      co_return json_ok(health_report(facts), healthy(facts) ? 200 : 503);
    });
    http_server.route("GET", "/stats/pool", [this](http::request&) -> asio::awaitable<http::response> {
      // The guide's fields for the replica that answers, then the cluster from Redis.
      auto body = pool::to_json(pool->stats());
      body["replica"] = cfg.replica_id;
      body["cluster"] = co_await cluster_status();
      co_return json_ok(body);
    });
    http_server.route("GET", "/metrics", [this](http::request&) -> asio::awaitable<http::response> {
      co_return http::text_response(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    for (const char* name : {"socket.io.js", "socket.io.min.js", "socket.io.js.map", "socket.io.min.js.map",
                             "socket.io.esm.min.js", "socket.io.esm.min.js.map"}) {
      const std::string url = cfg.socketio_path + name;
      http_server.route("GET", url, [this, url](http::request& req) -> asio::awaitable<http::response> {
        co_return http::static_file_response(assets.client_bundle, url, req, "public, max-age=3600");
      });
    }
    http_server.fallback([this](http::request& req) -> std::optional<http::response> {
      auto [path, _] = http::split_target(std::string_view(req.target().data(), req.target().size()));
      if (!assets.chat_ui.find(std::string(path))) return std::nullopt;
      return http::static_file_response(assets.chat_ui, std::string(path), req, "no-cache");
    });
  }

};

app::app(core::config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}
app::~app() = default;

int app::run() {
  auto& s = *impl_;
  auto log = core::logger("app");
  raise_open_files_limit(s.cfg.max_connections);
  log->info("sticky routing: Engine.IO sids start with '{}' (route address {})", s.eio.options().sid_prefix,
            route_address(s.cfg));
  s.assets = load_web_assets(s.cfg);
  try {
    s.build_services();
  } catch (const std::exception& e) {
    log->error("cannot start: {}", e.what());
    return 2;
  }
  s.register_routes();
  if (!s.cfg.diagnostics_namespace.empty()) {
    conformance::register_echo_handlers(s.io.of(s.cfg.diagnostics_namespace));
    log->warn("diagnostics namespace {} enabled (echo handlers for tests)", s.cfg.diagnostics_namespace);
  }
  s.eio.attach(s.http_server);
  std::uint16_t port = 0;
  try {
    port = s.http_server.listen();
  } catch (const std::exception& e) {
    log->error("cannot listen on {}:{}: {}", s.cfg.host, s.cfg.port, e.what());
    return 1;
  }
  s.http_server.start();
  asio::co_spawn(s.ioc, impl::start_services(&s), asio::detached);
  log->info("Berth listening on {}:{} (replica {}, {} thread(s))", s.cfg.host, port, s.cfg.replica_id, s.cfg.threads);

  asio::signal_set signals(s.ioc, SIGINT, SIGTERM);
  asio::steady_timer grace(s.ioc);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log->info("signal {}: shutting down", sig);
    s.stopping = true;
    s.http_server.stop();
    if (s.gw) s.gw->drain();
    s.eio.close_all();
    // Bounded wait for sessions to flush their close packets, then stop.
    grace.expires_after(s.cfg.shutdown_grace);
    grace.async_wait([&](auto) { s.ioc.stop(); });
    asio::co_spawn(s.ioc, impl::drain_and_stop(&s, &grace), asio::detached);
  });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < s.cfg.threads; ++i) threads.emplace_back([&] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
  log->info("stopped");
  return 0;
}

}  // namespace berth::app
