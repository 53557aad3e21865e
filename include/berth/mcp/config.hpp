#pragma once
// The operator's mcp-config.json: the MCP servers every session gets besides the sandbox's own.
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"

namespace berth::mcp {

// mcp-config.json: {"mcpServers": {name: {transport, command|url, args?, env?, headers?, enabled?}}}
enum class transport_kind { stdio_docker, http };
struct server_config {
  std::string name;
  transport_kind transport = transport_kind::stdio_docker;
  std::vector<std::string> command;  // stdio-docker: argv run in the user's container
  std::map<std::string, std::string> env;
  std::string url;  // http
  std::map<std::string, std::string> headers;
  bool enabled = true;
};
struct mcp_config {
  std::vector<server_config> servers;  // ordered by name
};
// Errors name the JSON path: `mcpServers.github.url: expected an http:// or https:// URL`.
core::result<mcp_config> parse_mcp_config(std::string_view text);

}  // namespace berth::mcp
