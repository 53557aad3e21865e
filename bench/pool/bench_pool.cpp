// Pool benchmark against the real dockerd (prints figures; never a pass/fail test):
//   warm acquire latency p50/p95/p99 over N acquires (each lease released, the pool refills),
//   cold create+start latency in the same run, and exec round-trip latency (stdin -> cat -> stdout).
// Usage: bench_pool [acquires=200] [cold=20] [execs=100]   (SANDBOX_IMAGE, default berth-sandbox:latest)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/random.hpp"
#include "berth/pool/container_pool.hpp"

namespace asio = boost::asio;
using namespace berth;
using clock_type = std::chrono::steady_clock;

namespace {

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

void report(const char* what, std::vector<double> v) {
  if (v.empty()) {
    std::printf("%-28s no samples\n", what);
    return;
  }
  std::sort(v.begin(), v.end());
  auto pct = [&v](double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  std::printf("%-28s n=%-4zu p50=%9.3f ms  p95=%9.3f ms  p99=%9.3f ms  max=%9.3f ms\n", what, v.size(), pct(0.5),
              pct(0.95), pct(0.99), v.back());
}

struct figures {
  std::vector<double> warm, cold, exec;
  std::size_t waited_for_refill = 0;
  std::string error;
};

asio::awaitable<void> pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

asio::awaitable<figures> run_bench(docker::client& dc, pool::container_pool& p, core::config cfg, int acquires,
                                   int colds, int execs) {
  figures f;
  if (auto s = co_await p.start(); !s) {
    f.error = s.error().message;
    co_return f;
  }
  // Cold: create + start (+ remove, not timed), same hardened spec as the pool.
  auto spec = docker::hardened_spec(cfg, "bench-cold");
  spec.labels["berth.test"] = "1";
  for (int i = 0; i < colds; ++i) {
    const auto t0 = clock_type::now();
    auto id = co_await dc.create_container(spec);
    if (!id) {
      f.error = id.error().message;
      co_return f;
    }
    auto st = co_await dc.start_container(*id);
    const double took = ms_since(t0);
    (void)co_await dc.remove_container(*id, true);
    if (!st) {
      f.error = st.error().message;
      co_return f;
    }
    f.cold.push_back(took);
  }
  // Warm: wait (untimed, bounded) until an idle container exists, then time acquire().
  for (int i = 0; i < acquires; ++i) {
    int spins = 0;
    while (p.stats().idle == 0 && spins++ < 6000) co_await pause(std::chrono::milliseconds(10));
    if (spins > 0) ++f.waited_for_refill;
    const auto t0 = clock_type::now();
    auto lease = co_await p.acquire();
    const double took = ms_since(t0);
    if (!lease) {
      f.error = lease.error().message;
      co_return f;
    }
    f.warm.push_back(took);
    // Exec round trips in the first leased container.
    if (i == 0) {
      const std::vector<std::string> cat{"cat"};
      for (int e = 0; e < execs; ++e) {
        const auto e0 = clock_type::now();
        auto r = co_await dc.exec_run(lease->id(), cat, "ping", std::chrono::seconds(20));
        if (!r || r->out != "ping") {
          f.error = r ? "exec echoed '" + r->out + "'" : r.error().message;
          co_return f;
        }
        f.exec.push_back(ms_since(e0));
      }
    }
    lease->release();
  }
  co_await p.stop();
  co_return f;
}

}  // namespace

int main(int argc, char** argv) {
  const int acquires = argc > 1 ? std::atoi(argv[1]) : 200;
  const int colds = argc > 2 ? std::atoi(argv[2]) : 20;
  const int execs = argc > 3 ? std::atoi(argv[3]) : 100;
  core::init_logging("warn", "text");
  core::config cfg;
  cfg.replica_id = "bench-" + core::random_token(6);
  if (const char* img = std::getenv("SANDBOX_IMAGE"); img && *img) cfg.sandbox_image = img;
  cfg.pool_min_size = 10;
  cfg.pool_max_size = 40;
  asio::io_context io;
  core::metrics metrics;
  docker::client dc(io.get_executor(), docker::client_options{}, metrics);
  pool::pool_options opts;
  opts.name = "bench";
  opts.extra_labels = {{"berth.test", "1"}};
  pool::container_pool p(io.get_executor(), dc, cfg, metrics, opts);
  auto fut = asio::co_spawn(io, run_bench(dc, p, cfg, acquires, colds, execs), asio::use_future);
  io.run();
  const figures f = fut.get();
  if (!f.error.empty()) {
    std::fprintf(stderr, "bench_pool: %s\n", f.error.c_str());
    return 1;
  }
  std::printf("bench_pool: image=%s pool min=%zu max=%zu\n", cfg.sandbox_image.c_str(), cfg.pool_min_size,
              cfg.pool_max_size);
  report("warm acquire (pool)", f.warm);
  report("cold create+start", f.cold);
  report("exec round trip (cat)", f.exec);
  std::printf("acquires that waited for refill first (untimed): %zu\n", f.waited_for_refill);
  return 0;
}
