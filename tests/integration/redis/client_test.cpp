#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/redis/client.hpp"
#include "tests/support/io_runner.hpp"
#include "tests/support/redis_server.hpp"

using namespace berth;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using redis::reply;

namespace {

std::shared_ptr<redis::redis_client> make_client(test::io_runner& io, core::metrics& m, const std::string& url,
                                                 redis::client_options opts = {}) {
  opts.endpoint = redis::parse_redis_url(url).value();
  auto c = redis::redis_client::create(io.executor(), opts, m);
  c->start();
  return c;
}

bool wait_connected(test::io_runner& io, redis::redis_client& c) { return io.run(c.wait_connected(10s)); }

core::result<reply> cmd(test::io_runner& io, redis::redis_client& c, std::vector<std::string> args) {
  return io.run(c.command(std::move(args)));
}

struct client_guard {
  std::shared_ptr<redis::redis_client> c;
  ~client_guard() {
    if (c) c->stop();
  }
};

asio::awaitable<std::vector<core::result<reply>>> many_incr(std::shared_ptr<redis::redis_client> c, int n) {
  // n commands in flight at once on one connection: each is its own coroutine.
  std::vector<std::future<core::result<reply>>> futs;
  auto ex = co_await asio::this_coro::executor;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> args{"INCR", "counter"};
    futs.push_back(asio::co_spawn(ex, c->command(std::move(args)), asio::use_future));
  }
  std::vector<core::result<reply>> out;
  for (auto& f : futs) {
    // Yield until each is ready (bounded: 30 s overall by io_runner::run).
    asio::steady_timer t(ex);
    while (f.wait_for(0s) != std::future_status::ready) {
      t.expires_after(1ms);
      co_await t.async_wait(asio::use_awaitable);
    }
    out.push_back(f.get());
  }
  co_return out;
}

}  // namespace

TEST(redis_client, commands_and_typed_errors) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  client_guard g{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *g.c));
  EXPECT_TRUE(redis::expect_ok(cmd(io, *g.c, {"SET", "k", std::string("v\0\r\n", 4)}).value()));
  EXPECT_EQ(redis::as_string(cmd(io, *g.c, {"GET", "k"}).value()).value(), std::string("v\0\r\n", 4));
  EXPECT_EQ(redis::as_optional_string(cmd(io, *g.c, {"GET", "missing"}).value()).value(), std::nullopt);
  // A reply of unexpected type is an error, not data.
  ASSERT_TRUE(cmd(io, *g.c, {"RPUSH", "list", "a"}));
  auto wrong = cmd(io, *g.c, {"GET", "list"}).value();
  EXPECT_TRUE(wrong.is_error());
  EXPECT_EQ(wrong.error_prefix(), "WRONGTYPE");
  auto typed = redis::as_string(wrong, "GET list");
  ASSERT_FALSE(typed);
  EXPECT_NE(typed.error().message.find("WRONGTYPE"), std::string::npos);
  auto not_int = redis::as_integer(cmd(io, *g.c, {"GET", "k"}).value(), "GET k");
  ASSERT_FALSE(not_int);
  EXPECT_EQ(not_int.error().message, "redis GET k: expected integer, got string");
}

TEST(redis_client, pipelining_many_in_flight) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  client_guard g{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *g.c));
  auto results = io.run(many_incr(g.c, 2000));
  std::vector<std::int64_t> seen;
  for (auto& r : results) {
    ASSERT_TRUE(r) << r.error().message;
    seen.push_back(redis::as_integer(*r).value());
  }
  std::sort(seen.begin(), seen.end());
  for (std::size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], static_cast<std::int64_t>(i + 1));

  // An explicit batch: replies in order, per-command errors stay inside.
  std::vector<std::vector<std::string>> batch;
  for (int i = 0; i < 100; ++i) batch.push_back({"SET", "p" + std::to_string(i), std::to_string(i)});
  batch.push_back({"GET", "p42"});
  batch.push_back({"INCR", "p"});
  batch.push_back({"LPUSH", "p1", "x"});
  auto r = io.run(g.c->pipeline(batch)).value();
  ASSERT_EQ(r.size(), 103u);
  EXPECT_EQ(r[100], reply::make_string("42"));
  EXPECT_EQ(r[101], reply::make_integer(1));
  EXPECT_TRUE(r[102].is_error());
}

TEST(redis_client, reconnects_after_restart_and_fails_fast_while_down) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  redis::client_options o;
  o.backoff_base = 20ms;
  o.backoff_max = 200ms;
  o.health_interval = 50ms;
  client_guard g{make_client(io, m, server.url(), o)};
  ASSERT_TRUE(wait_connected(io, *g.c));
  ASSERT_TRUE(cmd(io, *g.c, {"SET", "a", "1"}));
  EXPECT_TRUE(test::eventually([&] { return g.c->health().ok; }));

  server.stop();
  ASSERT_TRUE(test::eventually([&] { return !g.c->connected(); }));
  for (int i = 0; i < 3; ++i) {
    auto r = cmd(io, *g.c, {"GET", "a"});
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().message.starts_with("redis unavailable")) << r.error().message;
    EXPECT_TRUE(redis::is_transport_error(r.error()));
    // "unavailable", not "timeout": it failed at submission instead of waiting out the deadline.
  }
  EXPECT_TRUE(test::eventually([&] { return !g.c->health().ok; }));

  server.start();  // same port, empty data set (persistence is off)
  ASSERT_TRUE(wait_connected(io, *g.c));
  EXPECT_GE(g.c->connect_count(), 2u);
  EXPECT_TRUE(redis::expect_ok(cmd(io, *g.c, {"SET", "a", "2"}).value()));
  EXPECT_EQ(redis::as_string(cmd(io, *g.c, {"GET", "a"}).value()).value(), "2");
  EXPECT_TRUE(test::eventually([&] { return g.c->health().ok; }));
  EXPECT_GE(m.get_counter("berth_redis_errors_total", "", "client=\"redis\",reason=\"connection_lost\"").value(), 1u);
  EXPECT_GE(m.get_counter("berth_redis_errors_total", "", "client=\"redis\",reason=\"unavailable\"").value(), 3u);
}

TEST(redis_client, auth_with_password) {
  test::redis_server server({.password = "s3cret"});
  test::io_runner io;
  core::metrics m;
  client_guard good{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *good.c));
  EXPECT_TRUE(cmd(io, *good.c, {"SET", "x", "1"}));

  redis::client_options o;
  o.name = "wrong";
  o.backoff_base = 10ms;
  o.backoff_max = 50ms;
  client_guard bad{make_client(io, m, "redis://:nope@127.0.0.1:" + std::to_string(server.port()), o)};
  auto& failures = m.get_counter("berth_redis_errors_total", "", "client=\"wrong\",reason=\"connect_failed\"");
  ASSERT_TRUE(test::eventually([&] { return failures.value() >= 2; }));
  EXPECT_FALSE(bad.c->connected());
  auto r = cmd(io, *bad.c, {"GET", "x"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("redis unavailable"));
  EXPECT_EQ(r.error().message.find("nope"), std::string::npos);  // the password never shows

  client_guard none{make_client(io, m, server.url().replace(8, 8, ""), o)};  // no password at all
  EXPECT_FALSE(io.run(none.c->wait_connected(300ms)));
}

TEST(redis_client, selects_the_database) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  client_guard db3{make_client(io, m, server.url(3))};
  client_guard db0{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *db3.c));
  ASSERT_TRUE(wait_connected(io, *db0.c));
  ASSERT_TRUE(cmd(io, *db3.c, {"SET", "only-in-3", "y"}));
  EXPECT_EQ(redis::as_optional_string(cmd(io, *db0.c, {"GET", "only-in-3"}).value()).value(), std::nullopt);
  EXPECT_EQ(redis::as_string(cmd(io, *db3.c, {"GET", "only-in-3"}).value()).value(), "y");

  redis::client_options o;
  o.name = "baddb";
  client_guard bad{make_client(io, m, server.url(99), o)};  // 16 databases: SELECT 99 fails
  EXPECT_FALSE(io.run(bad.c->wait_connected(300ms)));
}

TEST(redis_client, unix_socket_with_password_and_db) {
  test::redis_server server({.password = "pw", .unix_socket = true});
  test::io_runner io;
  core::metrics m;
  client_guard u{make_client(io, m, server.unix_url(2))};
  client_guard t{make_client(io, m, server.url(2))};
  ASSERT_TRUE(wait_connected(io, *u.c));
  ASSERT_TRUE(wait_connected(io, *t.c));
  ASSERT_TRUE(cmd(io, *u.c, {"SET", "via-unix", "1"}));
  EXPECT_EQ(redis::as_string(cmd(io, *t.c, {"GET", "via-unix"}).value()).value(), "1");
}

TEST(redis_client, per_command_deadline) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  client_guard g{make_client(io, m, server.url())};
  client_guard pauser{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *g.c));
  ASSERT_TRUE(wait_connected(io, *pauser.c));
  // CLIENT PAUSE stalls every other client's commands: ours must time out, not hang.
  ASSERT_TRUE(redis::expect_ok(cmd(io, *pauser.c, {"CLIENT", "PAUSE", "1000", "ALL"}).value()));
  auto r = io.run(g.c->command({"GET", "x"}, 100ms));
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("redis timeout")) << r.error().message;
  EXPECT_EQ(m.get_counter("berth_redis_errors_total", "", "client=\"redis\",reason=\"timeout\"").value(), 1u);
  ASSERT_TRUE(cmd(io, *pauser.c, {"CLIENT", "UNPAUSE"}));
  // The late reply is discarded and the pipeline stays in step.
  ASSERT_TRUE(cmd(io, *g.c, {"SET", "x", "after"}));
  EXPECT_EQ(redis::as_string(cmd(io, *g.c, {"GET", "x"}).value()).value(), "after");
}

TEST(redis_client, scripts_by_sha_with_noscript_fallback) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  auto c = redis::redis_client::create(io.executor(), {.endpoint = redis::parse_redis_url(server.url()).value()}, m);
  auto s = c->register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])");
  c->start();
  client_guard g{c};
  ASSERT_TRUE(wait_connected(io, *c));
  // Loaded at connect: SCRIPT EXISTS says so before the first EVALSHA.
  auto exists = cmd(io, *c, {"SCRIPT", "EXISTS", s->sha()}).value();
  ASSERT_EQ(exists, reply::make_array({reply::make_integer(1)}));
  EXPECT_EQ(io.run(c->eval(s, {"n"}, {"5"})).value(), reply::make_integer(5));
  ASSERT_TRUE(cmd(io, *c, {"SCRIPT", "FLUSH"}));
  EXPECT_EQ(io.run(c->eval(s, {"n"}, {"2"})).value(), reply::make_integer(7));
  EXPECT_EQ(m.get_counter("berth_redis_noscript_total", "", "client=\"redis\"").value(), 1u);
  // A script error is a reply of type error.
  auto bad = c->register_script("return redis.call('NOPE')");
  auto r = io.run(c->eval(bad, {}, {})).value();
  EXPECT_TRUE(r.is_error());
}

TEST(redis_client, stop_fails_pending_and_later_commands) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  auto c = make_client(io, m, server.url());
  ASSERT_TRUE(wait_connected(io, *c));
  c->stop();
  auto r = cmd(io, *c, {"PING"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().message.starts_with("redis unavailable"));
}

TEST(redis_client, unreachable_server_fails_fast) {
  test::io_runner io;
  core::metrics m;
  // A port nobody listens on (taken from a server we stop).
  std::string url;
  {
    test::redis_server s;
    url = s.url();
  }
  redis::client_options o;
  o.backoff_base = 10ms;
  client_guard g{make_client(io, m, url, o)};
  auto r = cmd(io, *g.c, {"PING"});
  ASSERT_FALSE(r);
  EXPECT_TRUE(redis::is_transport_error(r.error()));
  EXPECT_FALSE(g.c->health().ok);
}

TEST(redis_client, bounded_pending_queue_fails_fast_when_full) {
  test::redis_server server;
  test::io_runner io;
  core::metrics m;
  redis::client_options o;
  o.max_pending = 1;
  o.name = "small";
  o.health_interval = std::chrono::hours(1);  // keep PINGs out of the single slot
  client_guard g{make_client(io, m, server.url(), o)};
  client_guard pauser{make_client(io, m, server.url())};
  ASSERT_TRUE(wait_connected(io, *g.c));
  ASSERT_TRUE(wait_connected(io, *pauser.c));
  ASSERT_TRUE(redis::expect_ok(cmd(io, *pauser.c, {"CLIENT", "PAUSE", "1000", "ALL"}).value()));
  std::vector<std::string> args{"GET", "x"};
  auto first = asio::co_spawn(io.io(), g.c->command(args, 10s), asio::use_future);
  // Wait until the first is in flight (it holds the only slot), then the second is refused.
  core::result<reply> second = core::make_error(core::errc::internal, "not run");
  ASSERT_TRUE(test::eventually([&] {
    second = cmd(io, *g.c, {"GET", "y"});
    return !second && second.error().message.starts_with("redis overloaded");
  }));
  EXPECT_GE(m.get_counter("berth_redis_errors_total", "", "client=\"small\",reason=\"overloaded\"").value(), 1u);
  // The pause ends by itself (it also holds the pausing connection, so no UNPAUSE from there).
  ASSERT_EQ(first.wait_for(10s), std::future_status::ready);
  EXPECT_TRUE(first.get());
}
