#include <gtest/gtest.h>

#include <filesystem>

#include "berth/mcp/jsonrpc.hpp"
#include "berth/sandbox/server.hpp"
#include "temp_dir.hpp"

using namespace berth::sandbox;
using nlohmann::json;

namespace {

struct server_fixture : ::testing::Test {
  berth::test::temp_dir tmp;
  std::optional<server_fsm> srv;
  void SetUp() override {
    auto w = workspace::open(tmp.path());
    server_options o;
    o.max_running_commands = 2;
    o.output_cap = 10;
    srv.emplace(std::move(std::get<workspace>(w)), o);
  }
  // One line in, exactly one JSON response out.
  json rpc(const json& msg) {
    auto a = srv->on_line(msg.dump());
    EXPECT_EQ(a.lines.size(), 1u) << msg.dump();
    if (a.lines.empty()) return json();
    EXPECT_EQ(a.lines[0].back(), '\n');
    return json::parse(a.lines[0]);
  }
  json call(const std::string& name, const json& args, int id = 5) {
    return rpc(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", {{"name", name}, {"arguments", args}}}});
  }
  static std::string text(const json& r) { return r["result"]["content"][0]["text"].get<std::string>(); }
};

}  // namespace

TEST(ProtocolVersion, Negotiation) {
  EXPECT_EQ(negotiate_protocol_version("2025-06-18"), "2025-06-18");
  EXPECT_EQ(negotiate_protocol_version("2025-03-26"), "2025-03-26");
  EXPECT_EQ(negotiate_protocol_version("2024-11-05"), "2024-11-05");
  EXPECT_EQ(negotiate_protocol_version("2023-01-01"), "2025-06-18");
  EXPECT_EQ(negotiate_protocol_version(""), "2025-06-18");
}

TEST_F(server_fixture, InitializeEchoesASupportedVersion) {
  auto r = rpc(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                    {"params", {{"protocolVersion", "2024-11-05"}, {"capabilities", json::object()}}}});
  EXPECT_EQ(r["id"], 1);
  EXPECT_EQ(r["result"]["protocolVersion"], "2024-11-05");
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "berth-sandbox");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_FALSE(srv->initialized());
  auto a = srv->on_line(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_TRUE(a.lines.empty());  // never answer a notification
  EXPECT_TRUE(srv->initialized());
  auto r2 = rpc(json{{"jsonrpc", "2.0"}, {"id", "x"}, {"method", "initialize"}, {"params", {{"protocolVersion", "1.0"}}}});
  EXPECT_EQ(r2["result"]["protocolVersion"], "2025-06-18");
  auto bad = rpc(json{{"jsonrpc", "2.0"}, {"id", 2}, {"method", "initialize"}, {"params", json::object()}});
  EXPECT_EQ(bad["error"]["code"], -32602);
}

TEST_F(server_fixture, ToolsListHasSchemas) {
  auto r = rpc(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  const auto& tools = r["result"]["tools"];
  ASSERT_EQ(tools.size(), 4u);
  std::vector<std::string> names;
  for (const auto& t : tools) {
    names.push_back(t["name"]);
    EXPECT_EQ(t["inputSchema"]["type"], "object");
    EXPECT_FALSE(t["description"].get<std::string>().empty());
  }
  EXPECT_EQ(names, (std::vector<std::string>{"list_files", "read_file", "write_file", "run_command"}));
  EXPECT_EQ(tools[3]["inputSchema"]["required"], json::array({"command"}));
}

TEST_F(server_fixture, PingAndUnknownMethodAndGarbage) {
  EXPECT_EQ(rpc(json{{"jsonrpc", "2.0"}, {"id", 3}, {"method", "ping"}})["result"], json::object());
  EXPECT_EQ(rpc(json{{"jsonrpc", "2.0"}, {"id", 4}, {"method", "resources/list"}})["error"]["code"], -32601);
  auto a = srv->on_line("this is not json");
  ASSERT_EQ(a.lines.size(), 1u);
  auto e = json::parse(a.lines[0]);
  EXPECT_EQ(e["error"]["code"], -32700);
  EXPECT_TRUE(e["id"].is_null());
  auto inv = json::parse(srv->on_line(R"({"jsonrpc":"2.0","id":8,"method":5})").lines.at(0));
  EXPECT_EQ(inv["error"]["code"], -32600);
  EXPECT_EQ(inv["id"], 8);
  auto tl = json::parse(srv->on_line_too_long(99999999).lines.at(0));
  EXPECT_EQ(tl["error"]["code"], -32700);
  // Stray responses and unknown notifications get no answer.
  EXPECT_TRUE(srv->on_line(R"({"jsonrpc":"2.0","id":1,"result":{}})").lines.empty());
  EXPECT_TRUE(srv->on_line(R"({"jsonrpc":"2.0","method":"notifications/progress"})").lines.empty());
  // Still serving.
  EXPECT_EQ(rpc(json{{"jsonrpc", "2.0"}, {"id", 9}, {"method", "ping"}})["id"], 9);
}

TEST_F(server_fixture, FileToolsRoundTrip) {
  auto w = call("write_file", {{"path", "dir/hello.txt"}, {"content", "hi there"}});
  EXPECT_FALSE(w["result"]["isError"].get<bool>()) << w.dump();
  auto l = call("list_files", {{"recursive", true}});
  EXPECT_EQ(text(l), "dir/\ndir/hello.txt\n");
  auto r = call("read_file", {{"path", "dir/hello.txt"}, {"max_bytes", 2}});
  EXPECT_EQ(text(r).substr(0, 3), "hi\n");
  auto r2 = call("read_file", {{"path", "/etc/passwd"}});
  EXPECT_TRUE(r2["result"]["isError"].get<bool>());
}

TEST_F(server_fixture, BadArgumentsAreToolErrorsWithPreciseText) {
  struct c {
    std::string tool;
    json args;
    std::string expect;
  };
  for (const auto& [tool, args, expect] : std::vector<c>{
           {"read_file", json::object(), "missing required argument \"path\""},
           {"read_file", {{"path", 3}}, "\"path\" must be a string, got number"},
           {"read_file", {{"path", "a"}, {"max_bytes", 0}}, "\"max_bytes\" must be between 1"},
           {"read_file", {{"path", "a"}, {"max_bytes", "5"}}, "must be an integer"},
           {"read_file", {{"path", "a"}, {"extra", 1}}, "unknown argument \"extra\""},
           {"write_file", {{"path", "a"}}, "missing required argument \"content\""},
           {"list_files", {{"recursive", "yes"}}, "must be a boolean"},
           {"run_command", json::object(), "missing required argument \"command\""},
           {"run_command", {{"command", "  "}}, "command is empty"},
           {"run_command", {{"command", "ls"}, {"timeout_ms", -1}}, "between 1"},
           {"run_command", {{"command", "ls"}, {"timeout_ms", 99999999999}}, "between 1"},
       }) {
    auto r = call(tool, args);
    ASSERT_TRUE(r.contains("result")) << r.dump();
    EXPECT_TRUE(r["result"]["isError"].get<bool>()) << tool << args.dump();
    EXPECT_NE(text(r).find(expect), std::string::npos) << tool << args.dump() << " -> " << text(r);
  }
  auto notobj = rpc(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", {{"name", "read_file"}, {"arguments", "x"}}}});
  EXPECT_TRUE(notobj["result"]["isError"].get<bool>());
  auto unknown = call("rm_rf", json::object());
  EXPECT_EQ(unknown["error"]["code"], -32602);
  EXPECT_NE(unknown["error"]["message"].get<std::string>().find("Unknown tool: rm_rf"), std::string::npos);
  auto noname = rpc(json{{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/call"}, {"params", json::object()}});
  EXPECT_EQ(noname["error"]["code"], -32602);
}

TEST_F(server_fixture, RunCommandIsHandedToTheShellAndAnsweredOnFinish) {
  auto a = srv->on_line(json{{"jsonrpc", "2.0"}, {"id", 11}, {"method", "tools/call"},
                             {"params", {{"name", "run_command"}, {"arguments", {{"command", "echo hi"}, {"timeout_ms", 500}}}}}}
                            .dump());
  EXPECT_TRUE(a.lines.empty());
  ASSERT_TRUE(a.start);
  EXPECT_EQ(a.start->command, "echo hi");
  EXPECT_EQ(a.start->timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(a.start->output_cap, 10u);
  EXPECT_EQ(srv->running_commands(), 1u);
  command_result r;
  r.exit_code = 2;
  r.stdout_text = "0123456789";
  r.stdout_truncated = true;
  r.stderr_text = "oops\n";
  auto line = srv->on_command_finished(json(11), r);
  auto j = json::parse(line);
  EXPECT_EQ(j["id"], 11);
  EXPECT_TRUE(j["result"]["isError"].get<bool>());
  const std::string t = text(j);
  EXPECT_EQ(t.rfind("exit code: 2\n", 0), 0u) << t;
  EXPECT_NE(t.find("[stdout truncated to 10 bytes]"), std::string::npos);
  EXPECT_NE(t.find("--- stderr ---\noops"), std::string::npos);
  EXPECT_EQ(j["result"]["structuredContent"]["exitCode"], 2);
  EXPECT_EQ(srv->running_commands(), 0u);
}

TEST_F(server_fixture, ConcurrencyLimitDuplicateIdsAndCancellation) {
  auto start = [&](const json& id) {
    return srv->on_line(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"},
                             {"params", {{"name", "run_command"}, {"arguments", {{"command", "sleep 1"}}}}}}
                            .dump());
  };
  EXPECT_TRUE(start(1).start);
  auto dup = start(1);
  EXPECT_FALSE(dup.start);
  EXPECT_EQ(json::parse(dup.lines.at(0))["error"]["code"], -32600);
  EXPECT_TRUE(start("two").start);
  auto third = start(3);
  EXPECT_FALSE(third.start);
  EXPECT_TRUE(json::parse(third.lines.at(0))["result"]["isError"].get<bool>());
  // Cancelling an unknown or finished id does nothing; a running one asks the shell to kill it.
  EXPECT_FALSE(srv->on_line(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":42}})").cancel);
  auto c = srv->on_line(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"two","reason":"x"}})");
  ASSERT_TRUE(c.cancel);
  EXPECT_EQ(*c.cancel, "two");
  EXPECT_TRUE(c.lines.empty());
  // A cancelled request gets no response (MCP), the other one does.
  command_result killed;
  killed.signal = 9;
  EXPECT_EQ(srv->on_command_finished(json("two"), killed), "");
  EXPECT_FALSE(srv->on_command_finished(json(1), command_result{}).empty());
  EXPECT_EQ(srv->running_commands(), 0u);
}

TEST(CommandToolResult, StatusLines) {
  command_result t;
  t.timed_out = true;
  t.signal = 9;
  t.duration = std::chrono::milliseconds(1500);
  auto j = command_tool_result(t, 100);
  EXPECT_TRUE(j["isError"].get<bool>());
  EXPECT_NE(j["content"][0]["text"].get<std::string>().find("timed out after 1500 ms"), std::string::npos);
  EXPECT_TRUE(j["structuredContent"]["timedOut"].get<bool>());
  EXPECT_TRUE(j["structuredContent"]["exitCode"].is_null());
  command_result ok;
  ok.exit_code = 0;
  ok.stdout_text = "x";
  EXPECT_FALSE(command_tool_result(ok, 100)["isError"].get<bool>());
  command_result sp;
  sp.spawn_error = "fork: EAGAIN";
  EXPECT_NE(command_tool_result(sp, 100)["content"][0]["text"].get<std::string>().find("could not start"), std::string::npos);
}
