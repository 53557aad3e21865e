#pragma once
// Every MCP server of one user session behind one tool list: the built-in sandbox server
// ("sandbox": the berth-sandbox exec), extra stdio-docker servers from mcp-config.json (other
// commands exec'd in the same container, same hijacked-stream client) and remote streamable-HTTP
// servers. Tools are merged by tool_namespace (the sandbox first, then the config's servers
// in name order; a clashing name becomes "<server>__<tool>") and each call is routed to the
// server that owns the exposed name, under the server's own tool name. An extra server that
// cannot be opened is logged and counted, and the session goes on with the others. The sandbox
// server may come already open (prepared_sandbox: opened by the pool while the container was idle).
// Lifetime: shared_ptr owned by the user's session. Thread-safety: all calls on its strand.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/http/client.hpp"
#include "berth/mcp/config.hpp"
#include "berth/mcp/http_session.hpp"
#include "berth/mcp/stdio_session.hpp"

namespace berth::mcp {

inline constexpr const char* sandbox_server_name = "sandbox";

class router : public std::enable_shared_from_this<router> {
 public:
  struct opened {
    std::vector<tool_descriptor> tools;  // exposed names
    std::optional<core::error> sandbox_error;  // the sandbox server could not be opened
  };

  router(boost::asio::any_io_executor ex, docker::client& docker, std::string container_id,
         std::vector<server_config> extra,
         http::client_options http, core::metrics& metrics, std::string log_tag,
         std::shared_ptr<stdio_session> prepared_sandbox = nullptr);

  boost::asio::awaitable<opened> open(std::chrono::milliseconds timeout);
  // Routes by exposed name; TOOL_FAILED for a name no server exposes. `cancel` stops a call to a
  // stdio server (the sandbox kills it); a remote HTTP server's call runs on until its answer or
  // deadline, which is then ignored.
  boost::asio::awaitable<core::result<tool_call_outcome>> call_tool(std::string exposed_name,
                                                                    nlohmann::json args,
                                                                    std::chrono::milliseconds timeout,
                                                                    std::shared_ptr<call_cancel> cancel = nullptr);
  // Hands the sandbox server's session to the caller (the container goes back to the pool with it);
  // close() leaves it alone from then on. Calls routed to it fail afterwards.
  std::shared_ptr<stdio_session> take_sandbox();
  // The sandbox server's session (its berth/* requests: workspace export and import).
  std::shared_ptr<stdio_session> sandbox() const;
  void close();
  const tool_namespace& tools() const noexcept { return names_; }
  // open() listed the sandbox server's tools (false before open(), after a failed open, and once
  // take_sandbox() handed it over).
  bool sandbox_open() const noexcept { return sandbox_open_; }

 private:
  struct server {
    std::string name;
    std::shared_ptr<stdio_session> stdio;
    std::shared_ptr<http_session> http;
  };
  boost::asio::any_io_executor ex_;
  std::vector<server> servers_;
  tool_namespace names_;
  bool sandbox_open_ = false;
  core::counter& unavailable_;
  std::string log_tag_;
};

}  // namespace berth::mcp
