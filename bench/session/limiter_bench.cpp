// berth-session-bench: what the per-user limiter costs.
//   1. PING round trip (the floor), 2. acquire / release latency one at a time (the latency a
//   request pays), 3. acquire+release throughput with many concurrent requests over many users,
//   4. rejection throughput on a saturated user. Uses REDIS_URL if set, else starts redis-server.
// Usage: berth-session-bench [sequential_ops=5000] [concurrency=64] [total_ops=100000]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/core/logging.hpp"
#include "berth/session/limiter.hpp"
#include "tests/support/redis_server.hpp"

namespace asio = boost::asio;
using namespace berth;
using clk = std::chrono::steady_clock;

namespace {

double us(clk::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct stats {
  std::vector<double> v;
  void add(double x) { v.push_back(x); }
  double pct(double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
    return v[i];
  }
  void print(const char* name) {
    std::printf("%-28s n=%-7zu p50=%8.1f us  p95=%8.1f us  p99=%8.1f us\n", name, v.size(), pct(50), pct(95), pct(99));
  }
};

struct shared {
  std::shared_ptr<redis::redis_client> client;
  session::user_limiter* limiter = nullptr;
  long sequential = 5000;
  long concurrency = 64;
  long total = 100000;
  long next_op = 0;
  long failures = 0;
  long rejected = 0;
};

asio::awaitable<void> worker(std::shared_ptr<shared> s, long id) {
  for (;;) {
    long op = s->next_op++;
    if (op >= s->total) co_return;
    auto user = "user-" + std::to_string((op + id) % 1000);
    auto p = co_await s->limiter->acquire(user);
    if (!p) {
      ++s->failures;
      continue;
    }
    auto r = co_await p->release();
    if (!r) ++s->failures;
  }
}

asio::awaitable<int> run(std::shared_ptr<shared> s) {
  if (!co_await s->client->wait_connected(std::chrono::seconds(10))) {
    std::fprintf(stderr, "redis not reachable\n");
    co_return 1;
  }
  // 1. PING floor
  stats ping;
  for (long i = 0; i < s->sequential; ++i) {
    auto t0 = clk::now();
    std::vector<std::string> args(1, "PING");
    auto r = co_await s->client->command(std::move(args));
    if (!r) co_return 1;
    ping.add(us(clk::now() - t0));
  }
  // 2. one request at a time
  stats acq, rel, both;
  for (long i = 0; i < s->sequential; ++i) {
    auto t0 = clk::now();
    auto p = co_await s->limiter->acquire("solo");
    auto t1 = clk::now();
    if (!p) co_return 1;
    auto r = co_await p->release();
    auto t2 = clk::now();
    if (!r) co_return 1;
    acq.add(us(t1 - t0));
    rel.add(us(t2 - t1));
    both.add(us(t2 - t0));
  }
  std::printf("-- sequential (one request in flight)\n");
  ping.print("PING (floor)");
  acq.print("acquire (Lua, 1 RTT)");
  rel.print("release (ZREM, 1 RTT)");
  both.print("acquire+release");

  // 3. concurrent throughput
  auto ex = co_await asio::this_coro::executor;
  auto t0 = clk::now();
  std::vector<std::future<void>> futs;
  for (long w = 0; w < s->concurrency; ++w) futs.push_back(asio::co_spawn(ex, worker(s, w), asio::use_future));
  asio::steady_timer t(ex);
  for (auto& f : futs) {
    while (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      t.expires_after(std::chrono::milliseconds(1));
      co_await t.async_wait(asio::use_awaitable);
    }
  }
  double secs = std::chrono::duration<double>(clk::now() - t0).count();
  std::printf("-- concurrent: %ld workers, %ld acquire+release pairs over 1000 users\n", s->concurrency, s->total);
  std::printf("%-28s %10.0f pairs/s  (%.2f s, failures=%ld)\n", "throughput", static_cast<double>(s->total) / secs, secs,
              s->failures);

  // 4. rejections on a saturated user
  std::vector<session::user_permit> held;
  for (std::size_t i = 0; i < s->limiter->options().max_per_user; ++i) {
    auto p = co_await s->limiter->acquire("hot");
    if (p) held.push_back(std::move(*p));
  }
  stats rej;
  for (long i = 0; i < s->sequential; ++i) {
    auto a = clk::now();
    auto p = co_await s->limiter->acquire("hot");
    rej.add(us(clk::now() - a));
    if (p) co_return 1;
  }
  rej.print("rejection (TOO_MANY_REQUESTS)");
  for (auto& p : held) (void)co_await p.release();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  core::init_logging("warn", "text");
  auto s = std::make_shared<shared>();
  if (argc > 1) s->sequential = std::max(1L, std::atol(argv[1]));
  if (argc > 2) s->concurrency = std::max(1L, std::atol(argv[2]));
  if (argc > 3) s->total = std::max(1L, std::atol(argv[3]));

  std::optional<test::redis_server> server;
  std::string url;
  if (const char* env = std::getenv("REDIS_URL"); env && *env) {
    url = env;
  } else {
    server.emplace();
    url = server->url();
  }
  auto ep = redis::parse_redis_url(url);
  if (!ep) {
    std::fprintf(stderr, "%s\n", ep.error().message.c_str());
    return 2;
  }
  std::printf("berth-session-bench: redis %s, 1 io thread, redis-server on the same host\n", ep->redacted().c_str());

  asio::io_context io;
  core::metrics metrics;
  redis::client_options opts;
  opts.endpoint = *ep;
  opts.command_timeout = std::chrono::seconds(10);
  s->client = redis::redis_client::create(io.get_executor(), opts, metrics);
  session::limiter_options lo;
  lo.keys.prefix = "berth-bench:";
  session::user_limiter limiter(s->client, lo, metrics);
  s->limiter = &limiter;
  s->client->start();
  int rc = 1;
  asio::co_spawn(io, run(s), [&](std::exception_ptr e, int r) {
    rc = e ? 3 : r;
    s->client->stop();
  });
  io.run();
  std::printf("exit=%d\n", rc);
  return rc;
}
