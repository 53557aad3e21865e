#include "berth/app/app.hpp"

#include <sys/resource.h>

#include <filesystem>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "berth/conformance/handlers.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"
#include "berth/engineio/server.hpp"
#include "berth/http/server.hpp"
#include "berth/http/static_files.hpp"
#include "berth/socketio/server.hpp"

namespace berth::app {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using json = nlohmann::json;

namespace {
// The chat page may only load its own scripts and talk to its own origin.
constexpr const char* content_security_policy =
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'";

std::string first_existing_dir(std::initializer_list<std::string> candidates) {
  std::error_code ec;
  for (const auto& c : candidates)
    if (!c.empty() && std::filesystem::is_directory(c, ec)) return c;
  return {};
}

std::string executable_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}
}  // namespace

struct app::impl {
  core::config cfg;
  asio::io_context ioc{static_cast<int>(cfg.threads)};
  core::metrics metrics;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  http::server http_server;
  socketio::server io;
  engineio::server eio;
  http::static_files web;
  http::static_files client_bundle;
  bool stopping = false;

  explicit impl(core::config c)
      : cfg(std::move(c)),
        http_server(ioc,
                    {.host = cfg.host,
                     .port = cfg.port,
                     .max_connections = cfg.max_connections,
                     .body_limit = cfg.max_http_buffer_size},
                    metrics),
        io({.connect_timeout = cfg.connect_timeout}, metrics),
        eio(ioc, eio_options(cfg), metrics, io.handler_factory()) {}

  static engineio::server_options eio_options(const core::config& cfg) {
    engineio::server_options o;
    o.path = cfg.socketio_path;
    o.session.ping_interval = cfg.ping_interval;
    o.session.ping_timeout = cfg.ping_timeout;
    o.session.upgrade_timeout = cfg.upgrade_timeout;
    o.session.max_payload = cfg.max_http_buffer_size;
    o.cors.allowed = cfg.cors_origins;
    return o;
  }

  http::response json_ok(const json& body, unsigned status = 200) {
    return http::json_response(status, body.dump());
  }

  json health_body(bool& healthy) {
    healthy = !stopping;
    const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
    return json{{"status", healthy ? "ok" : "degraded"},
                {"replica", cfg.replica_id},
                {"uptimeS", uptime.count()},
                {"connections", http_server.open_connections()},
                {"sockets", io.connected_sockets()}};
  }

  void register_routes() {
    http_server.route("GET", "/health/live", [this](http::request&) -> asio::awaitable<http::response> {
      co_return json_ok(json{{"status", "ok"}, {"replica", cfg.replica_id}});
    });
    http_server.route("GET", "/health/ready", [this](http::request&) -> asio::awaitable<http::response> {
      bool healthy = false;
      auto body = health_body(healthy);
      co_return json_ok(body, healthy ? 200 : 503);
    });
    http_server.route("GET", "/health", [this](http::request&) -> asio::awaitable<http::response> {
      bool healthy = false;
      auto body = health_body(healthy);
      co_return json_ok(body, healthy ? 200 : 503);
    });
    http_server.route("GET", "/metrics", [this](http::request&) -> asio::awaitable<http::response> {
      co_return http::text_response(200, metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });
    for (const char* name : {"socket.io.js", "socket.io.min.js", "socket.io.js.map", "socket.io.min.js.map",
                             "socket.io.esm.min.js", "socket.io.esm.min.js.map"}) {
      const std::string url = cfg.socketio_path + name;
      http_server.route("GET", url, [this, url](http::request& req) -> asio::awaitable<http::response> {
        co_return serve_file(client_bundle, url, req, "public, max-age=3600");
      });
    }
    http_server.fallback([this](http::request& req) -> std::optional<http::response> {
      auto [path, _] = http::split_target(std::string_view(req.target().data(), req.target().size()));
      if (!web.find(std::string(path))) return std::nullopt;
      return serve_file(web, std::string(path), req, "no-cache");
    });
  }

  http::response serve_file(const http::static_files& files, const std::string& path, http::request& req,
                            const char* cache_control) {
    const auto* f = files.find(path);
    if (!f) return http::json_response(404, R"({"error":"not_found","message":"Not found"})", req.version());
    if (req[bhttp::field::if_none_match] == f->etag) {
      http::response res{bhttp::status::not_modified, req.version()};
      res.set(bhttp::field::etag, f->etag);
      return res;
    }
    auto res = http::text_response(200, f->body, f->content_type, req.version());
    if (req.method() == bhttp::verb::head) res.body().clear();  // keeps the Content-Length of the GET
    res.set(bhttp::field::cache_control, cache_control);
    res.set(bhttp::field::etag, f->etag);
    res.set("X-Content-Type-Options", "nosniff");
    res.set("Referrer-Policy", "no-referrer");
    if (f->content_type.starts_with("text/html")) {
      res.set("Content-Security-Policy", content_security_policy);
      res.set("X-Frame-Options", "DENY");
    }
    return res;
  }

  void load_static() {
    auto log = core::logger("app");
    const auto exe = executable_dir();
    const auto web_dir = first_existing_dir({cfg.static_dir, "web", exe + "/../share/berth/web", "/app/web",
                                             exe + "/../../web", exe + "/../../../web"});
    if (auto n = web.load(web_dir, "/"); n > 0)
      log->info("chat UI: {} files from {}", n, web_dir);
    else
      log->warn("chat UI not found (set STATIC_DIR): GET / answers 404");
    const auto client_dir = first_existing_dir(
        {cfg.client_bundle_dir, "client/node_modules/socket.io-client/dist", "/app/client",
         exe + "/../../client/node_modules/socket.io-client/dist", exe + "/../../../client/node_modules/socket.io-client/dist"});
    if (auto n = client_bundle.load(client_dir, cfg.socketio_path); n > 0)
      log->info("socket.io client bundle: {} files from {}", n, client_dir);
    else
      log->warn("socket.io-client bundle not found (set CLIENT_BUNDLE_DIR): {}socket.io.js answers 404", cfg.socketio_path);
  }
};

app::app(core::config cfg) : impl_(std::make_unique<impl>(std::move(cfg))) {}
app::~app() = default;

int app::run() {
  auto& s = *impl_;
  auto log = core::logger("app");
  s.load_static();
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
  log->info("Berth listening on {}:{} (replica {}, {} thread(s))", s.cfg.host, port, s.cfg.replica_id, s.cfg.threads);

  asio::signal_set signals(s.ioc, SIGINT, SIGTERM);
  asio::steady_timer grace(s.ioc);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log->info("signal {}: shutting down", sig);
    s.stopping = true;
    s.http_server.stop();
    s.eio.close_all();
    // Bounded wait for sessions to flush their close packets, then stop.
    grace.expires_after(s.cfg.shutdown_grace);
    grace.async_wait([&](auto) { s.ioc.stop(); });
    asio::co_spawn(s.ioc, [](engineio::server& eio, asio::io_context& ioc, asio::steady_timer& g) -> asio::awaitable<void> {
      asio::steady_timer poll(ioc);
      for (int i = 0; i < 1000 && eio.session_count() > 0; ++i) {
        poll.expires_after(std::chrono::milliseconds(20));
        co_await poll.async_wait(asio::use_awaitable);
      }
      g.cancel();
    }(s.eio, s.ioc, grace), asio::detached);
  });

  std::vector<std::thread> threads;
  for (unsigned i = 1; i < s.cfg.threads; ++i) threads.emplace_back([&] { s.ioc.run(); });
  s.ioc.run();
  for (auto& t : threads) t.join();
  log->info("stopped");
  return 0;
}

}  // namespace berth::app
