#pragma once
// Test helper: blocking clients for a Berth server on loopback, built on Beast's own HTTP and
// websocket clients (an implementation independent of the server's framing). Every read gives
// up after a limit (5 s unless told), so a server that never answers fails the test instead of
// hanging it. Reads are asynchronous, run on the client's io_context for at most that long:
// Asio's synchronous reads wait again on EAGAIN, so a socket receive timeout would not bound them.
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

namespace berth::test {

struct http_reply {
  unsigned status = 0;
  std::string body;
};

class loopback_client {
 public:
  using tcp = boost::asio::ip::tcp;
  using websocket = boost::beast::websocket::stream<tcp::socket>;
  using verb = boost::beast::http::verb;

  explicit loopback_client(std::uint16_t port) : port_(port) {}

  // A connection from `source` (any 127.0.0.0/8 address stands for another client).
  tcp::socket connect_from(const char* source = "127.0.0.1") {
    tcp::socket s(ioc_);
    s.open(tcp::v4());
    s.bind({boost::asio::ip::make_address(source), 0});
    s.connect({boost::asio::ip::make_address("127.0.0.1"), port_});
    return s;
  }

  // One request on a connection of its own; status 0 and "error: ..." when no answer came.
  http_reply request(verb method, const std::string& target, std::string body = {}, const char* source = "127.0.0.1") {
    namespace bhttp = boost::beast::http;
    auto s = connect_from(source);
    bhttp::request<bhttp::string_body> req{method, target, 11};
    req.set(bhttp::field::host, "localhost");
    if (method == verb::post) req.set(bhttp::field::content_type, "text/plain;charset=UTF-8");
    req.body() = std::move(body);
    req.prepare_payload();
    bhttp::write(s, req);
    boost::beast::flat_buffer buf;
    bhttp::response<bhttp::string_body> res;
    const auto ec = bounded(s, [&](auto done) { bhttp::async_read(s, buf, res, std::move(done)); }, default_limit);
    if (ec) return {0, "error: " + ec.message()};
    return {res.result_int(), res.body()};
  }

  // An Engine.IO polling handshake; returns the sid ("" when refused).
  std::string open_polling() {
    auto r = request(verb::get, "/socket.io/?EIO=4&transport=polling");
    if (r.status != 200 || !r.body.starts_with("0")) return {};
    return nlohmann::json::parse(r.body.substr(1)).at("sid").get<std::string>();
  }
  static std::string polling(const std::string& sid) { return "/socket.io/?EIO=4&transport=polling&sid=" + sid; }

  // An Engine.IO websocket (a new session, or the upgrade probe of `sid`); throws when the
  // server answers anything but 101.
  std::unique_ptr<websocket> open_websocket(const std::string& sid = {}, const char* source = "127.0.0.1") {
    auto ws = std::make_unique<websocket>(connect_from(source));
    ws->handshake("localhost", "/socket.io/?EIO=4&transport=websocket" + (sid.empty() ? "" : "&sid=" + sid));
    return ws;
  }

  // The next message (text or binary), "closed" after the server's close frame (its code is in
  // ws.reason()), or "error: <why>" (a timeout included: the stream is unusable after it).
  static std::string read(websocket& ws, std::chrono::milliseconds limit = default_limit) {
    boost::beast::flat_buffer buf;
    const auto ec = bounded(ws.next_layer(), [&](auto done) { ws.async_read(buf, std::move(done)); }, limit);
    if (ec == boost::beast::websocket::error::closed) return "closed";
    if (ec) return "error: " + ec.message();
    return boost::beast::buffers_to_string(buf.data());
  }
  static void send(websocket& ws, const std::string& text) {
    ws.text(true);
    ws.write(boost::asio::buffer(text));
  }
  static void send_binary(websocket& ws, const std::string& bytes) {
    ws.binary(true);
    ws.write(boost::asio::buffer(bytes));
  }

 private:
  static constexpr std::chrono::milliseconds default_limit{5000};

  // Starts one asynchronous read with `start(handler)` on the socket's io_context (every socket
  // here is on ioc_) and runs it for at most `limit`; then the read is cancelled (timed_out).
  template <class Start>
  static boost::system::error_code bounded(tcp::socket& s, Start start, std::chrono::milliseconds limit) {
    auto& ioc = static_cast<boost::asio::io_context&>(
        boost::asio::query(s.get_executor(), boost::asio::execution::context));
    std::optional<boost::system::error_code> result;
    start([&](boost::system::error_code ec, std::size_t) { result = ec; });
    ioc.restart();
    ioc.run_for(limit);
    if (result) return *result;
    s.cancel();
    ioc.restart();
    ioc.run();
    return boost::asio::error::timed_out;
  }

  boost::asio::io_context ioc_;
  std::uint16_t port_;
};

}  // namespace berth::test
