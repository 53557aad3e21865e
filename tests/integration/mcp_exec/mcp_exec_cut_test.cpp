// A sandbox MCP session (mcp::stdio_session over a hijacked stream: an attach to the container's
// main process, or a `docker exec`) whose daemon connection breaks in the middle of a tool call,
// on the real dockerd with the sandbox image. The client reaches dockerd through a relay
// (daemon_relay.hpp) that breaks the stream's connection the moment the tools/call request passes:
// cut (both ends closed, what a dockerd restart does) or held (the daemon takes no more bytes). The
// call must end at once with SANDBOX_UNAVAILABLE, or at its tool timeout, and the session's next
// call must open a new stream.
//
// The request carries 1 MiB of arguments, more than a unix socket buffers, so its write is still
// under way when the connection breaks: the window in which a restart found a turn in the chaos
// run (bench/chaos/README.md), held open here for as long as the test needs it.
#include <future>

#include <boost/asio/strand.hpp>

#include "berth/mcp/stdio_session.hpp"
#include "tests/support/daemon_relay.hpp"
#include "docker_fixture.hpp"

namespace berth::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Both ways of reaching a server: the sandbox server's attach to the container's main process,
// and an exec (extra stdio-docker servers); the same stream type, the same failures.
class mcp_exec_cut_test : public docker_fixture, public ::testing::WithParamInterface<mcp::stdio_transport> {
 protected:
  void SetUp() override {
    docker_fixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    relay_ = std::make_unique<daemon_relay>(io_, "/var/run/docker.sock", "/tmp/berth-relay-" + token_ + ".sock");
    docker::client_options o;
    o.socket_path = relay_->path();
    o.call_timeout = 30s;
    relayed_ = std::make_unique<docker::client>(io_.get_executor(), o, metrics_);

    const bool attach = GetParam() == mcp::stdio_transport::attach;
    auto s = spec();
    s.name = "berth-itest-mcpcut-" + token_;
    if (attach) docker::make_sandbox_server_main(s);
    auto id = run(client_->create_container(s));
    ASSERT_TRUE(id) << id.error().message;
    auto started = run(client_->start_container(*id));
    ASSERT_TRUE(started) << started.error().message;
    if (attach) {
      session_ = mcp::sandbox_server_session(boost::asio::make_strand(io_), *relayed_, *id, metrics_);
    } else {
      session_ = std::make_shared<mcp::stdio_session>(boost::asio::make_strand(io_), *relayed_, *id,
                                                        docker::sandbox_server_command(), metrics_);
      session_->set_user(std::string(docker::sandbox_server_user));
    }
    auto tools = run(session_->open(20s));
    ASSERT_TRUE(tools) << tools.error().message;
  }
  void TearDown() override {
    if (session_) session_->close();
    session_.reset();
    relayed_.reset();
    relay_.reset();
    docker_fixture::TearDown();
  }

  // Starts a call and runs the io_context until it ends or `limit` passes. A call still stuck
  // then is a failure; the session is closed so the test can clean up.
  std::optional<core::result<mcp::tool_call_outcome>> call_bounded(const std::string& tool, json args,
                                                                   std::chrono::milliseconds tool_timeout,
                                                                   std::chrono::milliseconds limit) {
    auto fut = boost::asio::co_spawn(io_, session_->call_tool(tool, std::move(args), tool_timeout),
                                     boost::asio::use_future);
    const bool ended = run_until([&] { return fut.wait_for(0s) == std::future_status::ready; }, limit);
    if (!ended) {
      session_->close();
      return std::nullopt;
    }
    return fut.get();
  }

  std::string big_write_args_content() const { return std::string(1 << 20, 'x'); }

  std::string echo(const std::string& word) {
    auto r = run(session_->call_tool("run_command", json{{"command", "echo " + word}, {"timeout_ms", 20000}}, 30s));
    if (!r) return "error: " + r.error().message;
    return r->text;
  }

  std::unique_ptr<daemon_relay> relay_;
  std::unique_ptr<docker::client> relayed_;
  std::shared_ptr<mcp::stdio_session> session_;
};

TEST_P(mcp_exec_cut_test, ACallWhoseDaemonConnectionIsCutMidRequestFailsAtOnce) {
  EXPECT_NE(echo("before").find("before"), std::string::npos);

  relay_->arm("tools/call", daemon_relay::on_trigger::cut);
  // A tool timeout far beyond the bound below: only the cut can end this call in time.
  auto r = call_bounded("write_file", json{{"path", "/workspace/big.txt"}, {"content", big_write_args_content()}},
                        120s, 30s);
  ASSERT_TRUE(relay_->fired());
  ASSERT_TRUE(r) << "the call did not end within 30 s of its daemon connection being cut";
  ASSERT_FALSE(*r) << "the call succeeded through a cut connection: " << (*r)->text;
  EXPECT_EQ(r->error().code, core::errc::sandbox_unavailable) << r->error().message;
  EXPECT_NE(r->error().message.find("write_file"), std::string::npos) << r->error().message;

  // The next call starts a new exec (or attaches again) on a new connection; an attach first ends
  // the half-written request the server still holds.
  EXPECT_NE(echo("after").find("after"), std::string::npos);
}

TEST_P(mcp_exec_cut_test, TheToolTimeoutEndsACallWhoseRequestTheDaemonNoLongerTakes) {
  relay_->arm("tools/call", daemon_relay::on_trigger::hold);
  auto r = call_bounded("write_file", json{{"path", "/workspace/big.txt"}, {"content", big_write_args_content()}},
                        2s, 30s);
  ASSERT_TRUE(relay_->fired());
  ASSERT_TRUE(r) << "the call outlived its 2 s tool timeout by 28 s: its request write never ended";
  ASSERT_FALSE(*r) << "the call succeeded through a held connection: " << (*r)->text;
  EXPECT_EQ(r->error().code, core::errc::tool_timeout) << r->error().message;

  // The stuck stream was given up: the next call opens a new one instead of queueing behind it.
  EXPECT_NE(echo("after").find("after"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Transports, mcp_exec_cut_test,
                         ::testing::Values(mcp::stdio_transport::exec, mcp::stdio_transport::attach),
                         [](const auto& param_info) {
                           return param_info.param == mcp::stdio_transport::exec ? "exec" : "attach";
                         });

}  // namespace
}  // namespace berth::testing
