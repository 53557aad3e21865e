#include "berth/mcp/client_fsm.hpp"

#include <algorithm>
#include <array>

#include "berth/core/logging.hpp"

namespace berth::mcp {

using nlohmann::json;
using core::errc;
using core::make_error;

namespace {
constexpr std::array<std::string_view, 3> known_versions{"2025-06-18", "2025-03-26", "2024-11-05"};
}  // namespace

bool is_supported_protocol_version(std::string_view v) noexcept {
  return std::find(known_versions.begin(), known_versions.end(), v) != known_versions.end();
}

std::uint64_t request_id_of(const client_event& e) noexcept {
  return std::visit(
      [](const auto& ev) -> std::uint64_t {
        if constexpr (requires { ev.request_id; }) return ev.request_id;
        return 0;
      },
      e);
}

core::error tool_timeout_error(std::string_view tool, std::chrono::milliseconds timeout) {
  return make_error(errc::tool_timeout,
                    "tool '" + std::string(tool) + "' did not finish within " + std::to_string(timeout.count()) + " ms");
}

core::result<tool_call_outcome> tool_call_answer(client_event ev, std::string_view tool, std::chrono::milliseconds timeout,
                                                 std::string_view server_label) {
  const std::string name(tool);
  if (auto* r = std::get_if<ev_tool_result>(&ev)) return std::move(r->outcome);
  if (auto* f = std::get_if<ev_request_failed>(&ev)) {
    switch (f->reason) {
      case failure::timeout: return tool_timeout_error(tool, timeout);
      case failure::cancelled: return make_error(errc::tool_failed, "tool '" + name + "' was cancelled");
      case failure::rpc_error: return make_error(errc::tool_failed, "tool '" + name + "' failed: " + f->message);
      case failure::bad_response:
      case failure::closed: break;
    }
    return make_error(errc::sandbox_unavailable, std::string(server_label) + "tool '" + name + "': " + f->message);
  }
  return make_error(errc::internal, "unexpected MCP event");
}

std::string_view to_string(failure f) noexcept {
  switch (f) {
    case failure::timeout: return "timeout";
    case failure::rpc_error: return "rpc_error";
    case failure::bad_response: return "bad_response";
    case failure::cancelled: return "cancelled";
    case failure::closed: return "closed";
  }
  return "unknown";
}

client_fsm::client_fsm(client_options opts)
    : opts_(std::move(opts)), next_id_(std::max<std::uint64_t>(opts_.first_request_id, 1)), decoder_(opts_.max_line_bytes) {}

std::uint64_t client_fsm::start(clock::time_point now) {
  state_ = client_state::initializing;
  const std::uint64_t id = next_id_++;
  pending_[id] = pending_request{kind::initialize, now + opts_.init_timeout};
  out_ += make_request(id, "initialize",
                       json{{"protocolVersion", opts_.protocol_version},
                            {"capabilities", json::object()},
                            {"clientInfo", {{"name", opts_.client_name}, {"version", opts_.client_version}}}});
  return id;
}

core::result<std::uint64_t> client_fsm::enqueue(kind k, std::string_view method, const json& params,
                                                clock::time_point deadline) {
  if (state_ != client_state::ready)
    return make_error(errc::sandbox_unavailable, "MCP session is not ready (" +
                                                     std::string(state_ == client_state::closed ? "closed" : "initializing") +
                                                     ")");
  if (pending_.size() >= opts_.max_pending)
    return make_error(errc::too_many_requests, "too many MCP requests in flight (" + std::to_string(pending_.size()) + ")");
  const std::uint64_t id = next_id_++;
  pending_[id] = pending_request{k, deadline};
  out_ += make_request(id, method, params);
  return id;
}

core::result<std::uint64_t> client_fsm::list_tools(clock::time_point deadline) {
  return enqueue(kind::list_tools, "tools/list", json::object(), deadline);
}

core::result<std::uint64_t> client_fsm::call_tool(std::string_view name, const json& args, clock::time_point deadline) {
  if (!args.is_object()) return make_error(errc::invalid_payload, "tool arguments must be a JSON object");
  return enqueue(kind::call_tool, "tools/call", json{{"name", name}, {"arguments", args}}, deadline);
}

core::result<std::uint64_t> client_fsm::send_request(std::string_view method, const json& params,
                                                     clock::time_point deadline) {
  return enqueue(kind::generic, method, params, deadline);
}

bool client_fsm::cancel(std::uint64_t id, std::string_view reason) {
  auto it = pending_.find(id);
  // The initialize request cannot be cancelled (MCP); close the session instead.
  if (it == pending_.end() || it->second.k == kind::initialize) return false;
  pending_.erase(it);
  out_ += make_notification("notifications/cancelled", json{{"requestId", id}, {"reason", reason}});
  events_.push_back(ev_request_failed{id, failure::cancelled, 0, std::string(reason)});
  return true;
}

void client_fsm::on_bytes(std::string_view bytes) {
  decoder_.feed(bytes);
  while (auto item = decoder_.next()) {
    if (item->too_long) {
      events_.push_back(ev_protocol_error{"line of " + std::to_string(item->dropped_bytes) +
                                          " bytes exceeds the limit of " + std::to_string(opts_.max_line_bytes)});
      continue;
    }
    on_line(item->line);
  }
}

void client_fsm::on_line(std::string_view line) {
  const message m = parse_message(line);
  switch (m.kind) {
    case message_kind::invalid:
      events_.push_back(ev_protocol_error{m.invalid_reason + ": " + core::log_prefix(line)});
      return;
    case message_kind::request:
      // Server -> client requests: we answer ping and decline the rest (no sampling, roots, ...).
      if (m.method == "ping") {
        out_ += make_result(m.id, json::object());
      } else {
        out_ += make_error(m.id, rpc_error::method_not_found, "Method not found: " + core::log_prefix(m.method, 100));
      }
      return;
    case message_kind::notification:
      // berth-sandbox supervise started a new server: what was in flight is gone.
      if (m.method == server_restarted_method) on_closed("the sandbox MCP server exited and was restarted");
      return;  // logging/progress/list_changed: nothing to do for now
    case message_kind::response:
    case message_kind::error_response:
      on_response(m);
      return;
  }
}

void client_fsm::on_response(const message& m) {
  if (!m.id.is_number_unsigned() && !m.id.is_number_integer()) {
    events_.push_back(ev_protocol_error{"response with a non-integer id " + core::log_prefix(id_key(m.id))});
    return;
  }
  if (m.id.is_number_integer() && m.id.get<std::int64_t>() < 0) {
    events_.push_back(ev_protocol_error{"response with a negative id"});
    return;
  }
  const auto id = m.id.get<std::uint64_t>();
  auto it = pending_.find(id);
  if (it == pending_.end()) {
    // Typically the answer to a request that already timed out or was cancelled.
    events_.push_back(ev_protocol_error{"response to unknown or expired request id " + std::to_string(id)});
    return;
  }
  const kind k = it->second.k;
  pending_.erase(it);
  if (m.kind == message_kind::error_response) {
    events_.push_back(ev_request_failed{id, failure::rpc_error, m.error_code, core::log_prefix(m.error_message, 200)});
    if (k == kind::initialize) on_closed("initialize failed");
    return;
  }
  switch (k) {
    case kind::initialize: {
      const json& r = m.result;
      if (!r.is_object() || !r.contains("protocolVersion") || !r["protocolVersion"].is_string()) {
        events_.push_back(ev_request_failed{id, failure::bad_response, 0, "initialize: result.protocolVersion missing"});
        on_closed("bad initialize result");
        return;
      }
      const std::string v = r["protocolVersion"].get<std::string>();
      if (!is_supported_protocol_version(v)) {
        events_.push_back(ev_request_failed{id, failure::bad_response, 0, "unsupported protocol version " + core::log_prefix(v, 40)});
        on_closed("unsupported protocol version");
        return;
      }
      negotiated_version_ = v;
      ev_initialized ev;
      ev.request_id = id;
      ev.protocol_version = v;
      if (auto si = r.find("serverInfo"); si != r.end() && si->is_object()) {
        if (auto n = si->find("name"); n != si->end() && n->is_string()) ev.server_name = n->get<std::string>();
        if (auto n = si->find("version"); n != si->end() && n->is_string()) ev.server_version = n->get<std::string>();
      }
      if (auto c = r.find("capabilities"); c != r.end()) ev.capabilities = *c;
      out_ += make_notification("notifications/initialized", nullptr);
      state_ = client_state::ready;
      events_.push_back(std::move(ev));
      return;
    }
    case kind::list_tools: {
      auto tools = map_tools_list(m.result);
      if (!tools) {
        events_.push_back(ev_request_failed{id, failure::bad_response, 0, tools.error().message});
        return;
      }
      events_.push_back(ev_tools_listed{id, std::move(*tools)});
      return;
    }
    case kind::call_tool: {
      auto o = map_tool_call_result(m.result);
      if (!o) {
        events_.push_back(ev_request_failed{id, failure::bad_response, 0, o.error().message});
        return;
      }
      events_.push_back(ev_tool_result{id, std::move(*o)});
      return;
    }
    case kind::generic:
      events_.push_back(ev_result{id, m.result});
      return;
  }
}

void client_fsm::on_timer(clock::time_point now) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    const auto id = it->first;
    const bool init = it->second.k == kind::initialize;
    it = pending_.erase(it);
    events_.push_back(ev_request_failed{id, failure::timeout, 0, "no response before the deadline"});
    if (init) {
      on_closed("initialize timed out");
      return;
    }
    out_ += make_notification("notifications/cancelled", json{{"requestId", id}, {"reason", "timeout"}});
  }
}

void client_fsm::on_closed(std::string_view why) {
  if (state_ == client_state::closed) return;
  state_ = client_state::closed;
  for (const auto& [id, p] : pending_) events_.push_back(ev_request_failed{id, failure::closed, 0, std::string(why)});
  pending_.clear();
}

std::optional<clock::time_point> client_fsm::next_deadline() const {
  std::optional<clock::time_point> d;
  for (const auto& [id, p] : pending_) d = d ? std::min(*d, p.deadline) : p.deadline;
  return d;
}

std::string client_fsm::take_output() { return std::exchange(out_, {}); }

std::vector<client_event> client_fsm::take_events() { return std::exchange(events_, {}); }

}  // namespace berth::mcp
