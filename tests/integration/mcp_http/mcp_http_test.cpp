// mcp::http_session against a real streamable-HTTP MCP server: the official TypeScript SDK
// (tests/e2e/support/mcp-http-server.mjs) started by each test on 127.0.0.1 and a free port,
// answering with SSE streams or, in --json mode, JSON bodies.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "berth/core/metrics.hpp"
#include "berth/mcp/http_session.hpp"
#include "support/io_runner.hpp"

namespace {

using namespace berth;
using nlohmann::json;
using std::chrono::milliseconds;

// The node server as a child process: prints its URL, serves until its stdin closes.
class node_mcp_server {
 public:
  explicit node_mcp_server(bool json_mode) {
    const std::string script = std::string(BERTH_SOURCE_DIR) + "/tests/e2e/support/mcp-http-server.mjs";
    int in[2], out[2];
    if (::pipe(in) != 0 || ::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      const char* mode = json_mode ? "--json" : "--sse";
      ::execlp("node", "node", script.c_str(), mode, static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    // The URL line, bounded by a deadline (the first start compiles the SDK's modules).
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{out[0], POLLIN, 0};
      if (::poll(&p, 1, 500) <= 0) continue;
      char buf[512];
      const auto n = ::read(out[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<std::size_t>(n));
    }
    stdout_ = out[0];
    if (line.find('\n') == std::string::npos)
      throw std::runtime_error("the MCP test server did not start (node and `npm ci` in tests/e2e are needed)");
    url_ = line.substr(0, line.find('\n'));
  }
  // Makes the server drop every session (as a restart would); returns once it has.
  bool forget() {
    const std::string cmd = "forget\n";
    if (::write(stdin_, cmd.data(), cmd.size()) != static_cast<ssize_t>(cmd.size())) return false;
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got.find("forgotten\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{stdout_, POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[64];
      const auto n = ::read(stdout_, buf, sizeof buf);
      if (n <= 0) return false;
      got.append(buf, static_cast<std::size_t>(n));
    }
    return got.find("forgotten\n") != std::string::npos;
  }
  ~node_mcp_server() {
    ::close(stdin_);
    ::close(stdout_);  // the server exits when its stdin closes
    for (int i = 0; i < 100; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      pollfd none{};
      ::poll(&none, 0, 50);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  const std::string& url() const { return url_; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string url_;
};

mcp::server_config remote(std::string url) {
  mcp::server_config s;
  s.name = "remote";
  s.transport = mcp::transport_kind::http;
  s.url = std::move(url);
  s.headers["Authorization"] = "Bearer test";
  return s;
}

http::client_options http_opts() {
  http::client_options o;
  o.connect_timeout = milliseconds(5000);
  o.total_timeout = milliseconds(15000);
  return o;
}

struct outcome {
  core::result<std::vector<mcp::tool_descriptor>> tools = core::make_error(core::errc::internal, "unset");
  core::result<mcp::tool_call_outcome> echo = core::make_error(core::errc::internal, "unset");
  core::result<mcp::tool_call_outcome> again = core::make_error(core::errc::internal, "unset");
  core::result<mcp::tool_call_outcome> unknown = core::make_error(core::errc::internal, "unset");
  std::string session_id;
};

boost::asio::awaitable<outcome> session_flow(std::shared_ptr<mcp::http_session> s) {
  outcome o;
  o.tools = co_await s->open(milliseconds(10000));
  if (!o.tools) co_return o;
  o.session_id = s->session_id();
  // Named locals: GCC 12 rejects braced lists in a co_await full-expression.
  const std::string echo = "echo", read_file = "read_file", nope = "nope";
  json echo_args, read_args, no_args = json::object();
  echo_args["text"] = "hi";
  read_args["path"] = "a.txt";
  const milliseconds limit(10000);
  o.echo = co_await s->call_tool(echo, echo_args, limit);
  o.again = co_await s->call_tool(read_file, read_args, limit);
  o.unknown = co_await s->call_tool(nope, no_args, limit);
  s->close();
  co_return o;
}

void check_flow(bool json_mode) {
  node_mcp_server server(json_mode);
  test::io_runner io;
  core::metrics metrics;
  auto s = std::make_shared<mcp::http_session>(io.executor(), remote(server.url()), http_opts(), metrics);
  auto o = io.run(session_flow(s));
  ASSERT_TRUE(o.tools) << o.tools.error().message;
  std::vector<std::string> names;
  for (const auto& t : *o.tools) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"echo", "read_file"}));
  EXPECT_FALSE(o.session_id.empty());
  ASSERT_TRUE(o.echo) << o.echo.error().message;
  EXPECT_EQ(o.echo->text, "echo: hi");
  EXPECT_FALSE(o.echo->is_error);
  ASSERT_TRUE(o.again) << o.again.error().message;
  EXPECT_EQ(o.again->text, "remote file a.txt");
  // An unknown tool: the SDK answers with an error result or a JSON-RPC error; never a success.
  EXPECT_TRUE(!o.unknown || o.unknown->is_error);
}

TEST(McpHttp, InitializeListAndCallOverSse) { check_flow(false); }

TEST(McpHttp, InitializeListAndCallOverJsonBodies) { check_flow(true); }

boost::asio::awaitable<core::result<std::vector<mcp::tool_descriptor>>> open_only(
    std::shared_ptr<mcp::http_session> s) {
  const milliseconds limit(5000);
  co_return co_await s->open(limit);
}

boost::asio::awaitable<core::result<mcp::tool_call_outcome>> call_only(std::shared_ptr<mcp::http_session> s) {
  const std::string echo = "echo";
  json args;
  args["text"] = "back";
  const milliseconds limit(10000);
  co_return co_await s->call_tool(echo, args, limit);
}

TEST(McpHttp, UnreachableServerIsAnErrorAndACounter) {
  std::string url;
  {
    node_mcp_server gone(false);
    url = gone.url();
  }  // stopped: nothing listens on that port any more
  test::io_runner io;
  core::metrics metrics;
  auto s = std::make_shared<mcp::http_session>(io.executor(), remote(url), http_opts(), metrics);
  auto r = io.run(open_only(s));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, core::errc::sandbox_unavailable);
  EXPECT_NE(r.error().message.find("remote"), std::string::npos);
  EXPECT_EQ(r.error().message.find("Bearer"), std::string::npos);
  EXPECT_EQ(metrics.get_counter("berth_mcp_http_errors_total", "").value(), 1u);
}

// The server lost the session (a restart): 404 for the old Mcp-Session-Id, so the client opens a
// new session and sends the call again (the server never ran it), transparently for the caller.
TEST(McpHttp, ForgottenSessionIsReopenedAndTheCallRetried) {
  node_mcp_server server(false);
  test::io_runner io;
  core::metrics metrics;
  auto s = std::make_shared<mcp::http_session>(io.executor(), remote(server.url()), http_opts(), metrics);
  auto opened = io.run(open_only(s));
  ASSERT_TRUE(opened) << opened.error().message;
  const std::string first = s->session_id();
  ASSERT_TRUE(server.forget());
  auto r = io.run(call_only(s));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->text, "echo: back");
  EXPECT_NE(s->session_id(), first);
  EXPECT_FALSE(s->session_id().empty());
  EXPECT_EQ(metrics.get_counter("berth_mcp_http_errors_total", "").value(), 1u);
}

}  // namespace
