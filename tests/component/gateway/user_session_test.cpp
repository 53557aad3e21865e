// Component tests of the user session (src/gateway/user_session.*) through the gateway, with every
// part real: the HTTP, Engine.IO and Socket.IO servers on loopback, a real redis-server (session
// records, history, the per-user limiter), the real dockerd with the sandbox image (the warm pool,
// the sandbox's MCP server in each container) and the embedded local model. The test speaks
// Socket.IO packet by packet over a websocket (Beast's client), so it sees exactly what a
// socket.io-client would: provision and system:ready, resume with the same container and history,
// the per-user limit, a turn with its approval, a cancel, a disconnect in the middle of a turn,
// and hibernation.
// Every container the pool makes carries this run's label and is removed in TearDown, even when a
// test fails.
#include <gtest/gtest.h>

#include <deque>
#include <future>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/agent/turn_fsm.hpp"
#include "berth/engineio/server.hpp"
#include "berth/gateway/gateway.hpp"
#include "berth/http/server.hpp"
#include "berth/llm/provider.hpp"
#include "berth/redis/client.hpp"
#include "berth/redis/url.hpp"
#include "berth/socketio/server.hpp"
#include "docker_fixture.hpp"
#include "tests/support/loopback_client.hpp"
#include "tests/support/redis_server.hpp"

namespace berth::testing {
namespace {

namespace asio = boost::asio;
using json = nlohmann::json;
using client = test::loopback_client;
using namespace std::chrono_literals;

// How long the test waits for one thing the server is to send (a container create on a slow
// machine included); a server that never sends it fails the test instead of hanging it.
constexpr auto wait_limit = 30s;

// What the server sent on one socket, decoded.
struct sio_packet {
  enum class kind { event, ack, connected, connect_error, closed } what = kind::closed;
  std::string event;  // kind::event
  json args = json::array();
  long ack_id = -1;  // kind::ack
};

// One user's socket, spoken packet by packet: an Engine.IO websocket, the "/" namespace on it.
// Answers the server's pings; keeps every event it passed over while waiting for another one, so
// a test can wait for events in any order.
class sio_user {
 public:
  sio_user(std::uint16_t port, const std::string& query, const json& auth) : client_(port) {
    ws_ = std::make_unique<client::websocket>(client_.connect_from());
    ws_->handshake("localhost", "/socket.io/?EIO=4&transport=websocket" + query);
    const auto open = client::read(*ws_);
    if (!open.starts_with("0")) throw std::runtime_error("no Engine.IO open packet: " + open);
    client::send(*ws_, auth.is_null() ? "40" : "40" + auth.dump());
    connect_reply_ = next();
  }

  bool connected() const { return connect_reply_.what == sio_packet::kind::connected; }
  const json& connect_error() const { return connect_reply_.args; }

  // Sends an event; returns its ack id (or -1 when it asks for none).
  long emit(const std::string& event, const json& arg, bool with_ack = true) {
    const long id = with_ack ? next_ack_id_++ : -1;
    json packet = json::array({event});
    if (!arg.is_null()) packet.push_back(arg);
    client::send(*ws_, "42" + (id >= 0 ? std::to_string(id) : "") + packet.dump());
    return id;
  }

  // The first argument of the next `event` (earlier ones that arrived while waiting included).
  json wait_event(const std::string& event) {
    for (auto it = events_.begin(); it != events_.end(); ++it)
      if (it->event == event) {
        auto args = std::move(it->args);
        events_.erase(it);
        return args.empty() ? json() : args[0];
      }
    const auto deadline = std::chrono::steady_clock::now() + wait_limit;
    for (;;) {
      auto p = next(deadline);
      if (p.what == sio_packet::kind::closed) throw std::runtime_error("no " + event + " came" + seen());
      if (p.what == sio_packet::kind::event && p.event == event) return p.args.empty() ? json() : p.args[0];
      keep(std::move(p));
    }
  }

  // The first argument of the ack with `id`.
  json wait_ack(long id) {
    const auto deadline = std::chrono::steady_clock::now() + wait_limit;
    for (;;) {
      if (auto it = acks_.find(id); it != acks_.end()) return it->second.empty() ? json() : it->second[0];
      auto p = next(deadline);
      if (p.what == sio_packet::kind::closed) throw std::runtime_error("no ack " + std::to_string(id) + " came" + seen());
      keep(std::move(p));
    }
  }

  // Gone from the client's side, as a closed browser tab: the TCP connection just ends.
  void drop() { ws_->next_layer().close(); }

  // What came on this socket so far, for failure messages.
  std::string seen() const {
    std::string out = "\n  events seen:";
    for (const auto& l : log_) out += "\n    " + l;
    return out;
  }

 private:
  void keep(sio_packet p) {
    if (p.what == sio_packet::kind::ack) acks_[p.ack_id] = std::move(p.args);
    if (p.what != sio_packet::kind::event) return;
    log_.push_back(p.event + " " + p.args.dump());
    events_.push_back(std::move(p));
  }

  // The next Socket.IO packet before `deadline`; kind::closed when the socket closed or the
  // deadline passed.
  sio_packet next(std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::now() + wait_limit) {
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      const auto m = client::read(*ws_, left);
      if (m == "closed" || m.starts_with("error:")) return {};
      if (m == "2") {
        client::send(*ws_, "3");
        continue;
      }
      if (!m.starts_with("4")) continue;  // Engine.IO noop and the like
      sio_packet p;
      const char type = m.size() > 1 ? m[1] : '?';
      std::size_t at = 2;
      long id = -1;
      while (at < m.size() && std::isdigit(static_cast<unsigned char>(m[at]))) {
        id = (id < 0 ? 0 : id * 10) + (m[at] - '0');
        ++at;
      }
      const json body = at < m.size() ? json::parse(m.substr(at)) : json();
      switch (type) {
        case '0':
          p.what = sio_packet::kind::connected;
          p.args = body;
          return p;
        case '4':
          p.what = sio_packet::kind::connect_error;
          p.args = body;
          return p;
        case '1':
          return {};
        case '2':
          p.what = sio_packet::kind::event;
          p.event = body.at(0).get<std::string>();
          p.args = json::array();
          for (std::size_t i = 1; i < body.size(); ++i) p.args.push_back(body[i]);
          return p;
        case '3':
          p.what = sio_packet::kind::ack;
          p.ack_id = id;
          p.args = body;
          return p;
        default:
          continue;
      }
    }
  }

  client client_;
  std::unique_ptr<client::websocket> ws_;
  sio_packet connect_reply_;
  long next_ack_id_ = 1;
  std::deque<sio_packet> events_;
  std::map<long, json> acks_;
  std::vector<std::string> log_;
};

// The gateway, its services and the servers in front of it, on one io_context run by one thread.
class user_session_test : public docker_fixture {
 protected:
  void SetUp() override {
    docker_fixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    cfg_.replica_id = "ctest-" + token_;
    cfg_.sandbox_image = test_image();
    cfg_.pool_min_size = 2;
    cfg_.pool_max_size = 4;
    cfg_.acquire_timeout = 20000ms;
    cfg_.max_requests_per_user = 5;
    cfg_.tool_timeout = 20000ms;
    cfg_.session_detach_grace = 60000ms;  // a test that hibernates shortens it
    cfg_.llm_provider = "local";
  }

  void TearDown() override {
    stop();
    docker_fixture::TearDown();
  }

  // Builds the stack as the app does (src/app/app.cpp, build_services) and warms the pool.
  void start() {
    auto ex = ioc_.get_executor();
    docker::client_options dopts;
    dopts.call_timeout = 30s;
    docker_ = std::make_unique<docker::client>(ex, dopts, metrics_);
    redis::client_options ropts;
    auto endpoint = redis::parse_redis_url(redis_.url());
    ASSERT_TRUE(endpoint) << endpoint.error().message;
    ropts.endpoint = *endpoint;
    redis_client_ = redis::redis_client::create(ex, ropts, metrics_);
    redis_client_->start();
    session::session_options sopts;
    sopts.replica_id = cfg_.replica_id;
    sessions_ = std::make_unique<session::session_store>(redis_client_, sopts, metrics_);
    history_ = std::make_unique<session::history_store>(redis_client_, session::history_options{}, metrics_);
    session::limiter_options lopts;
    lopts.max_per_user = cfg_.max_requests_per_user;
    limiter_ = std::make_unique<session::user_limiter>(redis_client_, lopts, metrics_);
    budget_ = std::make_unique<session::llm_token_budget>(redis_client_, session::token_budget_options{sopts.keys, 0},
                                                          metrics_);
    pool::pool_options popts;
    popts.name = "ctest";
    popts.sandbox_server_main = true;
    popts.extra_labels = test_labels();
    pool_ = std::make_unique<pool::container_pool>(ex, *docker_, cfg_, metrics_, popts);
    gateway::gateway_deps deps{cfg_, metrics_, *docker_, *pool_, *sessions_, *history_, *limiter_, *budget_,
                               [this, ex](std::optional<std::string> key) {
                                 return llm::make_provider(cfg_, ex, metrics_, std::move(key), {});
                               }};
    gateway_ = std::make_unique<gateway::gateway>(std::move(deps));
    sio_ = std::make_unique<socketio::server>(socketio::server_options{}, metrics_);
    gateway_->attach(sio_->of("/"));
    http_ = std::make_unique<http::server>(ioc_, http::server_options{.host = "127.0.0.1", .port = 0}, metrics_);
    eio_ = std::make_unique<engineio::server>(ioc_, engineio::server_options{}, metrics_, sio_->handler_factory());
    eio_->attach(*http_);
    port_ = http_->listen();
    http_->start();
    auto warmed = asio::co_spawn(ioc_, pool_->start(), asio::use_future);
    thread_ = std::thread([this] { ioc_.run(); });
    ASSERT_EQ(warmed.wait_for(120s), std::future_status::ready) << "the pool did not warm up";
    auto r = warmed.get();
    ASSERT_TRUE(r) << r.error().message;
  }

  // As the app's graceful shutdown: sockets closed, parked sessions hibernated, services stopped.
  void stop() {
    if (!thread_.joinable()) return;
    auto done = asio::co_spawn(ioc_, shut_down(this), asio::use_future);
    EXPECT_EQ(done.wait_for(60s), std::future_status::ready) << "shutdown did not finish";
    ioc_.stop();
    thread_.join();
  }
  static asio::awaitable<void> shut_down(user_session_test* self) {
    self->http_->stop();
    self->gateway_->drain();
    self->eio_->close_all();
    co_await self->gateway_->hibernate_parked(10s);
    co_await self->pool_->stop();
    self->redis_client_->stop();
  }

  // Runs a coroutine on the server's io_context and waits for its result.
  template <class T>
  T on_server(asio::awaitable<T> aw) {
    auto fut = asio::co_spawn(ioc_, std::move(aw), asio::use_future);
    if (fut.wait_for(wait_limit) != std::future_status::ready) throw std::runtime_error("server call timed out");
    return fut.get();
  }

  std::unique_ptr<sio_user> connect(const std::string& query = {}, const json& auth = nullptr) {
    return std::make_unique<sio_user>(port_, query, auth);
  }

  // A new session, up to system:ready; its payload.
  json ready(sio_user& u) {
    EXPECT_TRUE(u.connected()) << u.connect_error().dump();
    return u.wait_event("system:ready");
  }

  std::unique_ptr<sio_user> resume(const json& ready) {
    return connect("&sessionId=" + ready["sessionId"].get<std::string>(),
                   json{{"resumeToken", ready["resumeToken"]}});
  }

  // One message whose single tool call is answered with `approve`; the agent:response.
  struct turn_result {
    json approval_required, output, response;
  };
  turn_result turn(sio_user& u, const std::string& text, bool approve = true) {
    turn_result t;
    const auto ack = u.wait_ack(u.emit("message", text));
    EXPECT_EQ(ack.value("ok", false), true) << ack.dump();
    t.approval_required = u.wait_event("tool:approval_required");
    u.emit("tool:approval", json{{"callId", t.approval_required["callId"]}, {"approved", approve}}, false);
    if (approve) t.output = u.wait_event("tool:output");
    t.response = u.wait_event("agent:response");
    return t;
  }

  std::uint64_t counter(const std::string& name) { return metrics_.get_counter(name, "").value(); }

  // Polls (bounded, 20 ms apart) until pred() holds; for states no event announces to the client.
  template <class Pred>
  static bool eventually(Pred pred, std::chrono::milliseconds limit = wait_limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(20ms);
    }
    return true;
  }

  core::config cfg_;
  test::redis_server redis_;
  asio::io_context ioc_;
  std::unique_ptr<docker::client> docker_;
  std::shared_ptr<redis::redis_client> redis_client_;
  std::unique_ptr<session::session_store> sessions_;
  std::unique_ptr<session::history_store> history_;
  std::unique_ptr<session::user_limiter> limiter_;
  std::unique_ptr<session::llm_token_budget> budget_;
  std::unique_ptr<pool::container_pool> pool_;
  std::unique_ptr<gateway::gateway> gateway_;
  std::unique_ptr<socketio::server> sio_;
  std::unique_ptr<http::server> http_;
  std::unique_ptr<engineio::server> eio_;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

TEST_F(user_session_test, a_new_session_gets_a_running_container_and_its_record_in_redis) {
  start();
  auto u = connect();
  const auto r = ready(*u);
  ASSERT_TRUE(r.is_object()) << u->seen();
  EXPECT_EQ(r["provider"], "local");
  EXPECT_EQ(r["resumed"], false);
  EXPECT_EQ(r["limits"]["maxConcurrentRequests"], 5);
  ASSERT_TRUE(r["resumeToken"].is_string() && !r["resumeToken"].get<std::string>().empty()) << r.dump();
  const auto container = r["containerId"].get<std::string>();
  // The container is this run's, and running.
  auto inspected = run(client_->inspect_container(container));
  ASSERT_TRUE(inspected) << inspected.error().message;
  EXPECT_TRUE(inspected->running);
  // The session record names it.
  const auto sid = r["sessionId"].get<std::string>();
  auto rec = on_server(sessions_->get(sid));
  ASSERT_TRUE(rec && *rec) << "no session record for " << sid;
  EXPECT_EQ((*rec)->container, container);
  EXPECT_EQ((*rec)->user, sid);
}

TEST_F(user_session_test, an_approved_call_runs_in_the_users_container_and_a_rejected_one_does_not) {
  start();
  auto u = connect();
  ready(*u);
  auto written = turn(*u, "write hello berth to notes.txt");
  EXPECT_EQ(written.approval_required["name"], "write_file") << written.approval_required.dump();
  EXPECT_EQ(written.output["isError"], false) << written.output.dump();
  EXPECT_EQ(written.output["callId"], written.approval_required["callId"]);
  auto rejected = turn(*u, "write secret to rejected.txt", false);
  EXPECT_TRUE(rejected.response.is_string()) << u->seen();
  auto listed = turn(*u, "List all files in /workspace");
  EXPECT_EQ(listed.approval_required["name"], "list_files");
  const auto listing = listed.output["content"].get<std::string>();
  EXPECT_NE(listing.find("notes.txt"), std::string::npos) << listing;
  EXPECT_EQ(listing.find("rejected.txt"), std::string::npos) << listing;
  // A second answer to the rejected call is refused.
  const auto again = u->wait_ack(u->emit("tool:approval", json{{"callId", rejected.approval_required["callId"]}, {"approved", true}}));
  EXPECT_EQ(again["code"], "NO_PENDING_CALL") << again.dump();
}

TEST_F(user_session_test, the_request_over_the_limit_is_refused_until_a_slot_is_freed) {
  start();
  auto u = connect();
  ready(*u);
  // Five messages are in flight: the first waits for its approval, four queue behind it.
  std::vector<json> accepted;
  for (int i = 0; i < 5; ++i) accepted.push_back(u->wait_ack(u->emit("message", "write x" + std::to_string(i) + " to f.txt")));
  for (const auto& ack : accepted) ASSERT_EQ(ack["ok"], true) << ack.dump();
  const auto asked = u->wait_event("tool:approval_required");
  const auto too_many_before = counter("berth_gateway_too_many_requests_total");
  const auto refused = u->wait_ack(u->emit("message", "write x5 to f.txt"));
  EXPECT_EQ(refused["ok"], false);
  EXPECT_EQ(refused["code"], "TOO_MANY_REQUESTS") << refused.dump();
  EXPECT_EQ(counter("berth_gateway_too_many_requests_total"), too_many_before + 1);
  EXPECT_EQ(u->wait_event("agent:error")["code"], "TOO_MANY_REQUESTS");
  // The approval would run a step: it needs a slot as well, and there is none.
  const json answer{{"callId", asked["callId"]}, {"approved", false}};
  EXPECT_EQ(u->wait_ack(u->emit("tool:approval", answer))["code"], "TOO_MANY_REQUESTS");
  // Cancelling the last queued message needs no slot and frees one: the approval goes through,
  // the first turn ends, and its slot is free too.
  const auto cancel = u->wait_ack(u->emit("agent:cancel", json{{"turnId", accepted[4]["turnId"]}}));
  EXPECT_EQ(cancel["ok"], true) << cancel.dump();
  EXPECT_EQ(u->wait_event("agent:cancelled")["queued"], true);
  EXPECT_EQ(u->wait_ack(u->emit("tool:approval", answer))["ok"], true);
  u->wait_event("agent:response");
  // The second message's turn runs now, the third and fourth queue: three slots held, two free.
  EXPECT_EQ(u->wait_ack(u->emit("message", "write x6 to f.txt"))["ok"], true);
  EXPECT_EQ(u->wait_ack(u->emit("message", "write x7 to f.txt"))["ok"], true);
  EXPECT_EQ(u->wait_ack(u->emit("message", "write x8 to f.txt"))["code"], "TOO_MANY_REQUESTS");
}

TEST_F(user_session_test, a_cancel_kills_the_running_tool_and_the_next_turn_runs) {
  start();
  auto u = connect();
  ready(*u);
  const auto ack = u->wait_ack(u->emit("message", "run `sleep 300`"));
  ASSERT_EQ(ack["ok"], true) << ack.dump();
  const auto asked = u->wait_event("tool:approval_required");
  u->emit("tool:approval", json{{"callId", asked["callId"]}, {"approved", true}}, false);
  // The approval and the cancel are handled in order on the session's strand: the tool runs.
  const auto cancel = u->wait_ack(u->emit("agent:cancel", json::object()));
  EXPECT_EQ(cancel["ok"], true) << cancel.dump();
  EXPECT_EQ(cancel["turnId"], ack["turnId"]);
  const auto cancelled = u->wait_event("agent:cancelled");
  EXPECT_EQ(cancelled["turnId"], ack["turnId"]);
  EXPECT_EQ(cancelled["phase"], "running_tool") << cancelled.dump();
  // Nothing of it is left running in the container, and the session takes the next message.
  auto ps = turn(*u, "run `ps -o args`");
  const auto processes = ps.output["content"].get<std::string>();
  EXPECT_EQ(processes.find("sleep 300"), std::string::npos) << processes;
  const auto nothing = u->wait_ack(u->emit("agent:cancel", json::object()));
  EXPECT_EQ(nothing["code"], "NO_ACTIVE_TURN") << nothing.dump();
}

TEST_F(user_session_test, a_resume_gets_the_same_container_and_the_history) {
  start();
  auto first = connect();
  const auto r = ready(*first);
  turn(*first, "write kept to kept.txt");
  first->drop();
  // The session parks (its grace is a minute), then the resume takes it back.
  ASSERT_TRUE(eventually([&] { return gateway_->parked_count() == 1; }));
  auto second = resume(r);
  const auto again = ready(*second);
  ASSERT_TRUE(again.is_object()) << second->seen();
  EXPECT_EQ(again["resumed"], true);
  EXPECT_EQ(again["sessionId"], r["sessionId"]);
  EXPECT_EQ(again["containerId"], r["containerId"]);
  EXPECT_NE(again["resumeToken"], r["resumeToken"]);  // rotated
  const auto& history = again["history"];
  ASSERT_TRUE(history.is_array() && history.size() >= 3) << history.dump();
  EXPECT_EQ(history[0]["role"], "user");
  EXPECT_EQ(history[0]["content"], "write kept to kept.txt");
  EXPECT_EQ(gateway_->parked_count(), 0u);
  // The old token is spent.
  auto replay = resume(r);
  EXPECT_FALSE(replay->connected());
  EXPECT_EQ(replay->connect_error()["data"]["code"], "SESSION_FORBIDDEN") << replay->connect_error().dump();
}

TEST_F(user_session_test, a_disconnect_mid_tool_kills_it_frees_every_slot_and_the_resume_reads_the_stop) {
  start();
  auto first = connect();
  const auto r = ready(*first);
  const auto ack = first->wait_ack(first->emit("message", "run `sleep 300`"));
  ASSERT_EQ(ack["ok"], true) << ack.dump();
  const auto asked = first->wait_event("tool:approval_required");
  EXPECT_EQ(first->wait_ack(first->emit("tool:approval", json{{"callId", asked["callId"]}, {"approved", true}}))["ok"], true);
  // The message and its running step hold two slots; three more messages queue: all five used.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(first->wait_ack(first->emit("message", "hello"))["ok"], true);
  EXPECT_EQ(first->wait_ack(first->emit("message", "hello"))["code"], "TOO_MANY_REQUESTS");
  first->drop();
  ASSERT_TRUE(eventually([&] { return gateway_->parked_count() == 1; }));
  // The sleep is killed when the user leaves (the kill travels over MCP, so it is waited for),
  // well before TOOL_TIMEOUT_MS would have ended it.
  std::string processes;
  EXPECT_TRUE(eventually(
      [&] {
        auto ps = run(client_->exec_run(r["containerId"].get<std::string>(), {"ps", "-o", "args"}, {}, 10s));
        processes = ps ? ps->out : ps.error().message;
        return ps && processes.find("sleep 300") == std::string::npos;
      },
      cfg_.tool_timeout / 4))
      << processes;
  auto second = resume(r);
  const auto again = ready(*second);
  ASSERT_TRUE(again.is_object()) << second->seen();
  EXPECT_EQ(again["containerId"], r["containerId"]);
  // The history reads as a stopped turn: the call answered, the stop said; queued messages dropped.
  const auto& history = again["history"];
  ASSERT_GE(history.size(), 2u) << history.dump();
  const auto& result = history[history.size() - 2];
  EXPECT_EQ(result["role"], "tool") << history.dump();
  EXPECT_EQ(result.value("callId", ""), asked["callId"]) << history.dump();
  EXPECT_NE(result["content"].get<std::string>().find(agent::disconnect_running_text), std::string::npos);
  EXPECT_EQ(history.back()["content"], std::string(agent::disconnect_note));
  for (const auto& h : history) EXPECT_NE(h["content"], "hello") << "a queued message was run: " << history.dump();
  // All five slots are free again.
  std::vector<long> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(second->emit("message", "hello"));
  for (auto id : ids) EXPECT_EQ(second->wait_ack(id)["ok"], true);
}

TEST_F(user_session_test, after_its_grace_a_session_hibernates_and_a_resume_restores_its_workspace) {
  cfg_.session_detach_grace = 200ms;
  start();
  auto first = connect();
  const auto r = ready(*first);
  turn(*first, "write survives hibernation to saved.txt");
  const auto hibernated_before = counter("berth_sessions_hibernated_total");
  first->drop();
  ASSERT_TRUE(eventually([&] { return counter("berth_sessions_hibernated_total") == hibernated_before + 1; }));
  EXPECT_EQ(gateway_->parked_count(), 0u);
  auto rec = on_server(sessions_->get(r["sessionId"].get<std::string>()));
  ASSERT_TRUE(rec && *rec);
  EXPECT_TRUE((*rec)->container.empty()) << "a hibernated session holds no container: " << (*rec)->container;
  auto second = resume(r);
  const auto again = ready(*second);
  ASSERT_TRUE(again.is_object()) << second->seen();
  EXPECT_EQ(again["resumed"], true);
  auto read = turn(*second, "read saved.txt");
  EXPECT_EQ(read.output["isError"], false) << read.output.dump();
  EXPECT_NE(read.output["content"].get<std::string>().find("survives hibernation"), std::string::npos)
      << read.output.dump();
  EXPECT_EQ(counter("berth_sessions_restored_total"), 1u);
}

}  // namespace
}  // namespace berth::testing
