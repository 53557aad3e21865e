#include "berth/http/client.hpp"

#include <array>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>

#include "berth/core/logging.hpp"
#include "berth/http/url.hpp"

namespace berth::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using tcp = asio::ip::tcp;
namespace {

constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::uint32_t header_limit = 64 * 1024;

outcome failed(failure why, std::string msg, bool retryable) {
  return outcome{std::nullopt, why, std::move(msg), retryable, false};
}

std::string where(const url& u) { return u.host + ":" + std::to_string(u.port); }

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

// Writes the request and reads the response on a connected (and, for TLS, handshaken) stream.
// With a sink, a 2xx text/event-stream body goes to it piece by piece as it arrives (each read
// under the idle deadline); any other body is collected whole, as without one.
template <class Stream>
asio::awaitable<outcome> exchange(Stream& stream, const url& u, const call& c, std::size_t body_limit,
                                  const body_sink* sink, std::chrono::milliseconds idle) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(c.method), u.target, 11};
  if (req.method() == bhttp::verb::unknown) req.method_string(c.method);
  const bool default_port = u.port == (u.tls ? 443 : 80);
  const std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  req.set(bhttp::field::host, default_port ? host : host + ":" + std::to_string(u.port));
  req.set(bhttp::field::user_agent, "berth/0.1");
  req.set(bhttp::field::accept, sink ? "text/event-stream, application/json" : "application/json");
  req.set(bhttp::field::connection, "close");
  for (const auto& h : c.headers) req.set(h.name, h.value);
  req.body() = c.body;
  req.prepare_payload();

  auto [wec, wn] = co_await bhttp::async_write(stream, req, tuple_awaitable);
  (void)wn;
  if (wec) co_return failed(failure::unreachable, "cannot send to " + where(u) + ": " + wec.message(), true);

  auto& lowest = beast::get_lowest_layer(stream);
  auto read_failure = [&](const boost::system::error_code& ec) {
    if (ec == bhttp::error::body_limit)
      return failed(failure::unusable, "reply from " + where(u) + " exceeds " + std::to_string(body_limit) + " bytes",
                    false);
    if (ec == beast::error::timeout)
      return failed(failure::unreachable,
                    "no data from " + where(u) + " for " + std::to_string(idle.count()) + " ms", true);
    // A peer that closes or garbles mid-reply is treated like a dropped connection.
    return failed(failure::unreachable, "cannot read reply from " + where(u) + ": " + ec.message(), true);
  };
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(header_limit);
  parser.body_limit(body_limit);
  if (sink) lowest.expires_after(idle);
  auto [hec, hn] = co_await bhttp::async_read_header(stream, buffer, parser, tuple_awaitable);
  (void)hn;
  if (hec) co_return read_failure(hec);
  reply out;
  const auto& head = parser.get();
  out.status = head.result_int();
  for (const auto& f : head) {
    std::string name(f.name_string());
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    out.headers.emplace_back(std::move(name), std::string(f.value()));
  }
  const bool streaming = sink != nullptr && out.status >= 200 && out.status <= 299 &&
                         out.header("content-type").substr(0, 17) == "text/event-stream";
  std::array<char, 16 * 1024> piece{};
  while (!parser.is_done()) {
    parser.get().body().data = piece.data();
    parser.get().body().size = piece.size();
    if (sink) lowest.expires_after(idle);
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, tuple_awaitable);
    (void)n;
    if (ec == bhttp::error::need_buffer) ec = {};
    const std::size_t got = piece.size() - parser.get().body().size;
    if (got > 0) {
      if (!streaming) {
        out.body.append(piece.data(), got);
      } else if (!(*sink)(std::string_view(piece.data(), got))) {
        break;  // the reader has what it needs (or gave up): the connection is closed unread
      }
    }
    if (ec) co_return read_failure(ec);
  }
  lowest.expires_never();
  co_return outcome{std::move(out), failure::none, {}, false, streaming};
}

}  // namespace

client::client(asio::any_io_executor ex, client_options opts)
    : ex_(std::move(ex)), opts_(std::move(opts)), tls_(asio::ssl::context::tls_client) {
  tls_.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  tls_.set_verify_mode(asio::ssl::verify_peer);
  boost::system::error_code ec;
  tls_.set_default_verify_paths(ec);  // honours SSL_CERT_FILE / SSL_CERT_DIR
  if (ec) core::logger("http")->warn("system CA store unavailable: {}", ec.message());
  if (!opts_.extra_ca_file.empty()) {
    tls_.load_verify_file(opts_.extra_ca_file, ec);
    if (ec) throw std::runtime_error("cannot load CA file '" + opts_.extra_ca_file + "': " + ec.message());
  }
}

asio::awaitable<outcome> client::send(const call& c) { co_return co_await run(c, nullptr); }

asio::awaitable<outcome> client::stream(const call& c, body_sink on_body) {
  co_return co_await run(c, &on_body);
}

asio::awaitable<outcome> client::run(const call& c, const body_sink* sink) {
  auto parsed = parse_url(c.url);
  if (!parsed) co_return failed(failure::unusable, parsed.error().message, false);
  const url u = *parsed;
  const std::size_t body_limit = opts_.max_response_bytes;
  const auto connect_timeout = opts_.connect_timeout;
  auto tls_ctx = &tls_;
  auto ex = ex_;
  const auto idle = opts_.idle_timeout;

  auto connect_and_exchange = [&]() -> asio::awaitable<outcome> {
    tcp::resolver resolver(ex);
    auto [rec, endpoints] = co_await resolver.async_resolve(u.host, std::to_string(u.port), tuple_awaitable);
    if (rec) co_return failed(failure::unreachable, "cannot resolve " + u.host + ": " + rec.message(), true);
    if (!u.tls) {
      beast::tcp_stream stream(ex);
      stream.expires_after(connect_timeout);
      auto [cec, ep] = co_await stream.async_connect(endpoints, tuple_awaitable);
      (void)ep;
      if (cec == beast::error::timeout)
        co_return failed(failure::unreachable, "connect to " + where(u) + " timed out", true);
      if (cec) co_return failed(failure::unreachable, "cannot connect to " + where(u) + ": " + cec.message(), true);
      stream.expires_never();  // the total deadline below bounds the rest
      co_return co_await exchange(stream, u, c, body_limit, sink, idle);
    }
    asio::ssl::stream<beast::tcp_stream> stream(ex, *tls_ctx);
    // SNI carries host names only (RFC 6066); verification checks the name or the IP SAN.
    if (!is_ip_literal(u.host) && !SSL_set_tlsext_host_name(stream.native_handle(), u.host.c_str()))
      co_return failed(failure::unreachable, "cannot set TLS SNI for " + u.host, false);
    stream.set_verify_callback(asio::ssl::host_name_verification(u.host));
    beast::get_lowest_layer(stream).expires_after(connect_timeout);
    auto [cec, ep] = co_await beast::get_lowest_layer(stream).async_connect(endpoints, tuple_awaitable);
    (void)ep;
    if (cec == beast::error::timeout)
      co_return failed(failure::unreachable, "connect to " + where(u) + " timed out", true);
    if (cec) co_return failed(failure::unreachable, "cannot connect to " + where(u) + ": " + cec.message(), true);
    auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, tuple_awaitable);
    if (hec == beast::error::timeout)
      co_return failed(failure::unreachable, "TLS handshake with " + where(u) + " timed out", true);
    if (hec) {
      // A certificate the client does not trust will not become trusted by retrying.
      const bool tls_error = hec.category() == asio::error::get_ssl_category();
      co_return failed(failure::unreachable, "TLS handshake with " + where(u) + " failed: " + hec.message(),
                       !tls_error);
    }
    beast::get_lowest_layer(stream).expires_never();
    co_return co_await exchange(stream, u, c, body_limit, sink, idle);
  };

  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer deadline(ex_, opts_.total_timeout);
  auto result = co_await (connect_and_exchange() || deadline.async_wait(tuple_awaitable));
  if (result.index() == 1)
    co_return failed(failure::unreachable,
                     "no complete reply from " + where(u) + " within " + std::to_string(opts_.total_timeout.count()) +
                         " ms",
                     true);
  co_return std::get<0>(std::move(result));
}

}  // namespace berth::http
