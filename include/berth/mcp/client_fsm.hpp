#pragma once
// MCP client core (sans-I/O): the JSON-RPC 2.0 client side of one MCP session over any byte stream
// (the stdio of a docker exec, or the bodies of streamable HTTP). Bytes and clock ticks in; bytes
// to write and events out. Owns request-id bookkeeping with deadlines (injected clock), the
// initialize handshake, cancellation notifications, and the mapping of tools/list and tools/call
// results. Lines that are not JSON-RPC are reported as protocol_error events; the session goes on.
// Lifetime: one per MCP connection (a restarted exec gets a new one). Thread-safety: none.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/mcp/jsonrpc.hpp"
#include "berth/mcp/tools.hpp"

namespace berth::mcp {

using clock = std::chrono::steady_clock;

inline constexpr std::string_view client_latest_protocol_version = "2025-06-18";
bool is_supported_protocol_version(std::string_view v) noexcept;

struct client_options {
  std::string client_name = "berth";
  std::string client_version = "0.1.0";
  std::string protocol_version{client_latest_protocol_version};
  std::chrono::milliseconds init_timeout{10000};
  std::size_t max_line_bytes = line_decoder::default_max_line_bytes;
  std::size_t max_pending = 64;  // requests in flight
  // The first request id. A client that speaks to the same server process again over a new
  // stream (an attach) continues its numbering, so a late answer to the old stream's request
  // can never be taken for the new one's.
  std::uint64_t first_request_id = 1;
};

enum class client_state { idle, initializing, ready, closed };

enum class failure { timeout, rpc_error, bad_response, cancelled, closed };
std::string_view to_string(failure f) noexcept;

// Events.
struct ev_initialized {
  std::uint64_t request_id = 0;  // start()'s
  std::string protocol_version;
  std::string server_name, server_version;
  nlohmann::json capabilities;
};
struct ev_tools_listed {
  std::uint64_t request_id = 0;
  std::vector<tool_descriptor> tools;
};
struct ev_tool_result {
  std::uint64_t request_id = 0;
  tool_call_outcome outcome;
};
// A generic result for requests made with send_request.
struct ev_result {
  std::uint64_t request_id = 0;
  nlohmann::json result;
};
struct ev_request_failed {
  std::uint64_t request_id = 0;
  failure reason = failure::rpc_error;
  int rpc_code = 0;  // rpc_error only
  std::string message;
};
// Input that is not a valid/expected message: logged and counted by the shell, nothing else.
struct ev_protocol_error {
  std::string message;
};
using client_event =
    std::variant<ev_initialized, ev_tools_listed, ev_tool_result, ev_result, ev_request_failed, ev_protocol_error>;
// The request an event answers (0 for ev_protocol_error, which answers none).
std::uint64_t request_id_of(const client_event& e) noexcept;

// What the answer to a tools/call means for the agent, the same for every transport: the
// outcome; TOOL_TIMEOUT (the deadline passed); TOOL_FAILED (cancelled, or a JSON-RPC error);
// else SANDBOX_UNAVAILABLE "<server_label>tool '<name>': ...", the server being gone.
core::result<tool_call_outcome> tool_call_answer(client_event ev, std::string_view tool, std::chrono::milliseconds timeout,
                                                 std::string_view server_label);
core::error tool_timeout_error(std::string_view tool, std::chrono::milliseconds timeout);

class client_fsm {
 public:
  explicit client_fsm(client_options opts = {});

  // Queues `initialize` (deadline now + init_timeout). Returns its id.
  std::uint64_t start(clock::time_point now);
  // Queue requests. Fail (INTERNAL / SANDBOX_UNAVAILABLE) when not ready, closed or too many in flight.
  core::result<std::uint64_t> list_tools(clock::time_point deadline);
  core::result<std::uint64_t> call_tool(std::string_view name, const nlohmann::json& args, clock::time_point deadline);
  core::result<std::uint64_t> send_request(std::string_view method, const nlohmann::json& params,
                                           clock::time_point deadline);
  // Cancels a pending request: queues notifications/cancelled and emits ev_request_failed(cancelled).
  // False when the id is not pending (already answered, expired or unknown).
  bool cancel(std::uint64_t id, std::string_view reason);

  void on_bytes(std::string_view bytes);
  // Expires deadlines: each expired request gets ev_request_failed(timeout) and a cancellation
  // notification to the server.
  void on_timer(clock::time_point now);
  // The transport died: every pending request fails with `closed`; state becomes closed.
  void on_closed(std::string_view why);

  std::optional<clock::time_point> next_deadline() const;
  std::string take_output();
  std::vector<client_event> take_events();

  client_state state() const noexcept { return state_; }
  std::size_t pending() const noexcept { return pending_.size(); }
  const std::string& protocol_version() const noexcept { return negotiated_version_; }
  std::uint64_t next_request_id() const noexcept { return next_id_; }

 private:
  enum class kind { initialize, list_tools, call_tool, generic };
  struct pending_request {
    kind k;
    clock::time_point deadline;
  };
  core::result<std::uint64_t> enqueue(kind k, std::string_view method, const nlohmann::json& params,
                                      clock::time_point deadline);
  void on_line(std::string_view line);
  void on_response(const message& m);

  client_options opts_;
  client_state state_ = client_state::idle;
  std::uint64_t next_id_;
  std::map<std::uint64_t, pending_request> pending_;
  line_decoder decoder_;
  std::string out_;
  std::vector<client_event> events_;
  std::string negotiated_version_;
};

}  // namespace berth::mcp
