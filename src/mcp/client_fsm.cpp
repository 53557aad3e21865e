#include "berth/mcp/client.hpp"

#include <algorithm>
#include <array>

namespace berth::mcp {

using nlohmann::json;
using core::errc;
using core::make_error;

namespace {
constexpr std::array<std::string_view, 3> known_versions{"2025-06-18", "2025-03-26", "2024-11-05"};

std::string prefix(std::string_view s, std::size_t n = 80) {
  std::string out(s.substr(0, n));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  if (s.size() > n) out += "...";
  return out;
}
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

core::result<std::vector<tool_descriptor>> map_tools_list(const json& result) {
  if (!result.is_object()) return make_error(errc::tool_failed, "tools/list: result is not an object");
  auto it = result.find("tools");
  if (it == result.end() || !it->is_array()) return make_error(errc::tool_failed, "tools/list: result.tools is not an array");
  std::vector<tool_descriptor> out;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string where = "tools/list: tools[" + std::to_string(i) + "]";
    if (!t.is_object()) return make_error(errc::tool_failed, where + " is not an object");
    auto name = t.find("name");
    if (name == t.end() || !name->is_string() || name->get_ref<const std::string&>().empty())
      return make_error(errc::tool_failed, where + ".name must be a non-empty string");
    tool_descriptor d;
    d.name = name->get<std::string>();
    if (auto x = t.find("title"); x != t.end() && x->is_string()) d.title = x->get<std::string>();
    if (auto x = t.find("description"); x != t.end() && x->is_string()) d.description = x->get<std::string>();
    auto schema = t.find("inputSchema");
    if (schema == t.end() || !schema->is_object())
      return make_error(errc::tool_failed, where + " (" + prefix(d.name, 64) + ").inputSchema must be an object");
    d.input_schema = *schema;
    out.push_back(std::move(d));
  }
  return out;
}

core::result<tool_call_outcome> map_tool_call_result(const json& result) {
  if (!result.is_object()) return make_error(errc::tool_failed, "tools/call: result is not an object");
  tool_call_outcome o;
  if (auto e = result.find("isError"); e != result.end()) {
    if (!e->is_boolean()) return make_error(errc::tool_failed, "tools/call: isError must be a boolean");
    o.is_error = e->get<bool>();
  }
  if (auto s = result.find("structuredContent"); s != result.end()) o.structured = *s;
  auto content = result.find("content");
  if (content == result.end() || !content->is_array()) {
    // Only structured output: show it to the model as JSON.
    if (!o.structured.is_null()) {
      o.text = o.structured.dump(-1, ' ', false, json::error_handler_t::replace);
      return o;
    }
    return make_error(errc::tool_failed, "tools/call: result.content is not an array");
  }
  bool first = true;
  for (std::size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return make_error(errc::tool_failed, "tools/call: content[" + std::to_string(i) + "] has no string type");
    const auto& type = part["type"].get_ref<const std::string&>();
    std::string piece;
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string())
        return make_error(errc::tool_failed, "tools/call: content[" + std::to_string(i) + "].text is not a string");
      piece = part["text"].get<std::string>();
    } else if (type == "resource" && part.contains("resource") && part["resource"].is_object() &&
               part["resource"].contains("text") && part["resource"]["text"].is_string()) {
      piece = part["resource"]["text"].get<std::string>();
    } else {
      std::string mime;
      if (auto m = part.find("mimeType"); m != part.end() && m->is_string()) mime = " " + m->get<std::string>();
      piece = "[" + prefix(type, 32) + mime + " content omitted]";
    }
    if (!first) o.text.push_back('\n');
    o.text += piece;
    first = false;
  }
  return o;
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
      events_.push_back(ev_protocol_error{m.invalid_reason + ": " + prefix(line)});
      return;
    case message_kind::request:
      // Server -> client requests: we answer ping and decline the rest (no sampling, roots, ...).
      if (m.method == "ping") {
        out_ += make_result(m.id, json::object());
      } else {
        out_ += make_error(m.id, rpc_error::method_not_found, "Method not found: " + prefix(m.method, 100));
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
    events_.push_back(ev_protocol_error{"response with a non-integer id " + prefix(id_key(m.id))});
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
    events_.push_back(ev_request_failed{id, failure::rpc_error, m.error_code, prefix(m.error_message, 200)});
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
        events_.push_back(ev_request_failed{id, failure::bad_response, 0, "unsupported protocol version " + prefix(v, 40)});
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

// ---- tool_namespace ----

namespace {
std::string sanitise(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  if (out.size() > 64) out.resize(64);
  return out;
}
}  // namespace

void tool_namespace::add_server(const std::string& server, const std::vector<tool_descriptor>& tools) {
  remove_server(server);
  servers_.emplace_back(server, tools);
  rebuild();
}

void tool_namespace::remove_server(const std::string& server) {
  std::erase_if(servers_, [&](const auto& s) { return s.first == server; });
  rebuild();
}

void tool_namespace::rebuild() {
  entries_.clear();
  auto taken = [&](std::string_view n) {
    return std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.exposed_name == n; });
  };
  for (const auto& [server, tools] : servers_) {
    for (const auto& t : tools) {
      std::string name = t.name;
      if (taken(name) || sanitise(name) != name) {
        name = sanitise(server + "__" + t.name);
        const std::string base = name.substr(0, 60);
        for (int k = 2; taken(name) && k < 10000; ++k) name = base + "_" + std::to_string(k);
      }
      entries_.push_back(entry{name, server, t});
    }
  }
}

const tool_namespace::entry* tool_namespace::find(std::string_view exposed_name) const {
  for (const auto& e : entries_)
    if (e.exposed_name == exposed_name) return &e;
  return nullptr;
}

}  // namespace berth::mcp
