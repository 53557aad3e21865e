#pragma once
// One MCP session with a remote server over the streamable HTTP transport (MCP 2025-06-18):
// every client message is a POST of one JSON-RPC message to the server URL with
// `Accept: application/json, text/event-stream`; the reply is a JSON body, an SSE stream that
// ends after the answer, or 202 for notifications. The `Mcp-Session-Id` returned by initialize
// is sent on every later request, with `MCP-Protocol-Version`. Driven by the sans-I/O
// client_fsm; the HTTP exchange is http::client (as for the LLM providers). Operator headers
// (e.g. Authorization) are sent as secrets: never logged. A session the server forgot (404) is
// re-initialized and the call sent again (the server did not run it).
// Lifetime: shared_ptr held by the user's session.
// Thread-safety: all methods on one strand; calls are sequential (the turn runs one tool at a time).
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/http/client.hpp"
#include "berth/mcp/client_fsm.hpp"
#include "berth/mcp/config.hpp"

namespace berth::mcp {

class http_session : public std::enable_shared_from_this<http_session> {
 public:
  http_session(boost::asio::any_io_executor ex, server_config server, http::client_options http,
               core::metrics& metrics);

  // initialize + tools/list. SANDBOX_UNAVAILABLE when the server cannot be reached or answers badly.
  boost::asio::awaitable<core::result<std::vector<tool_descriptor>>> open(std::chrono::milliseconds timeout);
  // tools/call (`name` is the server's own tool name). TOOL_TIMEOUT, TOOL_FAILED, or the outcome.
  boost::asio::awaitable<core::result<tool_call_outcome>> call_tool(std::string name, nlohmann::json args,
                                                                    std::chrono::milliseconds timeout);
  void close();
  const std::string& name() const noexcept { return server_.name; }
  const std::string& session_id() const noexcept { return session_id_; }

 private:
  // POSTs every queued client message (one per request); feeds the replies back. Fails on
  // transport errors and error statuses (after feeding any JSON-RPC error they carry).
  boost::asio::awaitable<core::result<void>> exchange();
  // exchange(), then the event answering `id` (ev_initialized for the initialize request).
  boost::asio::awaitable<core::result<client_event>> request_and_wait(std::uint64_t id);
  http::call base_call(std::string method) const;

  boost::asio::any_io_executor ex_;
  server_config server_;
  std::shared_ptr<http::client> http_;  // shared with a DELETE still in flight after close()
  std::unique_ptr<client_fsm> fsm_;
  std::string session_id_;
  bool expired_ = false;  // the last exchange got 404 for our session id
  core::counter& http_errors_;
  core::counter& protocol_errors_;
};

}  // namespace berth::mcp
