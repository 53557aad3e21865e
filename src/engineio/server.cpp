// The Engine.IO server: admits new sessions (origin, per-address limits, process budget), routes
// polling requests and websocket upgrades to the session they name, keeps the registry.
#include "berth/engineio/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "readiness_hub.hpp"
#include "socket_ops.hpp"

namespace berth::engineio {

namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using detail::use_tuple;

namespace {
core::ip_address peer_address(http::connection_context& ctx) {
  boost::system::error_code ec;
  auto ep = ctx.stream.socket().remote_endpoint(ec);
  if (ec) return {};
  return core::parse_ip(ep.address().to_string()).value_or(core::ip_address{});
}
}  // namespace

server::server(asio::io_context& ioc, server_options opts, core::metrics& metrics, handler_factory factory)
    : ioc_(ioc),
      opts_(std::move(opts)),
      metrics_(metrics),
      factory_(std::move(factory)),
      hub_(std::make_unique<detail::readiness_hub>(ioc)),
      opened_(metrics.get_counter("berth_engineio_sessions_opened_total", "Engine.IO sessions opened")),
      bad_requests_(metrics.get_counter("berth_engineio_bad_requests_total", "Engine.IO requests answered 4xx")),
      protocol_errors_(metrics.get_counter("berth_engineio_protocol_errors_total",
                                           "Engine.IO sessions closed for a protocol violation")),
      ping_timeouts_(metrics.get_counter("berth_engineio_ping_timeouts_total", "Engine.IO sessions closed by ping timeout")),
      overflows_(metrics.get_counter("berth_engineio_outbound_overflows_total",
                                     "Engine.IO sessions closed because the client did not read")),
      upgrades_(metrics.get_counter("berth_engineio_upgrades_total", "Polling sessions upgraded to websocket")),
      refused_address_rate_(metrics.get_counter("berth_engineio_sessions_refused_total",
                                                "New sessions refused (429/503)", "reason=\"address_rate\"")),
      refused_address_sessions_(metrics.get_counter("berth_engineio_sessions_refused_total",
                                                    "New sessions refused (429/503)", "reason=\"address_sessions\"")),
      refused_overloaded_(metrics.get_counter("berth_engineio_sessions_refused_total", "New sessions refused (429/503)",
                                              "reason=\"overloaded\"")),
      sid_address_mismatch_(metrics.get_counter("berth_engineio_sid_address_mismatch_total",
                                                "Requests with a session id from another client address (403)")),
      control_overflows_(metrics.get_counter("berth_engineio_control_overflows_total",
                                             "Websocket sessions closed: pongs owed piled up unread")),
      buffer_overflows_(metrics.get_counter("berth_engineio_buffer_overflows_total",
                                            "Sessions closed for holding more than MAX_CONNECTION_BUFFER_BYTES")),
      overload_closes_(metrics.get_counter("berth_engineio_overload_closes_total",
                                           "Sessions closed for buffering more inbound bytes while the process was over MAX_PROCESS_BUFFER_BYTES")) {
  if (opts_.per_address.new_sessions_per_minute > 0)
    new_session_buckets_ = std::make_unique<core::keyed_token_buckets>(
        opts_.per_address.new_sessions_per_minute / 60.0, opts_.per_address.new_sessions_per_minute,
        opts_.per_address.max_tracked_addresses);
  metrics_.add_gauge("berth_engineio_sessions", "Open Engine.IO sessions",
                     [this] { return static_cast<double>(session_count()); }, "path=\"" + opts_.path + "\"");
  metrics_.add_gauge("berth_engineio_buffered_bytes", "Bytes all Engine.IO sessions buffer (inbound and outbound)",
                     [this] { return static_cast<double>(buffered_bytes()); }, "path=\"" + opts_.path + "\"");
}

server::~server() = default;

void server::attach(http::server& http) {
  http.route_prefix(opts_.path, [this](http::request& req, http::connection_context& ctx) { return handle(req, ctx); });
}

std::size_t server::session_count() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::shared_ptr<session> server::find(const std::string& sid) const {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  return it == sessions_.end() ? nullptr : it->second;
}

void server::remove(const std::string& sid) {
  std::lock_guard lock(mutex_);
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  if (auto n = sessions_per_address_.find(it->second->info().address_key); n != sessions_per_address_.end())
    if (--n->second == 0) sessions_per_address_.erase(n);
  sessions_.erase(it);
}

void server::identify_client(const http::request& req, http::connection_context& ctx, handshake_info& info) const {
  const auto peer = peer_address(ctx);
  core::ip_address client = peer;
  if (!opts_.per_address.trusted_proxies.empty()) {
    std::vector<std::string_view> forwarded;
    auto [first, last] = req.equal_range("X-Forwarded-For");
    for (auto it = first; it != last && forwarded.size() < 16; ++it)
      forwarded.emplace_back(it->value().data(), it->value().size());
    client = core::resolve_client_address(peer, forwarded, opts_.per_address.trusted_proxies);
  }
  info.remote_address = client.to_string();
  info.address_key = client.limit_key();
}

void server::warn_throttled(core::log_limiter& limiter, const std::string& line) {
  std::uint64_t suppressed = 0;
  if (!limiter.allow(suppressed)) return;
  if (suppressed != 0)
    core::logger("engineio")->warn("{} ({} similar lines suppressed)", line, suppressed);
  else
    core::logger("engineio")->warn("{}", line);
}

bool server::same_client(const session& s, const handshake_info& info, std::string_view what) {
  if (s.info().address_key == info.address_key) return true;
  sid_address_mismatch_.inc();
  // The sid is a credential: a prefix names it well enough for the operator.
  warn_throttled(address_log_, "sid=" + core::log_prefix(s.id(), 6) + "... " + std::string(what) + " from " +
                                   info.remote_address + " refused: the session was opened from " +
                                   s.info().remote_address);
  return false;
}

std::optional<http::response> server::admit_new_session(http::request& req, const handshake_info& info) {
  auto refuse = [&](core::errc code, const char* message, std::chrono::milliseconds retry) {
    auto res = http::json_response(core::http_status(code), core::error_body({code, message, retry}).dump(), req.version());
    res.set(bhttp::field::retry_after, std::to_string((retry.count() + 999) / 1000));
    add_cors(req, res);
    return std::optional<http::response>(std::move(res));
  };
  if (opts_.max_process_buffered_bytes != 0 && buffered_bytes() > opts_.max_process_buffered_bytes) {
    refused_overloaded_.inc();
    warn_throttled(overload_log_, "new session from " + info.remote_address + " refused: the process buffers " +
                                      std::to_string(buffered_bytes()) + " bytes, over MAX_PROCESS_BUFFER_BYTES=" +
                                      std::to_string(opts_.max_process_buffered_bytes));
    return refuse(core::errc::server_overloaded, "Server overloaded, try again later", std::chrono::seconds(1));
  }
  const auto& limits = opts_.per_address;
  std::size_t open = 0;
  std::optional<std::chrono::milliseconds> wait;
  {
    std::lock_guard lock(mutex_);
    if (auto it = sessions_per_address_.find(info.address_key); it != sessions_per_address_.end()) open = it->second;
    if (limits.max_sessions != 0 && open >= limits.max_sessions) {
      // refused below, outside the lock
    } else if (new_session_buckets_ && !new_session_buckets_->try_take(info.address_key, core::rate_clock::now())) {
      wait = new_session_buckets_->wait_time(info.address_key, core::rate_clock::now());
    } else {
      return std::nullopt;
    }
  }
  if (!wait) {
    refused_address_sessions_.inc();
    warn_throttled(address_log_, "new session from " + info.remote_address + " refused: " + std::to_string(open) +
                                     " sessions open from this address (MAX_ENGINEIO_SESSIONS_PER_ADDRESS=" +
                                     std::to_string(limits.max_sessions) + ")");
    return refuse(core::errc::too_many_sessions, "Too many open sessions from this address", std::chrono::seconds(5));
  }
  refused_address_rate_.inc();
  warn_throttled(address_log_, "new session from " + info.remote_address +
                                   " refused: over NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE=" +
                                   std::to_string(static_cast<long long>(limits.new_sessions_per_minute)));
  return refuse(core::errc::rate_limited, "Too many new sessions from this address", *wait);
}

void server::close_all(close_reason reason) {
  std::vector<std::shared_ptr<session>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [_, s] : sessions_) all.push_back(s);
  }
  for (auto& s : all) s->close(reason);
}

std::shared_ptr<session> server::create(strand_type strand, transport_kind kind, handshake_info info) {
  info.sid = opts_.sid_prefix + core::random_token(15);
  auto s = std::make_shared<session>(*this, std::move(strand), kind, std::move(info));
  {
    std::lock_guard lock(mutex_);
    sessions_.emplace(s->id(), s);
    ++sessions_per_address_[s->info().address_key];
  }
  opened_.inc();
  return s;
}

void server::add_cors(http::request& req, http::response& res) {
  auto origin = req[bhttp::field::origin];
  if (auto allow = opts_.cors.allow_origin_header(std::string_view(origin.data(), origin.size()))) {
    res.set(bhttp::field::access_control_allow_origin, *allow);
    if (*allow != "*") {
      res.set(bhttp::field::access_control_allow_credentials, "true");
      res.set(bhttp::field::vary, "Origin");
    }
  }
}

http::response server::error_response(http::request& req, unsigned status, std::optional<http_error> e) {
  bad_requests_.inc();
  auto res = e ? http::json_response(status, error_body(*e), req.version())
               : http::text_response(status, "", "text/plain", req.version());
  add_cors(req, res);
  return res;
}

asio::awaitable<std::optional<http::response>> server::handle(http::request& req, http::connection_context& ctx) {
  auto [path, query_text] = http::split_target(std::string_view(req.target().data(), req.target().size()));
  if (path != opts_.path) co_return http::not_found(req.version());
  handshake_info info;
  info.query = http::parse_query(query_text);
  info.origin = std::string(req[bhttp::field::origin]);
  info.user_agent = std::string(req[bhttp::field::user_agent]);
  identify_client(req, ctx, info);

  auto host = req[bhttp::field::host];
  if (!opts_.cors.allows(info.origin, std::string_view(host.data(), host.size()))) {
    core::logger("engineio")->debug("origin '{}' refused", core::log_prefix(info.origin));
    co_return error_response(req, 403, http_error::forbidden);
  }
  if (req.method() == bhttp::verb::options) {
    http::response res{bhttp::status::no_content, req.version()};
    add_cors(req, res);
    res.set(bhttp::field::access_control_allow_methods, "GET,HEAD,PUT,PATCH,POST,DELETE");
    if (auto h = req[bhttp::field::access_control_request_headers]; !h.empty())
      res.set(bhttp::field::access_control_allow_headers, h);
    res.prepare_payload();
    co_return res;
  }
  auto q = [&](const char* k) -> std::string {
    auto it = info.query.find(k);
    return it == info.query.end() ? std::string() : it->second;
  };
  if (q("EIO") != "4") co_return error_response(req, 400, http_error::unsupported_protocol_version);
  const auto transport = q("transport");
  if (transport != "polling" && transport != "websocket") co_return error_response(req, 400, http_error::unknown_transport);
  const auto sid = q("sid");
  const bool upgrade = boost::beast::websocket::is_upgrade(req);

  if (transport == "websocket") {
    if (!upgrade || req.method() != bhttp::verb::get) co_return error_response(req, 400, http_error::bad_request);
    co_return co_await handle_websocket(req, ctx, std::move(info), sid);
  }
  if (upgrade) co_return error_response(req, 400, http_error::bad_request);

  auto reply = [&](unsigned status, std::string body, const char* type) {
    auto res = http::text_response(status, std::move(body), type, req.version());
    res.set(bhttp::field::cache_control, "no-store");
    add_cors(req, res);
    if (status >= 400) bad_requests_.inc();
    return res;
  };
  if (sid.empty()) {
    if (req.method() != bhttp::verb::get) co_return error_response(req, 400, http_error::bad_handshake_method);
    if (auto refused = admit_new_session(req, info)) co_return std::move(*refused);
    auto strand = asio::make_strand(ioc_);
    auto s = create(strand, transport_kind::polling, std::move(info));
    auto body = "0" + session_fsm::handshake_json(s->id(), true, opts_.session);
    co_await asio::co_spawn(s->strand_, session::start(s, nullptr, nullptr), asio::use_awaitable);
    co_return reply(200, std::move(body), "text/plain; charset=UTF-8");
  }
  auto s = find(sid);
  if (!s) co_return error_response(req, 400, http_error::unknown_sid);
  // Until the upgrade the sid is the session's only credential: it is honoured only from the
  // client address that opened the session.
  if (!same_client(*s, info, "polling request")) co_return error_response(req, 403, http_error::forbidden);
  if (req.method() == bhttp::verb::get) {
    auto [status, body] = co_await asio::co_spawn(s->strand_, s->poll_get(), asio::use_awaitable);
    if (status == 200) co_return reply(200, std::move(body), "text/plain; charset=UTF-8");
    co_return body.empty() ? reply(status, "", "text/plain") : error_response(req, status, http_error::unknown_sid);
  }
  if (req.method() == bhttp::verb::post) {
    const bool too_large = ctx.body_too_large;
    const auto type = req[bhttp::field::content_type];
    const bool binary_body = type.starts_with("application/octet-stream");
    auto [status, body] =
        co_await asio::co_spawn(s->strand_, s->poll_post(std::make_shared<std::string>(std::move(req.body())), binary_body, too_large), asio::use_awaitable);
    if (status == 200) co_return reply(200, std::move(body), "text/html");
    if (body.empty()) co_return reply(status, "", "text/plain");
    auto res = http::json_response(status, body, req.version());
    add_cors(req, res);
    co_return res;
  }
  co_return reply(500, "", "text/plain");
}

asio::awaitable<std::optional<http::response>> server::handle_websocket(http::request& req, http::connection_context& ctx,
                                                                       handshake_info info, const std::string& sid) {
  std::shared_ptr<session> existing;
  if (!sid.empty()) {
    existing = find(sid);
    if (!existing) co_return error_response(req, 400, http_error::unknown_sid);
  }
  auto key = req[bhttp::field::sec_websocket_key];
  if (key.empty() || req[bhttp::field::sec_websocket_version] != "13")
    co_return error_response(req, 400, http_error::bad_request);
  if (existing) {
    // An upgrade probe takes over the session's transport: only from the address that opened it
    // (a stolen sid used elsewhere gets 403 and the session carries on undisturbed).
    if (!same_client(*existing, info, "upgrade probe")) co_return error_response(req, 403, http_error::forbidden);
  } else if (auto refused = admit_new_session(req, info)) {
    co_return std::move(*refused);
  }
  std::string accept = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                       websocket_accept_key(std::string_view(key.data(), key.size())) + "\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(ctx.stream, asio::buffer(accept), use_tuple);
  ctx.taken = true;
  if (wec) co_return std::nullopt;
  // Bytes the client sent right after its handshake are already in the HTTP buffer.
  auto initial = std::make_shared<std::string>(static_cast<const char*>(ctx.buffer.data().data()), ctx.buffer.size());
  ctx.buffer.consume(ctx.buffer.size());
  tcp::socket raw = ctx.stream.release_socket();
  boost::system::error_code ec;
  const auto protocol = raw.local_endpoint(ec).protocol();
  if (ec) co_return std::nullopt;

  if (!existing) {
    auto* own = raw.get_executor().target<strand_type>();
    auto s = create(own ? *own : asio::make_strand(ioc_), transport_kind::websocket, std::move(info));
    auto sock = std::make_shared<tcp::socket>(s->strand_, protocol, raw.release());
    co_await asio::co_spawn(s->strand_, session::start(s, sock, initial), asio::use_awaitable);
    co_return std::nullopt;
  }

  // An upgrade probe for a polling session; it moves onto that session's strand.
  auto sock = std::make_shared<tcp::socket>(existing->strand_, protocol, raw.release());
  co_await asio::co_spawn(existing->strand_, session::start_probe(existing, sock, initial), asio::use_awaitable);
  co_return std::nullopt;
}

}  // namespace berth::engineio
