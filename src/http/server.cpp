#include "berth/http/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http.hpp>

#include <array>

#include "berth/core/logging.hpp"

namespace berth::http {

namespace bhttp = beast::http;
using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::as_tuple(asio::use_awaitable);

response json_response(unsigned status, const std::string& body, unsigned version) {
  response res{static_cast<bhttp::status>(status), version};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  res.body() = body;
  res.prepare_payload();
  return res;
}

response text_response(unsigned status, std::string body, std::string content_type, unsigned version) {
  response res{static_cast<bhttp::status>(status), version};
  res.set(bhttp::field::content_type, content_type);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

response not_found(unsigned version) {
  return json_response(404, R"({"error":"not_found","message":"Not found"})", version);
}

namespace {
// The chat page may only load its own scripts and talk to its own origin.
constexpr const char* content_security_policy =
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'";
}  // namespace

response static_file_response(const static_files& files, const std::string& path, const request& req,
                              std::string_view cache_control) {
  const auto* f = files.find(path);
  if (!f) return not_found(req.version());
  if (req[bhttp::field::if_none_match] == f->etag) {
    response res{bhttp::status::not_modified, req.version()};
    res.set(bhttp::field::etag, f->etag);
    return res;
  }
  auto res = text_response(200, f->body, f->content_type, req.version());
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

server::server(asio::io_context& ioc, server_options opts, core::metrics& metrics)
    : ioc_(ioc),
      opts_(std::move(opts)),
      metrics_(metrics),
      accept_strand_(asio::make_strand(ioc)),
      acceptor_(accept_strand_),
      slot_freed_(std::make_shared<asio::steady_timer>(accept_strand_)),
      paused_(metrics.get_counter("berth_http_accept_paused_total",
                                  "Times accepting paused because MAX_CONNECTIONS was reached")),
      bad_requests_(metrics.get_counter("berth_http_bad_requests_total", "Malformed or oversized HTTP requests")),
      refused_per_address_(metrics.get_counter("berth_http_connections_refused_total",
                                               "TCP connections closed at accept: MAX_CONNECTIONS_PER_ADDRESS reached for their peer")) {
  metrics_.add_gauge("berth_http_connections", "Open TCP connections",
                     [this] { return static_cast<double>(open_.load()); });
}

server::~server() = default;

void server::route(std::string method, std::string path, handler h) {
  routes_.push_back({std::move(method), std::move(path), std::move(h)});
}

void server::fallback(std::function<std::optional<response>(request&)> h) { fallback_ = std::move(h); }

void server::route_prefix(std::string prefix, raw_handler h) { prefixes_.push_back({std::move(prefix), std::move(h)}); }

std::uint16_t server::listen() {
  tcp::endpoint ep{asio::ip::make_address(opts_.host), opts_.port};
  acceptor_.open(ep.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  return acceptor_.local_endpoint().port();
}

void server::start() { asio::co_spawn(accept_strand_, accept_loop(), asio::detached); }

void server::stop() {
  // The acceptor and its timer belong to the accept strand (THREADS > 1 runs handlers in parallel).
  asio::post(accept_strand_, [this] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    slot_freed_->cancel();
  });
}

asio::awaitable<void> server::accept_loop() {
  auto log = core::logger("http");
  while (acceptor_.is_open()) {
    if (open_.load() >= opts_.max_connections) {
      // Stop accepting (the kernel backlog holds new clients) until a connection closes.
      paused_.inc();
      log->warn("MAX_CONNECTIONS={} reached: accepting paused", opts_.max_connections);
      while (open_.load() >= opts_.max_connections && acceptor_.is_open()) {
        slot_freed_->expires_after(std::chrono::seconds(1));
        co_await slot_freed_->async_wait(as_tuple_awaitable);
      }
      continue;
    }
    auto [ec, socket] = co_await acceptor_.async_accept(asio::make_strand(ioc_), as_tuple_awaitable);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
      // EMFILE and friends: back off briefly instead of spinning.
      log->warn("accept failed: {}", ec.message());
      asio::steady_timer t(accept_strand_, std::chrono::milliseconds(50));
      co_await t.async_wait(as_tuple_awaitable);
      continue;
    }
    auto peer_key = admit_peer(socket.remote_endpoint(ec));
    if (!peer_key) {
      socket.close(ec);  // no HTTP yet to answer with: the kernel's reset is the answer
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    ++open_;
    auto ex = socket.get_executor();
    asio::co_spawn(ex, serve(std::move(socket)), [this, timer = slot_freed_, key = std::move(*peer_key)](std::exception_ptr e) {
      if (!key.empty()) release_peer(key);
      if (open_.fetch_sub(1) >= opts_.max_connections) asio::post(accept_strand_, [timer] { timer->cancel(); });
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& err) {
          core::logger("http")->error("connection failed: {}", err.what());
        }
      }
    });
  }
}

std::optional<std::string> server::admit_peer(const tcp::endpoint& ep) {
  if (opts_.max_connections_per_address == 0) return std::string();
  const auto peer = core::parse_ip(ep.address().to_string());
  if (!peer || opts_.unlimited_peers.contains(*peer)) return std::string();
  auto key = peer->limit_key();
  std::size_t open = 0;
  {
    std::lock_guard lock(peers_mutex_);
    auto& n = per_peer_[key];
    if (n < opts_.max_connections_per_address) {
      ++n;
      return key;
    }
    open = n;
  }
  refused_per_address_.inc();
  std::uint64_t suppressed = 0;
  if (refusal_log_.allow(suppressed))
    core::logger("http")->warn("connection from {} refused: {} open from this address (MAX_CONNECTIONS_PER_ADDRESS={}){}",
                               peer->to_string(), open, opts_.max_connections_per_address,
                               suppressed ? " (" + std::to_string(suppressed) + " similar lines suppressed)" : "");
  return std::nullopt;
}

void server::release_peer(const std::string& key) {
  std::lock_guard lock(peers_mutex_);
  auto it = per_peer_.find(key);
  if (it != per_peer_.end() && --it->second == 0) per_peer_.erase(it);
}

asio::awaitable<response> server::dispatch(request& req, connection_context& ctx, bool& handled_raw) {
  auto [path, query] = split_target(std::string_view(req.target().data(), req.target().size()));
  // Exact routes first, so e.g. /socket.io/socket.io.js is served beside the /socket.io/ endpoint.
  bool path_known = false;
  const std::string method(req.method_string());
  for (auto& r : routes_) {
    if (r.path != path) continue;
    path_known = true;
    if (r.method == method || (method == "HEAD" && r.method == "GET")) co_return co_await r.h(req);
  }
  if (path_known) co_return json_response(405, R"({"error":"method_not_allowed","message":"Method not allowed"})", req.version());
  for (auto& p : prefixes_) {
    if (path.substr(0, p.prefix.size()) == p.prefix) {
      auto res = co_await p.h(req, ctx);
      if (!res) {
        handled_raw = true;
        co_return response{};
      }
      co_return std::move(*res);
    }
  }
  if (fallback_ && (req.method() == beast::http::verb::get || req.method() == beast::http::verb::head)) {
    if (auto res = fallback_(req)) co_return std::move(*res);
  }
  co_return not_found(req.version());
}

asio::awaitable<void> server::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  connection_context ctx{stream, buffer};
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(opts_.header_limit));
    parser.body_limit(opts_.body_limit);
    stream.expires_after(opts_.idle_timeout);
    auto [ec, n] = co_await bhttp::async_read(stream, buffer, parser, as_tuple_awaitable);
    if (ec) {
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == beast::error::timeout ||
          ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
        break;
      bad_requests_.inc();
      const bool header_too_big = ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow;
      const bool body_too_big = ec == bhttp::error::body_limit;
      core::logger("http")->debug("bad request: {}", ec.message());
      // Let the engine.io route see oversized bodies for its session (it must close that session).
      // (beast reports an oversized Content-Length before it marks the header done, but the
      // request line and fields are already parsed)
      if (ec == bhttp::error::body_limit && !parser.get().target().empty()) {
        auto& req = parser.get();
        req.body().clear();
        ctx.body_too_large = true;
        bool raw = false;
        auto res = co_await dispatch(req, ctx, raw);
        (void)res;
      }
      auto res = text_response(header_too_big ? 431 : body_too_big ? 413 : 400, "", "text/plain");
      res.keep_alive(false);
      stream.expires_after(std::chrono::seconds(5));
      co_await bhttp::async_write(stream, res, as_tuple_awaitable);
      if (body_too_big) {
        // Read (and drop) what the client is still sending, so it sees our 413 rather than a
        // connection reset; bounded in bytes and time.
        beast::error_code sec;
        stream.socket().shutdown(tcp::socket::shutdown_send, sec);
        std::array<char, 16 * 1024> sink;
        std::size_t drained = 0;
        stream.expires_after(std::chrono::seconds(2));
        while (drained < 4 * opts_.body_limit) {
          auto [rec, rn] = co_await stream.async_read_some(asio::buffer(sink), as_tuple_awaitable);
          if (rec) break;
          drained += rn;
        }
      }
      break;
    }
    auto req = parser.release();
    const bool keep_alive = req.keep_alive();
    bool handled_raw = false;
    stream.expires_never();
    auto res = co_await dispatch(req, ctx, handled_raw);
    if (ctx.taken) co_return;  // the socket now belongs to a websocket session
    if (handled_raw) break;
    res.keep_alive(keep_alive);
    stream.expires_after(std::chrono::seconds(30));
    auto [wec, wn] = co_await bhttp::async_write(stream, res, as_tuple_awaitable);
    if (wec || !keep_alive) break;
  }
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace berth::http
