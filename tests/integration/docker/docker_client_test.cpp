#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>

#include "docker_fixture.hpp"
#include "tests/support/daemon_relay.hpp"

namespace berth::testing {
namespace {
using namespace std::chrono_literals;
namespace asio = boost::asio;

using DockerClient = docker_fixture;

asio::awaitable<core::result<std::string>> create_started(docker::client& c, docker::container_spec s) {
  auto id = co_await c.create_container(std::move(s));
  if (!id) co_return id.error();
  auto st = co_await c.start_container(*id);
  if (!st) co_return st.error();
  co_return *id;
}

TEST_F(DockerClient, NegotiatesVersionFromDaemon) {
  auto v = run(client_->version());
  ASSERT_TRUE(v) << v.error().message;
  auto expected = docker::negotiate_version(v->api_version, v->min_api_version);
  ASSERT_TRUE(expected);
  ASSERT_TRUE(client_->negotiated());
  EXPECT_EQ(*client_->negotiated(), *expected);
  EXPECT_TRUE(run(client_->ping()));
}

TEST(DockerClientNoDaemon, SocketMissingGivesClearError) {
  asio::io_context io;
  core::metrics m;
  docker::client_options o;
  o.socket_path = "/nonexistent/berth-docker.sock";
  docker::client c(io.get_executor(), o, m);
  auto fut = asio::co_spawn(io, c.ping(), asio::use_future);
  io.run_for(10s);
  ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
  auto r = fut.get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::sandbox_unavailable);
  EXPECT_NE(r.error().message.find("cannot connect to /nonexistent/berth-docker.sock"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("is dockerd running"), std::string::npos) << r.error().message;
  EXPECT_NE(m.render().find("berth_docker_errors_total 1\n"), std::string::npos) << m.render();
}

TEST_F(DockerClient, ImageMissingGivesClearError) {
  auto s = spec();
  s.image = "berth-no-such-image:" + token_;
  auto r = run(client_->create_container(s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not found"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(s.image), std::string::npos) << r.error().message;
  auto img = run(client_->image_inspect(s.image));
  ASSERT_FALSE(img);
  EXPECT_NE(img.error().message.find("build it with scripts/build-sandbox-image.sh"), std::string::npos);
}

TEST_F(DockerClient, LifecycleWithIdempotentOutcomes) {
  auto id = run(create_started(*client_, spec()));
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_TRUE(run(client_->start_container(*id)));  // 304: already started
  auto info = run(client_->inspect_container(*id));
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->labels.at("berth.testrun"), token_);
  auto listed = run(client_->list_containers(test_labels(), false));
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front().id, *id);
  EXPECT_TRUE(run(client_->kill_container(*id)));
  auto w = run(client_->wait_container(*id, 20s));
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->status_code, 137);
  EXPECT_TRUE(run(client_->kill_container(*id)));   // 409: not running
  EXPECT_TRUE(run(client_->stop_container(*id, 1)));  // 304: already stopped
  EXPECT_TRUE(run(client_->remove_container(*id)));
  EXPECT_TRUE(run(client_->remove_container(*id)));  // 404: already gone
  EXPECT_TRUE(run(client_->kill_container(*id)));    // 404
  auto gone = run(client_->inspect_container(*id));
  ASSERT_FALSE(gone);
  EXPECT_NE(gone.error().message.find("404"), std::string::npos) << gone.error().message;
  auto bad_start = run(client_->start_container(*id));
  ASSERT_FALSE(bad_start);
  EXPECT_NE(bad_start.error().message.find("No such container"), std::string::npos) << bad_start.error().message;
}

TEST_F(DockerClient, HardeningVerifiedByInspect) {
  auto s = spec();
  s.memory_bytes = 128ull * 1024 * 1024;
  s.nano_cpus = 500000000;
  s.pids_limit = 64;
  auto id = run(create_started(*client_, s));
  ASSERT_TRUE(id) << id.error().message;
  auto info = run(client_->inspect_container(*id));
  ASSERT_TRUE(info);
  const auto& raw = info->raw;
  const auto& h = raw["HostConfig"];
  EXPECT_EQ(h["CapDrop"], nlohmann::json::array({"ALL"}));
  EXPECT_EQ(h["CapAdd"], nlohmann::json::array({"SETUID", "SETGID", "KILL"}));
  EXPECT_NE(h["SecurityOpt"].dump().find("no-new-privileges"), std::string::npos);
  EXPECT_EQ(h["Memory"], 128ll * 1024 * 1024);
  EXPECT_EQ(h["NanoCpus"], 500000000);
  EXPECT_EQ(h["PidsLimit"], 64);
  EXPECT_EQ(h["NetworkMode"], "none");
  EXPECT_EQ(h["Init"], true);
  EXPECT_EQ(h["ReadonlyRootfs"], true);
  EXPECT_EQ(h["Privileged"], false);
  EXPECT_EQ(raw["Config"]["User"], "0:0");
  EXPECT_EQ(raw["Config"]["Labels"]["berth.managed"], "true");

  // The sandbox user: no capability at all, owns /workspace, nothing else writable.
  auto r = run(client_->exec_run(*id, {"sh", "-c",
                                       "id -u; grep CapEff /proc/self/status; echo x > /workspace/f && cat /workspace/f;"
                                       " echo t > /tmp/t && echo tmp-ok; (echo y > /root-file) 2>/dev/null || echo ro-ok;"
                                       " ls /sys/class/net | grep -v lo | wc -l"},
                                 "", 20s, std::string(docker::sandbox_user)));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out, "1000\nCapEff:\t0000000000000000\nx\ntmp-ok\nro-ok\n0\n") << r->err;
  EXPECT_EQ(r->exit_code, 0);
  // Root in the container (where berth-sandbox runs) holds CAP_KILL, CAP_SETGID and CAP_SETUID only,
  // so it cannot even write into the user's /workspace itself.
  auto root = run(client_->exec_run(*id, {"sh", "-c",
                                          "id -u; grep CapEff /proc/self/status; (echo z > /workspace/g) 2>/dev/null || "
                                          "echo no-dac-override"},
                                    "", 20s));
  ASSERT_TRUE(root) << root.error().message;
  EXPECT_EQ(root->out, "0\nCapEff:\t00000000000000e0\nno-dac-override\n") << root->err;
}

TEST_F(DockerClient, ExecRoundTripStdinStdoutStderrExitCode) {
  auto id = run(create_started(*client_, spec()));
  ASSERT_TRUE(id) << id.error().message;
  auto r = run(client_->exec_run(*id, {"sh", "-c", "cat; echo to-err >&2; exit 3"}, "hello\nworld", 20s));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->out, "hello\nworld");
  EXPECT_EQ(r->err, "to-err\n");
  EXPECT_EQ(r->exit_code, 3);

  // Interactive: write a line, read it back, then close-write and see the end and the exit code.
  struct outcome {
    std::string echoed;
    bool eof = false;
    int exit_code = -1;
    std::string error;
  };
  auto interactive = [](docker::client& c, std::string container) -> asio::awaitable<outcome> {
    outcome o;
    docker::exec_spec es;
    es.cmd = {"cat"};
    auto ex = co_await c.exec_create(container, es);
    if (!ex) co_return outcome{{}, false, -1, ex.error().message};
    auto st = co_await c.exec_start(*ex);
    if (!st) co_return outcome{{}, false, -1, st.error().message};
    if (auto w = co_await st->write("ping\n"); !w) co_return outcome{{}, false, -1, w.error().message};
    while (o.echoed.size() < 5) {
      auto ch = co_await st->read(10s);
      if (!ch || !*ch) co_return outcome{o.echoed, false, -1, "read failed"};
      o.echoed += (*ch)->data;
    }
    (void)st->close_write();
    auto end = co_await st->read(10s);
    o.eof = end && !*end;
    for (int i = 0; i < 100; ++i) {
      auto info = co_await c.exec_inspect(*ex);
      if (info && info->exit_code) {
        o.exit_code = *info->exit_code;
        break;
      }
      asio::steady_timer t(co_await asio::this_coro::executor, 10ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    co_return o;
  };
  // Not a capturing lambda: the coroutine takes its state as parameters.
  auto o = run(interactive(*client_, *id));
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.echoed, "ping\n");
  EXPECT_TRUE(o.eof);
  EXPECT_EQ(o.exit_code, 0);
}

TEST_F(DockerClient, ExecInMissingContainerFails) {
  auto r = run(client_->exec_run("berth-missing-" + token_, {"true"}, "", 10s));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("No such container"), std::string::npos) << r.error().message;
}

TEST_F(DockerClient, ExecStartRefusedCarriesTheDaemonsReason) {
  // An exec created while the container ran, started after it stopped: the daemon has dropped
  // the exec and refuses the attach with a status and a reason in the body; the error carries both.
  auto id = run(create_started(*client_, spec()));
  ASSERT_TRUE(id) << id.error().message;
  docker::exec_spec es;
  es.cmd = {"true"};
  auto ex = run(client_->exec_create(*id, es));
  ASSERT_TRUE(ex) << ex.error().message;
  ASSERT_TRUE(run(client_->kill_container(*id)));
  ASSERT_TRUE(run(client_->wait_container(*id, 20s)));
  auto st = run(client_->exec_start(*ex));
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("docker: exec start: 404"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("No such exec instance"), std::string::npos) << st.error().message;
}

asio::awaitable<core::result<docker::docker_event>> wait_die(docker::client& c, std::map<std::string, std::string> labels,
                                                            docker::container_spec s) {
  auto es = co_await c.events(labels);
  if (!es) co_return es.error();
  auto id = co_await create_started(c, s);
  if (!id) co_return id.error();
  if (auto k = co_await c.kill_container(*id); !k) co_return k.error();
  for (int i = 0; i < 20; ++i) {
    auto ev = co_await es->next();
    if (!ev) co_return ev.error();
    if (ev->action == "die" && ev->id == *id) co_return *ev;
  }
  co_return core::make_error(core::errc::internal, "no die event");
}

TEST_F(DockerClient, EventsStreamFilteredByLabel) {
  auto ev = run(wait_die(*client_, test_labels(), spec()), 60s);
  ASSERT_TRUE(ev) << ev.error().message;
  EXPECT_EQ(ev->type, "container");
  EXPECT_EQ(ev->attributes.at("berth.testrun"), token_);
}

asio::awaitable<int> parallel_pings(docker::client& c, int n) {
  int ok = 0;
  const std::map<std::string, std::string> none{{"berth.testrun", "none"}};
  for (int i = 0; i < n; ++i) {
    if (co_await c.list_containers(none, false)) ++ok;
  }
  co_return ok;
}

TEST_F(DockerClient, KeepAliveConnectionsAreReused) {
  EXPECT_EQ(run(parallel_pings(*client_, 50)), 50);
  // 50 sequential calls on one kept-alive connection: the request counter grows, errors do not.
  EXPECT_NE(metrics_.render().find("berth_docker_errors_total 0"), std::string::npos);
}

}  // namespace
}  // namespace berth::testing

namespace berth::testing {
namespace {

asio::awaitable<void> pings_into(docker::client& c, int n, std::shared_ptr<int> ok) {
  *ok += co_await parallel_pings(c, n);
}

// More concurrent calls than connections: the extra calls wait for a free connection.
TEST_F(DockerClient, BoundedConnectionsQueueExtraCalls) {
  docker::client_options o;
  o.max_connections = 1;
  o.call_timeout = std::chrono::seconds(30);
  docker::client one(io_.get_executor(), o, metrics_);
  auto ok = std::make_shared<int>(0);
  for (int i = 0; i < 3; ++i) asio::co_spawn(io_, pings_into(one, 5, ok), asio::detached);
  ASSERT_TRUE(run_until([&] { return *ok == 15; }, 60s)) << *ok;
}

}  // namespace
}  // namespace berth::testing

namespace berth::testing {
namespace {

// A dockerd restart closes every kept-alive connection at once. The first call after it finds a
// dead connection; its retry must not take another dead one from the same era (it did: the call
// failed with "Broken pipe" until the idle set was worked through).
TEST_F(DockerClient, AllKeptAliveConnectionsClosedAtOnceCostNoCall) {
  daemon_relay relay(io_, "/var/run/docker.sock", "/tmp/berth-itest-relay-" + token_ + ".sock");
  docker::client_options o;
  o.socket_path = relay.path();
  o.max_connections = 4;
  o.call_timeout = std::chrono::seconds(30);
  docker::client c(io_.get_executor(), o, metrics_);
  // Four calls at once leave four kept-alive connections idle.
  auto ok = std::make_shared<int>(0);
  for (int i = 0; i < 4; ++i) asio::co_spawn(io_, pings_into(c, 1, ok), asio::detached);
  ASSERT_TRUE(run_until([&] { return *ok == 4; }, 60s)) << *ok;
  relay.cut_all();  // what the daemon's exit does to them
  for (int i = 0; i < 4; ++i) {
    auto r = run(c.ping());
    EXPECT_TRUE(r) << "call " << i << " after the cut: " << r.error().message;
  }
}

}  // namespace
}  // namespace berth::testing
