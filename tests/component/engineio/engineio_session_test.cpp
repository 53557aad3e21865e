// Component tests of the Engine.IO shell: a real engineio::server behind a real http::server on
// loopback, driven by independent clients (Beast's synchronous HTTP and websocket clients). What
// the node e2e suites reach only through socket.io-client is checked here packet by packet:
// upgrade, an abandoned probe, close from either side, ping timeout, oversized frames, the sid
// bound to the address that opened the session.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>

#include "berth/engineio/server.hpp"
#include "tests/support/loopback_client.hpp"

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using namespace berth;
using namespace std::chrono_literals;

namespace {

// What the application side saw, shared with the test thread.
struct observed {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> messages;
  std::vector<engineio::close_reason> closes;

  template <class Pred>
  bool wait_until(Pred pred) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return pred(*this); });
  }
};

// Echoes every message; "close-me" makes the server close the session.
class recording_handler : public engineio::session_handler {
 public:
  recording_handler(std::shared_ptr<engineio::session> s, observed& seen) : session_(*s), seen_(seen) {}
  void on_message(engineio::packet&& p) override {
    {
      std::lock_guard lock(seen_.mutex);
      seen_.messages.push_back(p.data);
    }
    seen_.changed.notify_all();
    if (p.data == "close-me") return session_.close(engineio::close_reason::server_close);
    session_.send_on_strand(std::move(p));
  }
  void on_close(engineio::close_reason reason) override {
    {
      std::lock_guard lock(seen_.mutex);
      seen_.closes.push_back(reason);
    }
    seen_.changed.notify_all();
  }

 private:
  engineio::session& session_;
  observed& seen_;
};

class engineio_session_test : public ::testing::Test {
 protected:
  void start(engineio::session_options session = {}) {
    http_ = std::make_unique<http::server>(ioc_, http::server_options{.host = "127.0.0.1", .port = 0}, metrics_);
    engineio::server_options opts;
    opts.session = session;
    eio_ = std::make_unique<engineio::server>(ioc_, opts, metrics_, [this](std::shared_ptr<engineio::session> s) {
      return std::make_unique<recording_handler>(std::move(s), seen_);
    });
    eio_->attach(*http_);
    port_ = http_->listen();
    http_->start();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    if (eio_) eio_->close_all();
    if (http_) http_->stop();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  test::http_reply request(bhttp::verb verb, const std::string& target, std::string body = {},
                          const char* source = "127.0.0.1") {
    return client().request(verb, target, std::move(body), source);
  }
  std::string open_polling() {
    auto sid = client().open_polling();
    EXPECT_FALSE(sid.empty());
    return sid;
  }
  static std::string polling(const std::string& sid) { return test::loopback_client::polling(sid); }
  auto open_websocket(const std::string& sid = {}, const char* source = "127.0.0.1") {
    return client().open_websocket(sid, source);
  }
  static std::string read(test::loopback_client::websocket& ws) { return test::loopback_client::read(ws); }
  static void send(test::loopback_client::websocket& ws, const std::string& text) { test::loopback_client::send(ws, text); }
  test::loopback_client& client() {
    if (!client_) client_ = std::make_unique<test::loopback_client>(port_);
    return *client_;
  }
  bool saw_close(engineio::close_reason r) {
    return seen_.wait_until([r](observed& o) { return std::find(o.closes.begin(), o.closes.end(), r) != o.closes.end(); });
  }

  asio::io_context ioc_;
  std::unique_ptr<test::loopback_client> client_;
  core::metrics metrics_;
  observed seen_;
  std::unique_ptr<http::server> http_;
  std::unique_ptr<engineio::server> eio_;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace

TEST_F(engineio_session_test, websocket_session_echoes_and_ends_on_the_clients_close_packet) {
  start();
  auto ws = open_websocket();
  const auto open = read(*ws);
  ASSERT_EQ(open.substr(0, 1), "0") << open;
  EXPECT_EQ(nlohmann::json::parse(open.substr(1)).at("upgrades"), nlohmann::json::array());
  send(*ws, "4hello");
  EXPECT_EQ(read(*ws), "4hello");
  send(*ws, "1");
  EXPECT_EQ(read(*ws), "closed");
  EXPECT_EQ(ws->reason().code, websocket::close_code::normal);
  EXPECT_TRUE(saw_close(engineio::close_reason::transport_close));
  EXPECT_EQ(eio_->session_count(), 0u);
}

TEST_F(engineio_session_test, polling_session_carries_messages_both_ways) {
  start();
  const auto sid = open_polling();
  EXPECT_EQ(request(bhttp::verb::post, polling(sid), "4one\x1e" "4two").body, "ok");
  EXPECT_EQ(request(bhttp::verb::get, polling(sid)).body, "4one\x1e" "4two");
  std::lock_guard lock(seen_.mutex);
  EXPECT_EQ(seen_.messages, (std::vector<std::string>{"one", "two"}));
}

TEST_F(engineio_session_test, upgrade_moves_the_session_onto_the_websocket) {
  start();
  const auto sid = open_polling();
  // A GET parked while the probe runs is released with a noop (the client then stops polling).
  std::thread parked([&] { EXPECT_EQ(request(bhttp::verb::get, polling(sid)).body, "6"); });
  auto ws = open_websocket(sid);
  send(*ws, "2probe");
  EXPECT_EQ(read(*ws), "3probe");
  parked.join();
  send(*ws, "5");
  send(*ws, "4after");
  EXPECT_EQ(read(*ws), "4after");
  // The session is no longer polling: a GET is a protocol error.
  EXPECT_EQ(request(bhttp::verb::get, polling(sid)).status, 400u);
  EXPECT_EQ(metrics_.get_counter("berth_engineio_upgrades_total", "").value(), 1u);
}

TEST_F(engineio_session_test, abandoned_probe_leaves_the_session_on_polling) {
  start();
  const auto sid = open_polling();
  {
    auto ws = open_websocket(sid);
    send(*ws, "2probe");
    EXPECT_EQ(read(*ws), "3probe");
    ws->close(websocket::close_code::normal);  // the client gives up before "5"
  }
  EXPECT_EQ(request(bhttp::verb::post, polling(sid), "4still-here").body, "ok");
  // Up to one noop left from the probe, then the echo.
  std::string body;
  for (int i = 0; i < 3 && body != "4still-here"; ++i) body = request(bhttp::verb::get, polling(sid)).body;
  EXPECT_EQ(body, "4still-here");
  EXPECT_EQ(eio_->session_count(), 1u);
  // And a second probe may upgrade it after all.
  auto ws = open_websocket(sid);
  send(*ws, "2probe");
  EXPECT_EQ(read(*ws), "3probe");
}

TEST_F(engineio_session_test, server_close_sends_the_close_packet_then_a_normal_close_frame) {
  start();
  auto ws = open_websocket();
  ASSERT_EQ(read(*ws).substr(0, 1), "0");
  send(*ws, "4close-me");
  EXPECT_EQ(read(*ws), "1");
  EXPECT_EQ(read(*ws), "closed");
  EXPECT_EQ(ws->reason().code, websocket::close_code::normal);
  EXPECT_TRUE(saw_close(engineio::close_reason::server_close));
}

TEST_F(engineio_session_test, oversized_message_closes_with_1009_and_other_sessions_carry_on) {
  start({.max_payload = 1000});
  auto bystander = open_websocket();
  ASSERT_EQ(read(*bystander).substr(0, 1), "0");
  auto ws = open_websocket();
  ASSERT_EQ(read(*ws).substr(0, 1), "0");
  send(*ws, "4" + std::string(5000, 'x'));
  EXPECT_EQ(read(*ws), "closed");
  EXPECT_EQ(ws->reason().code, websocket::close_code::too_big);
  EXPECT_TRUE(saw_close(engineio::close_reason::transport_error));
  send(*bystander, "4fine");
  EXPECT_EQ(read(*bystander), "4fine");
}

TEST_F(engineio_session_test, silent_client_is_closed_by_ping_timeout) {
  start({.ping_interval = 100ms, .ping_timeout = 100ms});
  auto ws = open_websocket();
  ASSERT_EQ(read(*ws).substr(0, 1), "0");
  EXPECT_EQ(read(*ws), "2");  // the ping, never answered
  EXPECT_EQ(read(*ws), "closed");
  EXPECT_TRUE(saw_close(engineio::close_reason::ping_timeout));
}

TEST_F(engineio_session_test, answered_pings_keep_the_session_open) {
  // Pings come fast; the pong deadline is loose, so a loaded host's scheduling is no reason to close.
  start({.ping_interval = 100ms, .ping_timeout = 2000ms});
  auto ws = open_websocket();
  ASSERT_EQ(read(*ws).substr(0, 1), "0");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(read(*ws), "2");
    send(*ws, "3");
  }
  std::lock_guard lock(seen_.mutex);
  EXPECT_TRUE(seen_.closes.empty());
}

TEST_F(engineio_session_test, a_sid_used_from_another_address_is_refused_and_the_session_carries_on) {
  start();
  const auto sid = open_polling();
  EXPECT_EQ(request(bhttp::verb::get, polling(sid), {}, "127.0.0.2").status, 403u);
  EXPECT_EQ(request(bhttp::verb::post, polling(sid), "4stolen", "127.0.0.2").status, 403u);
  EXPECT_THROW(open_websocket(sid, "127.0.0.2"), boost::system::system_error);  // 403 instead of 101
  EXPECT_EQ(request(bhttp::verb::post, polling(sid), "4mine").body, "ok");
  EXPECT_EQ(request(bhttp::verb::get, polling(sid)).body, "4mine");
  std::lock_guard lock(seen_.mutex);
  EXPECT_EQ(seen_.messages, std::vector<std::string>{"mine"});
}
