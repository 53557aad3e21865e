#include <gtest/gtest.h>

#include "berth/mcp/config.hpp"

using namespace berth::mcp;

namespace {
std::string err(std::string_view text) {
  auto r = parse_mcp_config(text);
  EXPECT_FALSE(r) << text;
  return r ? std::string() : r.error().message;
}
}  // namespace

TEST(McpConfig, ValidConfig) {
  auto r = parse_mcp_config(R"({"mcpServers":{
    "git": {"transport":"stdio-docker","command":["/usr/bin/mcp-git"],"args":["--repo","/workspace"],"env":{"A":"1"}},
    "shell": {"transport":"stdio-docker","command":"node /opt/server.js","enabled":false},
    "remote": {"transport":"http","url":"https://mcp.example.com/mcp","headers":{"Authorization":"Bearer x"}}}})");
  ASSERT_TRUE(r) << r.error().message;
  ASSERT_EQ(r->servers.size(), 3u);
  const auto& git = r->servers[0];
  EXPECT_EQ(git.name, "git");
  EXPECT_EQ(git.transport, transport_kind::stdio_docker);
  EXPECT_EQ(git.command, (std::vector<std::string>{"/usr/bin/mcp-git", "--repo", "/workspace"}));
  EXPECT_EQ(git.env.at("A"), "1");
  EXPECT_TRUE(git.enabled);
  const auto& remote = r->servers[1];
  EXPECT_EQ(remote.transport, transport_kind::http);
  EXPECT_EQ(remote.url, "https://mcp.example.com/mcp");
  EXPECT_EQ(remote.headers.at("Authorization"), "Bearer x");
  const auto& shell = r->servers[2];
  EXPECT_EQ(shell.command, (std::vector<std::string>{"/bin/sh", "-c", "node /opt/server.js"}));
  EXPECT_FALSE(shell.enabled);
  EXPECT_TRUE(parse_mcp_config(R"({"mcpServers":{}})"));
}

TEST(McpConfig, PreciseErrors) {
  EXPECT_NE(err("{").find("not valid JSON"), std::string::npos);
  EXPECT_NE(err("[]").find("(root): expected an object"), std::string::npos);
  EXPECT_NE(err("{}").find("mcpServers: missing"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":[]})").find("mcpServers: expected an object"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a b":{}}})").find("mcpServers.a b: server names"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{}}})").find("mcpServers.a.transport: missing"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"ws"}}})").find("mcpServers.a.transport: expected \"stdio-docker\" or \"http\", got \"ws\""),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"http"}}})").find("mcpServers.a.url: missing"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"http","url":"ftp://x"}}})").find("mcpServers.a.url: expected an http"),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"http","url":"https://"}}})").find("mcpServers.a.url"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"http","url":"http://h","command":"x"}}})")
                .find("mcpServers.a.command: only valid with transport \"stdio-docker\""),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"http","url":"http://h","headers":{"X":1}}}})")
                .find("mcpServers.a.headers.X: expected a string"),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker"}}})").find("mcpServers.a.command: missing"), std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker","command":[]}}})").find("mcpServers.a.command: must not be empty"),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker","command":["x",2]}}})").find("mcpServers.a.command[1]: expected a string"),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker","command":"x","url":"http://h"}}})")
                .find("mcpServers.a.url: only valid with transport \"http\""),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker","command":"x","enabled":"yes"}}})")
                .find("mcpServers.a.enabled: expected a boolean"),
            std::string::npos);
  EXPECT_NE(err(R"({"mcpServers":{"a":{"transport":"stdio-docker","command":"x","cmd":"y"}}})").find("mcpServers.a.cmd: unknown key"),
            std::string::npos);
}

TEST(McpConfig, SandboxIsReservedForTheBuiltInServer) {
  EXPECT_NE(err(R"({"mcpServers":{"sandbox":{"transport":"http","url":"http://h"}}})")
                .find("mcpServers.sandbox: \"sandbox\" is reserved"),
            std::string::npos);
}

TEST(McpConfig, ErrorsNeverEchoHeaderValues) {
  const std::string e = err(R"({"mcpServers":{"a":{"transport":"http","url":"http://h","headers":{"Authorization":"Bearer s3cr3t","X":[]}}}})");
  EXPECT_NE(e.find("mcpServers.a.headers.X"), std::string::npos);
  EXPECT_EQ(e.find("s3cr3t"), std::string::npos);
}
