// The HTTP front door over real loopback sockets: routing errors, limits, keep-alive and
// MAX_CONNECTIONS back-pressure.
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/http.hpp>

#include "berth/http/server.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace berth;

namespace {

class http_fixture : public ::testing::Test {
 protected:
  void start(http::server_options opts) {
    opts.host = "127.0.0.1";
    opts.port = 0;
    server_ = std::make_unique<http::server>(ioc_, opts, metrics_);
    server_->route("GET", "/hello", [](http::request&) -> asio::awaitable<http::response> {
      co_return http::text_response(200, "hi", "text/plain");
    });
    port_ = server_->listen();
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    if (server_) server_->stop();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  tcp::socket connect() {
    tcp::socket s(client_ioc_);
    s.connect({asio::ip::make_address("127.0.0.1"), port_});
    return s;
  }
  // Sends raw bytes and reads one response (or returns the error), with a receive deadline.
  std::string exchange(tcp::socket& s, const std::string& raw) {
    asio::write(s, asio::buffer(raw));
    return read_response(s);
  }
  std::string read_response(tcp::socket& s) {
    timeval tv{5, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    boost::beast::flat_buffer buf;
    boost::beast::http::response<boost::beast::http::string_body> res;
    boost::system::error_code ec;
    boost::beast::http::read(s, buf, res, ec);
    if (ec) return "error: " + ec.message();
    return std::to_string(res.result_int()) + " " + res.body();
  }

  asio::io_context ioc_;
  asio::io_context client_ioc_;
  core::metrics metrics_;
  std::unique_ptr<http::server> server_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_F(http_fixture, routes_404_405_and_keep_alive) {
  start({});
  auto s = connect();
  EXPECT_EQ(exchange(s, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "200 hi");
  // Same connection again: keep-alive.
  EXPECT_EQ(exchange(s, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
            R"(404 {"error":"not_found","message":"Not found"})");
  EXPECT_EQ(exchange(s, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"),
            R"(405 {"error":"method_not_allowed","message":"Method not allowed"})");
}

TEST_F(http_fixture, oversized_header_and_body_are_refused) {
  start({.header_limit = 1024, .body_limit = 100});
  auto s = connect();
  EXPECT_EQ(exchange(s, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(2000, 'a') + "\r\n\r\n"), "431 ");
  auto s2 = connect();
  EXPECT_EQ(exchange(s2, "POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n" + std::string(500, 'b')),
            "413 ");
  auto s3 = connect();
  EXPECT_EQ(exchange(s3, "NOT HTTP AT ALL\r\n\r\n"), "400 ");
  // The server keeps serving others.
  auto s4 = connect();
  EXPECT_EQ(exchange(s4, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "200 hi");
  EXPECT_NE(metrics_.render().find("berth_http_bad_requests_total 3"), std::string::npos);
}

TEST_F(http_fixture, max_connections_pauses_accepting_until_one_closes) {
  start({.max_connections = 2});
  auto a = connect();
  auto b = connect();
  EXPECT_EQ(exchange(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "200 hi");
  EXPECT_EQ(exchange(b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), "200 hi");
  // The third connects at the TCP level (kernel backlog) but is not served while two are open.
  auto c = connect();
  asio::write(c, asio::buffer(std::string("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")));
  auto pending = std::async(std::launch::async, [&] { return read_response(c); });
  EXPECT_EQ(pending.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout);
  EXPECT_EQ(server_->open_connections(), 2u);
  a.close();  // frees a slot: the third is accepted and answered
  EXPECT_EQ(pending.get(), "200 hi");
  const auto text = metrics_.render();
  const auto at = text.find("\nberth_http_accept_paused_total ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stoi(text.substr(at + 32)), 1);  // paused at least once (again after the third was accepted)
}
