// MCP tool-call benchmark against the real dockerd (prints figures; never a pass/fail test).
// One sandbox container (label berth.test=1, removed at the end, also after a failure), then in
// the same run, interleaved so both see the same machine load:
//   persistent: one long-lived `docker exec` of berth-sandbox (mcp::stdio_session), one
//               tools/call per iteration: what the gateway does between an approval and tool:output;
//   fresh:      per call exec create + start, initialize, tools/call, close (the alternative design).
// Every loop is bounded in count and by a total time budget.
// Usage: bench_mcp [persistent_calls=300] [fresh_calls=40] [budget_s=180]
//        (SANDBOX_IMAGE, default berth-sandbox:latest)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/metrics.hpp"
#include "berth/core/random.hpp"
#include "berth/docker/api.hpp"
#include "berth/docker/client.hpp"
#include "berth/mcp/stdio_session.hpp"
#include "berth/mcp/client_fsm.hpp"

namespace asio = boost::asio;
using namespace berth;
using clock_type = std::chrono::steady_clock;
using json = nlohmann::json;

namespace {

const std::vector<std::string> sandbox_cmd{"/usr/local/bin/berth-sandbox", "mcp", "--user", "1000:1000"};
constexpr const char* tool_name = "list_files";
constexpr auto call_timeout = std::chrono::milliseconds(20000);

double ms_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
}

void report(const char* what, std::vector<double> v) {
  if (v.empty()) {
    std::printf("%-34s no samples\n", what);
    return;
  }
  std::sort(v.begin(), v.end());
  auto pct = [&v](double p) {
    const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
  };
  std::printf("%-34s n=%-4zu p50=%9.3f ms  p95=%9.3f ms  p99=%9.3f ms  max=%9.3f ms\n", what, v.size(), pct(0.5),
              pct(0.95), pct(0.99), v.back());
}

struct figures {
  std::vector<double> persistent, fresh;
  std::string container;
  std::string error;
};

// Reads from the exec until the MCP client reports an event for which `want` holds (or a failure).
template <class Pred>
asio::awaitable<core::result<mcp::client_event>> read_until(docker::exec_stream& s, mcp::client_fsm& fsm,
                                                            clock_type::time_point deadline, Pred want) {
  for (;;) {
    for (auto& ev : fsm.take_events()) {
      if (want(ev)) co_return std::move(ev);
      if (auto* f = std::get_if<mcp::ev_request_failed>(&ev))
        co_return core::make_error(core::errc::tool_failed, "request failed: " + f->message);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    if (left.count() <= 0) co_return core::make_error(core::errc::tool_timeout, "no reply in time");
    auto chunk = co_await s.read(left);
    if (!chunk) co_return chunk.error();
    if (!*chunk) co_return core::make_error(core::errc::sandbox_unavailable, "berth-sandbox exited");
    if ((*chunk)->stream == docker::stream_kind::stdout_) fsm.on_bytes((*chunk)->data);
  }
}

asio::awaitable<core::result<void>> write_out(docker::exec_stream& s, mcp::client_fsm& fsm) {
  auto out = fsm.take_output();
  if (out.empty()) co_return core::result<void>{};
  co_return co_await s.write(std::move(out));
}

// exec create + start, initialize, tools/call, close: one call with no state kept.
asio::awaitable<core::result<void>> fresh_call(docker::client& dc, std::string container) {
  const auto deadline = clock_type::now() + call_timeout;
  docker::exec_spec spec;
  spec.cmd = sandbox_cmd;
  spec.attach_stdin = true;
  auto exec_id = co_await dc.exec_create(container, spec);
  if (!exec_id) co_return exec_id.error();
  auto stream = co_await dc.exec_start(*exec_id);
  if (!stream) co_return stream.error();
  mcp::client_options opts;
  opts.init_timeout = call_timeout;
  mcp::client_fsm fsm(opts);
  fsm.start(clock_type::now());
  if (auto w = co_await write_out(*stream, fsm); !w) co_return w.error();
  auto is_init = [](const mcp::client_event& e) { return std::holds_alternative<mcp::ev_initialized>(e); };
  auto init = co_await read_until(*stream, fsm, deadline, is_init);
  if (!init) co_return init.error();
  const json args = json::object();
  auto id = fsm.call_tool(tool_name, args, deadline);
  if (!id) co_return id.error();
  if (auto w = co_await write_out(*stream, fsm); !w) co_return w.error();  // initialized + tools/call
  auto is_result = [](const mcp::client_event& e) { return std::holds_alternative<mcp::ev_tool_result>(e); };
  auto res = co_await read_until(*stream, fsm, deadline, is_result);
  if (!res) co_return res.error();
  if (std::get<mcp::ev_tool_result>(*res).outcome.is_error)
    co_return core::make_error(core::errc::tool_failed, std::get<mcp::ev_tool_result>(*res).outcome.text);
  stream->close();
  co_return core::result<void>{};
}

asio::awaitable<figures> run_bench(docker::client& dc, core::metrics& metrics, core::config cfg,
                                   std::shared_ptr<std::string> container, int persistent_calls, int fresh_calls,
                                   std::chrono::seconds budget) {
  figures f;
  const auto stop_at = clock_type::now() + budget;
  auto spec = docker::hardened_spec(cfg, "bench-mcp");
  spec.labels["berth.test"] = "1";
  auto id = co_await dc.create_container(spec);
  if (!id) {
    f.error = "create: " + id.error().message;
    co_return f;
  }
  f.container = *container = *id;
  if (auto st = co_await dc.start_container(*id); !st) {
    f.error = "start: " + st.error().message;
    co_return f;
  }
  auto session = std::make_shared<mcp::stdio_session>(co_await asio::this_coro::executor, dc, *id, sandbox_cmd,
                                                        metrics);
  auto opened = co_await session->open(std::chrono::milliseconds(15000));
  if (!opened) {
    f.error = "open: " + opened.error().message;
    co_return f;
  }
  const std::string tool = tool_name;
  const json no_args = json::object();
  // Warm-up (untimed): first calls touch cold pages in the container and the daemon.
  for (int i = 0; i < 5; ++i) {
    (void)co_await session->call_tool(tool, no_args, call_timeout);
    (void)co_await fresh_call(dc, *id);
  }
  const int iterations = std::max(persistent_calls, fresh_calls);
  for (int i = 0; i < iterations && clock_type::now() < stop_at; ++i) {
    if (i < persistent_calls) {
      const auto t0 = clock_type::now();
      auto r = co_await session->call_tool(tool, no_args, call_timeout);
      const double took = ms_since(t0);
      if (!r || r->is_error) {
        f.error = "persistent call: " + (r ? r->text : r.error().message);
        break;
      }
      f.persistent.push_back(took);
    }
    if (i < fresh_calls) {
      const auto t0 = clock_type::now();
      auto r = co_await fresh_call(dc, *id);
      const double took = ms_since(t0);
      if (!r) {
        f.error = "fresh call: " + r.error().message;
        break;
      }
      f.fresh.push_back(took);
    }
  }
  session->close();
  co_return f;
}

asio::awaitable<void> remove(docker::client& dc, std::string id) {
  if (auto r = co_await dc.remove_container(id, true); !r)
    std::fprintf(stderr, "bench_mcp: container %s not removed: %s\n", id.c_str(), r.error().message.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int persistent_calls = std::clamp(argc > 1 ? std::atoi(argv[1]) : 300, 1, 100000);
  const int fresh_calls = std::clamp(argc > 2 ? std::atoi(argv[2]) : 40, 0, 10000);
  const auto budget = std::chrono::seconds(std::clamp(argc > 3 ? std::atoi(argv[3]) : 180, 5, 3600));
  core::init_logging("warn", "text");
  core::config cfg;
  cfg.replica_id = "bench-" + core::random_token(6);
  if (const char* img = std::getenv("SANDBOX_IMAGE"); img && *img) cfg.sandbox_image = img;
  asio::io_context io;
  core::metrics metrics;
  docker::client dc(io.get_executor(), docker::client_options{}, metrics);
  auto container = std::make_shared<std::string>();
  auto fut = asio::co_spawn(io, run_bench(dc, metrics, cfg, container, persistent_calls, fresh_calls, budget),
                            asio::use_future);
  io.run();
  figures f;
  try {
    f = fut.get();
  } catch (const std::exception& e) {
    f.error = std::string("exception: ") + e.what();
  }
  // The container goes whatever happened above.
  if (!container->empty()) {
    io.restart();
    asio::co_spawn(io, remove(dc, *container), asio::detached);
    io.run();
  }
  std::printf("bench_mcp: image=%s tool=%s (tools/call round trip; the gateway adds only its own event handling)\n",
              cfg.sandbox_image.c_str(), tool_name);
  report("persistent exec (one per session)", f.persistent);
  report("fresh exec per call", f.fresh);
  if (!f.error.empty()) {
    std::fprintf(stderr, "bench_mcp: %s\n", f.error.c_str());
    return 1;
  }
  return 0;
}
