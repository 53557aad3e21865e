// Recycling benchmark against the real dockerd (prints figures; never a pass/fail test): what it
// costs to hand a used container to the next user.
//   scrub:  berth/reset through the container's open sandbox server (what the pool does on every
//           release: no Docker API call), after a typical user's traces: files in /workspace and
//           /tmp, a background process;
//   fresh:  the alternative, in the same run: remove the container, create + start a new one and
//           open its sandbox MCP server (what every release cost before recycling).
// One container per design, labelled berth.test=1 and removed at the end, also after a failure.
// Every loop is bounded in count and by a total time budget.
// Usage: bench_recycle [scrubs=300] [fresh=20] [budget_s=300]   (SANDBOX_IMAGE, default berth-sandbox:latest)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/random.hpp"
#include "berth/docker/api.hpp"
#include "berth/docker/client.hpp"
#include "berth/mcp/stdio_session.hpp"

namespace asio = boost::asio;
using namespace berth;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

const std::vector<std::string> sandbox_cmd{"/usr/local/bin/berth-sandbox", "mcp", "--user", "1000:1000"};
constexpr auto timeout = std::chrono::milliseconds(20000);

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

void report(const char* what, std::vector<double> v) {
  if (v.empty()) {
    std::printf("%-44s no samples\n", what);
    return;
  }
  std::sort(v.begin(), v.end());
  auto pct = [&v](double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  std::printf("%-44s n=%-4zu p50=%9.3f ms  p95=%9.3f ms  p99=%9.3f ms  max=%9.3f ms\n", what, v.size(), pct(0.5),
              pct(0.95), pct(0.99), v.back());
}

struct figures {
  std::vector<double> scrub, fresh;
  std::vector<std::string> containers;  // to remove at the end
  std::string error;
};

asio::awaitable<core::result<std::shared_ptr<mcp::stdio_session>>> start_sandbox(docker::client& dc,
                                                                                   core::metrics& metrics,
                                                                                   const docker::container_spec& spec,
                                                                                   figures& f) {
  auto id = co_await dc.create_container(spec);
  if (!id) co_return id.error();
  f.containers.push_back(*id);
  if (auto st = co_await dc.start_container(*id); !st) co_return st.error();
  auto session = std::make_shared<mcp::stdio_session>(co_await asio::this_coro::executor, dc, *id, sandbox_cmd,
                                                        metrics);
  session->set_user(std::string(docker::sandbox_server_user));
  if (auto opened = co_await session->open(timeout); !opened) co_return opened.error();
  co_return session;
}

// What a typical user leaves: a file written by the model, files and a background job made by a command.
asio::awaitable<core::result<void>> use(const std::shared_ptr<mcp::stdio_session>& s) {
  const json write{{"path", "notes/todo.txt"}, {"content", "ship it\n"}};
  if (auto w = co_await s->call_tool("write_file", write, timeout); !w || w->is_error)
    co_return core::make_error(core::errc::tool_failed, "write_file failed");
  const json cmd{{"command", "echo built > /workspace/out.txt; mkdir -p /tmp/cache && echo c > /tmp/cache/x; "
                             "(sleep 300 &) ; echo ok"}};
  if (auto r = co_await s->call_tool("run_command", cmd, timeout); !r || r->is_error)
    co_return core::make_error(core::errc::tool_failed, "run_command failed");
  co_return core::result<void>{};
}

asio::awaitable<figures> run_bench(docker::client& dc, core::metrics& metrics, core::config cfg, int scrubs, int fresh,
                                   std::chrono::seconds budget) {
  figures f;
  const auto stop_at = clock_type::now() + budget;
  auto spec = docker::hardened_spec(cfg, "bench-recycle");
  spec.labels["berth.test"] = "1";
  auto recycled = co_await start_sandbox(dc, metrics, spec, f);
  if (!recycled) {
    f.error = "start: " + recycled.error().message;
    co_return f;
  }
  auto session = *recycled;
  // The peer's container: each fresh iteration removes it and makes its replacement ready.
  if (fresh > 0) {
    auto first = co_await start_sandbox(dc, metrics, spec, f);
    if (!first) {
      f.error = "start: " + first.error().message;
      co_return f;
    }
    (*first)->close();
  }
  const json none = json::object();
  for (int i = 0; i < 5; ++i) {  // warm-up, untimed
    (void)co_await use(session);
    (void)co_await session->request("berth/reset", none, timeout);
  }
  const int iterations = std::max(scrubs, fresh);
  for (int i = 0; i < iterations && clock_type::now() < stop_at; ++i) {
    if (i < scrubs) {
      if (auto u = co_await use(session); !u) {
        f.error = u.error().message;
        break;
      }
      const auto t0 = clock_type::now();
      auto r = co_await session->request("berth/reset", none, timeout);
      const double took = ms_since(t0);
      if (!r || r->value("clean", false) != true) {
        f.error = "reset: " + (r ? r->dump() : r.error().message);
        break;
      }
      f.scrub.push_back(took);
    }
    if (i < fresh) {
      // The old release: the used container goes, a new one is made ready.
      const auto t0 = clock_type::now();
      const std::string old = f.containers.back();  // [0] is the scrubbed container, [1] the peer's
      if (auto rm = co_await dc.remove_container(old, true); !rm) {
        f.error = "remove: " + rm.error().message;
        break;
      }
      f.containers.pop_back();
      auto next = co_await start_sandbox(dc, metrics, spec, f);
      if (!next) {
        f.error = "fresh: " + next.error().message;
        break;
      }
      f.fresh.push_back(ms_since(t0));
      (*next)->close();
    }
  }
  session->close();
  co_return f;
}

asio::awaitable<void> remove_all(docker::client& dc, std::vector<std::string> ids) {
  for (const auto& id : ids)
    if (auto r = co_await dc.remove_container(id, true); !r)
      std::fprintf(stderr, "bench_recycle: container %s not removed: %s\n", id.c_str(), r.error().message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int scrubs = std::clamp(argc > 1 ? std::atoi(argv[1]) : 300, 1, 100000);
  const int fresh = std::clamp(argc > 2 ? std::atoi(argv[2]) : 20, 0, 10000);
  const auto budget = std::chrono::seconds(std::clamp(argc > 3 ? std::atoi(argv[3]) : 300, 5, 3600));
  core::init_logging("warn", "text");
  core::config cfg;
  cfg.replica_id = "bench-" + core::random_token(6);
  if (const char* img = std::getenv("SANDBOX_IMAGE"); img && *img) cfg.sandbox_image = img;
  asio::io_context io;
  core::metrics metrics;
  docker::client dc(io.get_executor(), docker::client_options{}, metrics);
  auto fut = asio::co_spawn(io, run_bench(dc, metrics, cfg, scrubs, fresh, budget), asio::use_future);
  io.run();
  figures f;
  try {
    f = fut.get();
  } catch (const std::exception& e) {
    f.error = std::string("exception: ") + e.what();
  }
  io.restart();
  asio::co_spawn(io, remove_all(dc, f.containers), asio::detached);  // whatever happened above
  io.run();
  std::printf("bench_recycle: image=%s (release -> ready for the next user)\n", cfg.sandbox_image.c_str());
  report("scrub (berth/reset, no Docker call)", f.scrub);
  report("fresh (remove + create + start + MCP open)", f.fresh);
  if (!f.error.empty()) {
    std::fprintf(stderr, "bench_recycle: %s\n", f.error.c_str());
    return 1;
  }
  return 0;
}
