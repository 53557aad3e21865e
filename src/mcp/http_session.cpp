#include "berth/mcp/http_session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "berth/core/logging.hpp"
#include "berth/mcp/streamable_http.hpp"

namespace berth::mcp {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

core::error unavailable(const std::string& server, const std::string& what) {
  return core::make_error(core::errc::sandbox_unavailable, "MCP server '" + server + "': " + what);
}

// A session that was ended by close() is told so with DELETE (the server frees its state).
asio::awaitable<void> delete_session(std::shared_ptr<http::client> http, http::call call) {
  (void)co_await http->send(call);
}

}  // namespace

http_session::http_session(asio::any_io_executor ex, server_config server, http::client_options http,
                           core::metrics& metrics)
    : ex_(std::move(ex)),
      server_(std::move(server)),
      http_(std::make_shared<http::client>(ex_, http)),
      http_errors_(metrics.get_counter("berth_mcp_http_errors_total",
                                       "Streamable-HTTP MCP exchanges that failed (network, HTTP status, body)")),
      protocol_errors_(metrics.get_counter("berth_mcp_protocol_errors_total",
                                           "Lines from a sandbox MCP server that were not valid JSON-RPC")) {}

http::call http_session::base_call(std::string method) const {
  http::call call;
  call.method = std::move(method);
  call.url = server_.url;
  call.headers.push_back({"Accept", "application/json, text/event-stream"});
  if (!session_id_.empty()) call.headers.push_back({"Mcp-Session-Id", session_id_});
  if (fsm_ && !fsm_->protocol_version().empty()) call.headers.push_back({"MCP-Protocol-Version", fsm_->protocol_version()});
  // Operator headers usually carry credentials: all of them are secret (never logged).
  for (const auto& [k, v] : server_.headers) call.headers.push_back({k, v, true});
  return call;
}

asio::awaitable<core::result<void>> http_session::exchange() {
  auto self = shared_from_this();
  auto log = core::logger("mcp");
  // Each round POSTs what the client queued; replies may queue more (answers to server pings).
  for (int round = 0; round < 16 && fsm_; ++round) {
    const std::string out = fsm_->take_output();
    if (out.empty()) co_return core::result<void>{};
    std::size_t pos = 0;
    while (pos < out.size()) {
      auto eol = out.find('\n', pos);
      if (eol == std::string::npos) eol = out.size();
      auto call = base_call("POST");
      call.headers.push_back({"Content-Type", "application/json"});
      call.body = out.substr(pos, eol - pos);
      pos = eol + 1;
      if (call.body.empty()) continue;
      auto sent = co_await http_->send(call);
      if (!fsm_) co_return unavailable(server_.name, "session closed");
      if (!sent.reply) {
        http_errors_.inc();
        log->warn("mcp server '{}' unreachable: {}", server_.name, sent.error);
        fsm_->on_closed(sent.error);
        co_return unavailable(server_.name, sent.error);
      }
      const auto& rep = *sent.reply;
      if (rep.status == 404 && !session_id_.empty()) {
        // The server no longer knows this session: start again on the next call.
        http_errors_.inc();
        log->warn("mcp server '{}' forgot session {}: opening a new one", server_.name,
                  core::log_prefix(session_id_, 16));
        session_id_.clear();
        expired_ = true;
        fsm_->on_closed("the MCP server ended the session");
        co_return unavailable(server_.name, "the server ended the session (HTTP 404)");
      }
      if (auto sid = rep.header("mcp-session-id"); !sid.empty()) session_id_ = std::string(sid);
      // Error statuses may still carry a JSON-RPC error for the request: feed what parses.
      auto lines = streamable_http_lines(rep.header("content-type"), rep.body);
      if (lines) fsm_->on_bytes(*lines);
      if (rep.status < 200 || rep.status >= 300) {
        http_errors_.inc();
        log->warn("mcp server '{}' answered HTTP {}", server_.name, rep.status);
        co_return unavailable(server_.name, "HTTP " + std::to_string(rep.status) + " " +
                                                core::log_prefix(rep.body, 200));
      }
      if (!lines) {
        http_errors_.inc();
        log->warn("mcp server '{}': {}", server_.name, lines.error().message);
        co_return unavailable(server_.name, lines.error().message);
      }
    }
  }
  co_return core::result<void>{};
}

asio::awaitable<core::result<client_event>> http_session::request_and_wait(std::uint64_t id) {
  auto self = shared_from_this();
  auto sent = co_await exchange();
  if (!fsm_) co_return unavailable(server_.name, "session closed");
  fsm_->on_timer(clock::now());
  std::optional<client_event> found;
  for (auto& ev : fsm_->take_events()) {
    if (auto* p = std::get_if<ev_protocol_error>(&ev)) {
      protocol_errors_.inc();
      core::logger("mcp")->warn("mcp server '{}' protocol error: {}", server_.name, p->message);
      continue;
    }
    const auto ev_id = request_id_of(ev);
    if (ev_id == id && !found) found = std::move(ev);
  }
  if (found) co_return std::move(*found);
  if (!sent) co_return sent.error();
  co_return unavailable(server_.name, "no answer to request " + std::to_string(id));
}

asio::awaitable<core::result<std::vector<tool_descriptor>>> http_session::open(
    std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  session_id_.clear();
  client_options opts;
  opts.init_timeout = timeout;
  fsm_ = std::make_unique<client_fsm>(opts);
  auto init = co_await request_and_wait(fsm_->start(clock::now()));
  if (!init) co_return init.error();
  if (!std::holds_alternative<ev_initialized>(*init)) {
    std::string why = "did not initialize";
    if (auto* f = std::get_if<ev_request_failed>(&*init)) why += ": " + f->message;
    co_return unavailable(server_.name, why);
  }
  auto list_id = fsm_->list_tools(clock::now() + timeout);
  if (!list_id) co_return list_id.error();
  auto listed = co_await request_and_wait(*list_id);  // also POSTs notifications/initialized first
  if (!listed) co_return listed.error();
  if (!std::holds_alternative<ev_tools_listed>(*listed)) co_return unavailable(server_.name, "did not list its tools");
  co_return std::get<ev_tools_listed>(*listed).tools;
}

asio::awaitable<core::result<tool_call_outcome>> http_session::call_tool(std::string name, json args,
                                                                         std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  if (!fsm_ || fsm_->state() != client_state::ready) {
    auto reopened = co_await open(std::min(timeout, std::chrono::milliseconds(15000)));
    if (!reopened) co_return reopened.error();
  }
  const auto started = clock::now();
  auto id = fsm_->call_tool(name, args, started + timeout);
  if (!id) co_return id.error();
  expired_ = false;
  auto ev = co_await request_and_wait(*id);
  if (expired_) {
    // 404: the server did not know the session, so it did not run the call. MCP says start a
    // new session; the call is then sent once more.
    auto reopened = co_await open(std::min(timeout, std::chrono::milliseconds(15000)));
    if (!reopened) co_return reopened.error();
    id = fsm_->call_tool(name, args, clock::now() + timeout);
    if (!id) co_return id.error();
    ev = co_await request_and_wait(*id);
  }
  if (!ev) {
    // The HTTP client's own deadline ended the exchange.
    if (clock::now() - started >= timeout) co_return tool_timeout_error(name, timeout);
    co_return ev.error();
  }
  co_return tool_call_answer(std::move(*ev), name, timeout, "MCP server '" + server_.name + "': ");
}

void http_session::close() {
  if (fsm_) fsm_->on_closed("session closed");
  fsm_.reset();
  if (session_id_.empty()) return;
  auto call = base_call("DELETE");
  session_id_.clear();
  asio::co_spawn(ex_, delete_session(http_, std::move(call)), asio::detached);
}

}  // namespace berth::mcp
