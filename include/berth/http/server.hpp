#pragma once
// HTTP/1.1 front door on Beast: accepts TCP connections (pausing at MAX_CONNECTIONS instead of
// accepting and dropping), reads requests with header/body limits and keep-alive, and hands each
// request to the first matching route. A route may take over the socket (WebSocket upgrades).
// Thread-safety: routes are registered before run(); connections run on their own strands.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "berth/core/client_address.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/rate_limit.hpp"
#include "berth/http/request_info.hpp"
#include "berth/http/static_files.hpp"

namespace berth::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using request = beast::http::request<beast::http::string_body>;
using response = beast::http::response<beast::http::string_body>;

// Context handed to a route that may keep the connection (websocket upgrade).
struct connection_context {
  beast::tcp_stream& stream;
  beast::flat_buffer& buffer;
  bool taken = false;  // set by the route when it moved the socket away
  // The request's body exceeded the route's limit: the route sees the request line and fields
  // (and an empty body) only so it can act for the session it names; the client gets 413.
  bool body_too_large = false;
};

struct server_options {
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;
  std::size_t max_connections = 50000;
  std::size_t header_limit = 8 * 1024;
  std::size_t body_limit = 1000000;
  std::chrono::seconds idle_timeout{60};
  // TCP connections open at once from one peer address (IPv6: one /64); 0: no limit. Peers in
  // `unlimited_peers` (the trusted proxies: every client behind them shares their address) are
  // exempt. A connection over the limit is closed as soon as it is accepted.
  std::size_t max_connections_per_address = 0;
  core::trusted_proxies unlimited_peers{};
};

class server {
 public:
  // Plain handler: request in, response out (headers like Connection are set by the server).
  using handler = std::function<asio::awaitable<response>(request&)>;
  // Raw handler for a path prefix: may answer itself or take the socket.
  using raw_handler = std::function<asio::awaitable<std::optional<response>>(request&, connection_context&)>;

  server(asio::io_context& ioc, server_options opts, core::metrics& metrics);
  ~server();

  void route(std::string method, std::string path, handler h);
  // Prefix routes see requests whose target path starts with `prefix`; body limit may differ.
  void route_prefix(std::string prefix, raw_handler h);
  // Last resort for GET/HEAD (static files); nullopt falls through to 404.
  void fallback(std::function<std::optional<response>(request&)> h);

  // Binds and listens; throws on failure (start-up error). Returns the bound port.
  std::uint16_t listen();
  // Starts the accept loop (spawned on the io_context).
  void start();
  // Stops accepting; open connections finish their current request.
  void stop();
  std::size_t open_connections() const noexcept { return open_.load(); }

 private:
  asio::awaitable<void> accept_loop();
  // Counts the connection against its peer's limit; empty key: over the limit (refused).
  std::optional<std::string> admit_peer(const tcp::endpoint& peer);
  void release_peer(const std::string& key);
  asio::awaitable<void> serve(tcp::socket socket);
  asio::awaitable<response> dispatch(request& req, connection_context& ctx, bool& handled_raw);

  struct route_entry {
    std::string method, path;
    handler h;
  };
  struct prefix_entry {
    std::string prefix;
    raw_handler h;
  };
  asio::io_context& ioc_;
  server_options opts_;
  core::metrics& metrics_;
  asio::strand<asio::io_context::executor_type> accept_strand_;
  tcp::acceptor acceptor_;
  std::vector<route_entry> routes_;
  std::vector<prefix_entry> prefixes_;
  std::function<std::optional<response>(request&)> fallback_;
  std::atomic<std::size_t> open_{0};
  std::shared_ptr<asio::steady_timer> slot_freed_;  // wakes a paused accept loop
  core::counter& paused_;
  core::counter& bad_requests_;
  core::counter& refused_per_address_;
  std::mutex peers_mutex_;
  std::unordered_map<std::string, std::size_t> per_peer_;  // open connections per limited peer
  core::log_limiter refusal_log_;
};

// JSON error response {"error":..., "message":...} with the status.
response json_response(unsigned status, const std::string& body, unsigned version = 11);
response text_response(unsigned status, std::string body, std::string content_type, unsigned version = 11);
// 404 {"error":"not_found","message":"Not found"}: every path nothing serves.
response not_found(unsigned version = 11);
// A file loaded in `files` (404 when there is none at `path`): ETag / If-None-Match (304), HEAD,
// `cache_control`, nosniff, no referrer; an HTML page also gets the chat UI's Content-Security-
// Policy and may not be framed.
response static_file_response(const static_files& files, const std::string& path, const request& req,
                              std::string_view cache_control);

}  // namespace berth::http
