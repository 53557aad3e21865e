#include "berth/mcp/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"

namespace berth::mcp {

namespace asio = boost::asio;
using json = nlohmann::json;

router::router(asio::any_io_executor ex, docker::client& docker, std::string container_id,
               std::vector<server_config> extra,
               http::client_options http, core::metrics& metrics, std::string log_tag,
               std::shared_ptr<stdio_session> prepared_sandbox)
    : ex_(std::move(ex)),
      unavailable_(metrics.get_counter("berth_mcp_servers_unavailable_total",
                                       "Extra MCP servers (mcp-config.json) that could not be opened for a session")),
      log_tag_(std::move(log_tag)) {
  if (!prepared_sandbox || prepared_sandbox->container_id() != container_id)
    prepared_sandbox = sandbox_server_session(ex_, docker, container_id, metrics);
  servers_.push_back(server{sandbox_server_name, std::move(prepared_sandbox), nullptr});
  for (auto& s : extra) {
    if (!s.enabled) continue;
    server slot{s.name, nullptr, nullptr};
    if (s.transport == transport_kind::stdio_docker) {
      slot.stdio = std::make_shared<stdio_session>(ex_, docker, container_id, s.command, metrics);
      slot.stdio->set_env(s.env);
      slot.stdio->set_user(std::string(docker::sandbox_user));  // the user's tools, not the server's
    } else {
      slot.http = std::make_shared<http_session>(ex_, std::move(s), http, metrics);
    }
    servers_.push_back(std::move(slot));
  }
}

namespace {
// A busy daemon sometimes drops a fresh exec stream ("broken pipe"): a server in the container
// gets three attempts before the session goes on without it. An exec that is already running
// (prepared by the pool) is used as it is.
asio::awaitable<core::result<std::vector<tool_descriptor>>> open_exec(std::shared_ptr<stdio_session> session,
                                                                      std::chrono::milliseconds timeout) {
  asio::steady_timer backoff(co_await asio::this_coro::executor);
  for (int attempt = 1;; ++attempt) {
    auto tools = co_await session->ensure_open(timeout);
    if (tools || attempt == 3) co_return tools;
    backoff.expires_after(std::chrono::milliseconds(250 * attempt));
    co_await backoff.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}
}  // namespace

asio::awaitable<router::opened> router::open(std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  opened out;
  for (auto& s : servers_) {
    core::result<std::vector<tool_descriptor>> tools =
        core::make_error(core::errc::internal, "no transport");
    if (s.stdio)
      tools = co_await open_exec(s.stdio, timeout);
    else if (s.http)
      tools = co_await s.http->open(timeout);
    if (!tools) {
      if (s.name == sandbox_server_name) {
        out.sandbox_error = tools.error();
      } else {
        unavailable_.inc();
        core::logger("mcp")->warn("{} mcp server '{}' unavailable, continuing without it: {}", log_tag_, s.name,
                                  tools.error().message);
      }
      continue;
    }
    names_.add_server(s.name, *tools);
    if (s.name == sandbox_server_name) sandbox_open_ = true;
  }
  for (const auto& e : names_.entries()) {
    auto t = e.tool;
    t.name = e.exposed_name;
    out.tools.push_back(std::move(t));
  }
  co_return out;
}

asio::awaitable<core::result<tool_call_outcome>> router::call_tool(std::string exposed_name, json args,
                                                                   std::chrono::milliseconds timeout,
                                                                   std::shared_ptr<call_cancel> cancel) {
  auto self = shared_from_this();
  const auto* entry = names_.find(exposed_name);
  if (!entry)
    co_return core::make_error(core::errc::tool_failed, "no MCP server offers a tool named '" +
                                                            core::log_prefix(exposed_name, 64) + "'");
  const std::string server_name = entry->server;
  const std::string tool_name = entry->tool.name;
  for (auto& s : servers_) {
    if (s.name != server_name) continue;
    if (s.stdio) co_return co_await s.stdio->call_tool(tool_name, std::move(args), timeout, std::move(cancel));
    if (s.http) co_return co_await s.http->call_tool(tool_name, std::move(args), timeout);
  }
  co_return core::make_error(core::errc::internal, "MCP server '" + server_name + "' is gone");
}

std::shared_ptr<stdio_session> router::sandbox() const {
  for (const auto& s : servers_)
    if (s.name == sandbox_server_name) return s.stdio;
  return nullptr;
}

std::shared_ptr<stdio_session> router::take_sandbox() {
  for (auto& s : servers_)
    if (s.name == sandbox_server_name) {
      sandbox_open_ = false;
      return std::exchange(s.stdio, nullptr);
    }
  return nullptr;
}

void router::close() {
  for (auto& s : servers_) {
    if (s.stdio) s.stdio->close();
    if (s.http) s.http->close();
  }
}

}  // namespace berth::mcp
