// Component tests of the Socket.IO layer: a real socketio::server on a real engineio::server and
// http::server on loopback, driven packet by packet over a websocket by Beast's client. Covers
// what a socket.io-client never sends on purpose: unknown namespaces, refused middleware, acks
// with binary attachments, JSON nested past the limit, an event flood, the client leaving a
// namespace, and the server asking the client for an ack.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <boost/asio.hpp>

#include "berth/engineio/server.hpp"
#include "berth/socketio/server.hpp"
#include "tests/support/loopback_client.hpp"

namespace asio = boost::asio;
namespace websocket = boost::beast::websocket;
using namespace berth;
using namespace std::chrono_literals;
using json = nlohmann::json;
using client = test::loopback_client;

namespace {

// What the server side saw, shared with the test thread.
struct observed {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> disconnects;  // reasons
  std::optional<json> server_ack;        // the client's answer to the server's emit_with_ack
  int unanswered = 0;                    // emit_with_ack calls that ended without an answer

  template <class Pred>
  bool wait_until(Pred pred) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 10s, [&] { return pred(*this); });
  }
  void note(auto&& change) {
    {
      std::lock_guard lock(mutex);
      change(*this);
    }
    changed.notify_all();
  }
};

class socketio_connection_test : public ::testing::Test {
 protected:
  void start(socketio::server_options sio_opts = {}) {
    sio_ = std::make_unique<socketio::server>(sio_opts, metrics_);
    auto& root = sio_->of("/");
    root.on("echo", [](const std::shared_ptr<socketio::socket>&, json args, socketio::socket::ack_fn ack) {
      if (ack) ack(std::move(args));
    });
    // "relay": a text handler for arguments without binary, the tree handler for the others.
    root.on_text("relay", [](const std::shared_ptr<socketio::socket>& s, std::string args, socketio::socket::text_ack_fn ack) {
      if (ack) return ack(std::move(args));
      s->emit_text("relayed", std::move(args));
    });
    root.on("relay", [](const std::shared_ptr<socketio::socket>&, json args, socketio::socket::ack_fn ack) {
      if (ack) ack(json::array({"tree", args.size()}));
    });
    root.on("ask-me", [this](const std::shared_ptr<socketio::socket>& s, json, socketio::socket::ack_fn) {
      s->emit_with_ack("question", json::array({"ready?"}), 5s,
                       [this](std::optional<json> reply) { seen_.note([&](observed& o) { o.server_ack = reply; }); });
    });
    // Asks with a short timeout: a client that does not answer in time is reported once, as
    // unanswered, and a late answer is dropped.
    root.on("ask-me-briefly", [this](const std::shared_ptr<socketio::socket>& s, json, socketio::socket::ack_fn) {
      s->emit_with_ack("question", json::array({"quick?"}), 100ms, [this](std::optional<json> reply) {
        seen_.note([&](observed& o) {
          if (reply) o.server_ack = reply;
          else ++o.unanswered;
        });
      });
    });
    root.on_connection([this](std::shared_ptr<socketio::socket> s) {
      s->on_disconnect([this](const std::string& reason) { seen_.note([&](observed& o) { o.disconnects.push_back(reason); }); });
    });
    auto& guarded = sio_->of("/private");
    guarded.use([](std::shared_ptr<socketio::socket> s) -> asio::awaitable<std::optional<socketio::connect_error>> {
      if (s->auth().is_object() && s->auth().value("token", "") == "ok") co_return std::nullopt;
      co_return socketio::connect_error{"not allowed", json{{"code", "UNAUTHORIZED"}}};
    });
    http_ = std::make_unique<http::server>(ioc_, http::server_options{.host = "127.0.0.1", .port = 0}, metrics_);
    eio_ = std::make_unique<engineio::server>(ioc_, engineio::server_options{}, metrics_, sio_->handler_factory());
    eio_->attach(*http_);
    const auto port = http_->listen();
    http_->start();
    thread_ = std::thread([this] { ioc_.run(); });
    client_ = std::make_unique<client>(port);
  }
  void TearDown() override {
    if (eio_) eio_->close_all();
    if (http_) http_->stop();
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // A websocket with the Engine.IO open packet read and the main namespace joined.
  std::unique_ptr<client::websocket> join_main() {
    auto ws = client_->open_websocket();
    EXPECT_EQ(client::read(*ws).substr(0, 1), "0");
    client::send(*ws, "40");
    const auto connected = client::read(*ws);
    EXPECT_EQ(connected.substr(0, 2), "40") << connected;
    EXPECT_TRUE(json::parse(connected.substr(2)).contains("sid")) << connected;
    return ws;
  }

  asio::io_context ioc_;
  core::metrics metrics_;
  observed seen_;
  std::unique_ptr<socketio::server> sio_;
  std::unique_ptr<http::server> http_;
  std::unique_ptr<engineio::server> eio_;
  std::unique_ptr<client> client_;
  std::thread thread_;
};

}  // namespace

TEST_F(socketio_connection_test, an_ack_returns_the_events_arguments) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(4212["echo","hi",{"n":1}])");
  EXPECT_EQ(client::read(*ws), R"(4312["hi",{"n":1}])");
}

// A text handler's arguments are never parsed: what the client wrote (its spacing, its escapes)
// comes back byte for byte, in the ack and in an emitted event alike.
TEST_F(socketio_connection_test, text_handlers_pass_arguments_on_as_the_client_wrote_them) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(425["relay", "A" , {"k" :[1, 2.50]}])");
  EXPECT_EQ(client::read(*ws), R"(435["A" , {"k" :[1, 2.50]}])");
  client::send(*ws, R"(42["relay",null])");
  EXPECT_EQ(client::read(*ws), R"(42["relayed",null])");
  client::send(*ws, R"(42["relay"])");
  EXPECT_EQ(client::read(*ws), R"(42["relayed"])");
  // With a binary attachment the same event goes to the tree handler.
  client::send(*ws, R"(451-6["relay",{"_placeholder":true,"num":0},7])");
  client::send_binary(*ws, "bytes");
  EXPECT_EQ(client::read(*ws), R"(436["tree",2])");
  // Invalid JSON is refused before any handler, as it was when every event was parsed.
  client::send(*ws, R"(42["relay",01])");
  EXPECT_EQ(client::read(*ws), "closed");
}

TEST_F(socketio_connection_test, a_text_handlers_events_are_rate_limited_too) {
  start({.events = {.per_second = 1, .burst = 1}});
  auto ws = join_main();
  client::send(*ws, R"(421["relay",1])");
  client::send(*ws, R"(422["relay",2])");
  EXPECT_EQ(client::read(*ws), R"(431[1])");
  const auto refused = client::read(*ws);
  ASSERT_EQ(refused.substr(0, 3), "432") << refused;
  EXPECT_EQ(json::parse(refused.substr(3))[0]["code"], "RATE_LIMITED");
}

TEST_F(socketio_connection_test, an_unknown_namespace_is_refused_and_the_connection_stays) {
  start();
  auto ws = join_main();
  client::send(*ws, "40/nope,");
  EXPECT_EQ(client::read(*ws), R"(44/nope,{"message":"Invalid namespace"})");
  client::send(*ws, R"(421["echo",1])");
  EXPECT_EQ(client::read(*ws), R"(431[1])");
}

TEST_F(socketio_connection_test, middleware_refuses_with_connect_error_data_and_admits_a_good_token) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(40/private,{"token":"bad"})");
  EXPECT_EQ(client::read(*ws), R"(44/private,{"data":{"code":"UNAUTHORIZED"},"message":"not allowed"})");
  client::send(*ws, R"(40/private,{"token":"ok"})");
  const auto joined = client::read(*ws);
  EXPECT_EQ(joined.substr(0, 11), "40/private,") << joined;
}

TEST_F(socketio_connection_test, binary_attachments_travel_both_ways) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(451-7["echo",{"_placeholder":true,"num":0}])");
  client::send_binary(*ws, std::string("\x00\x01\xff", 3));
  EXPECT_EQ(client::read(*ws), R"(461-7[{"_placeholder":true,"num":0}])");
  EXPECT_EQ(client::read(*ws), std::string("\x00\x01\xff", 3));
}

TEST_F(socketio_connection_test, json_nested_past_the_limit_closes_only_that_connection) {
  start();
  auto bystander = join_main();
  auto ws = join_main();
  client::send(*ws, R"(42["echo",)" + std::string(100, '[') + std::string(100, ']') + "]");
  EXPECT_EQ(client::read(*ws), "closed");
  EXPECT_EQ(ws->reason().code, websocket::close_code::protocol_error);
  client::send(*bystander, R"(421["echo","still here"])");
  EXPECT_EQ(client::read(*bystander), R"(431["still here"])");
}

TEST_F(socketio_connection_test, events_over_the_rate_get_rate_limited_acks_with_a_retry_hint) {
  start({.events = {.per_second = 1, .burst = 2}});
  auto ws = join_main();
  for (int id = 1; id <= 3; ++id) client::send(*ws, "42" + std::to_string(id) + R"(["echo",)" + std::to_string(id) + "]");
  EXPECT_EQ(client::read(*ws), R"(431[1])");
  EXPECT_EQ(client::read(*ws), R"(432[2])");
  const auto refused = client::read(*ws);
  ASSERT_EQ(refused.substr(0, 3), "433") << refused;
  const auto body = json::parse(refused.substr(3))[0];
  EXPECT_EQ(body["ok"], false);
  EXPECT_EQ(body["code"], "RATE_LIMITED");
  EXPECT_GT(body["retryAfterMs"].get<int>(), 0);
  EXPECT_LE(body["retryAfterMs"].get<int>(), 1000);
}

TEST_F(socketio_connection_test, the_server_asks_and_the_client_acks) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(42["ask-me"])");
  const auto question = client::read(*ws);  // 42<id>["question","ready?"]
  ASSERT_EQ(question.substr(0, 2), "42") << question;
  const auto bracket = question.find('[');
  const auto id = question.substr(2, bracket - 2);
  ASSERT_FALSE(id.empty()) << question;
  EXPECT_EQ(question.substr(bracket), R"(["question","ready?"])");
  client::send(*ws, "43" + id + R"(["yes"])");
  EXPECT_TRUE(seen_.wait_until([](observed& o) { return o.server_ack.has_value(); }));
  std::lock_guard lock(seen_.mutex);
  EXPECT_EQ(*seen_.server_ack, json::array({"yes"}));
}

TEST_F(socketio_connection_test, an_ack_the_client_does_not_send_in_time_ends_unanswered_and_a_late_one_is_dropped) {
  start();
  auto ws = join_main();
  client::send(*ws, R"(42["ask-me-briefly"])");
  const auto question = client::read(*ws);
  ASSERT_EQ(question.substr(0, 2), "42") << question;
  const auto id = question.substr(2, question.find('[') - 2);
  EXPECT_TRUE(seen_.wait_until([](observed& o) { return o.unanswered == 1; }));
  client::send(*ws, "43" + id + R"(["too late"])");
  // The connection carries on, and the late answer reached nobody.
  client::send(*ws, R"(427["echo","after"])");
  EXPECT_EQ(client::read(*ws), R"(437["after"])");
  std::lock_guard lock(seen_.mutex);
  EXPECT_EQ(seen_.unanswered, 1);
  EXPECT_FALSE(seen_.server_ack.has_value());
}

TEST_F(socketio_connection_test, leaving_the_namespace_is_a_client_namespace_disconnect) {
  start();
  auto ws = join_main();
  client::send(*ws, "41");
  EXPECT_TRUE(seen_.wait_until([](observed& o) { return !o.disconnects.empty(); }));
  {
    std::lock_guard lock(seen_.mutex);
    EXPECT_EQ(seen_.disconnects, std::vector<std::string>{"client namespace disconnect"});
  }
  // The Engine.IO connection outlives it: the namespace may be joined again.
  client::send(*ws, "40");
  EXPECT_EQ(client::read(*ws).substr(0, 2), "40");
}
