#include "berth/sandbox/server.hpp"

#include <array>

#include "berth/core/base64.hpp"
#include "berth/mcp/jsonrpc.hpp"

namespace berth::sandbox {

using nlohmann::json;
namespace rpc = berth::mcp::rpc_error;

namespace {

constexpr std::array<std::string_view, 3> supported_versions{"2025-06-18", "2025-03-26", "2024-11-05"};

json text_result(std::string text, bool is_error) {
  return json{{"content", json::array({json{{"type", "text"}, {"text", std::move(text)}}})}, {"isError", is_error}};
}

json tool_error(std::string text) { return text_result(std::move(text), true); }

// Argument checking against the (flat) schemas below: precise messages the model can act on.
struct args_checker {
  const json& args;
  std::string tool;
  std::string error;

  bool allow_only(std::initializer_list<std::string_view> names) {
    for (auto it = args.begin(); it != args.end(); ++it) {
      bool known = false;
      for (auto n : names) known = known || it.key() == n;
      if (!known) {
        error = tool + ": unknown argument \"" + it.key() + "\"";
        return false;
      }
    }
    return true;
  }
  std::optional<std::string> string(std::string_view name, bool required) {
    auto it = args.find(name);
    if (it == args.end()) {
      if (required) error = tool + ": missing required argument \"" + std::string(name) + "\" (string)";
      return std::nullopt;
    }
    if (!it->is_string()) {
      error = tool + ": argument \"" + std::string(name) + "\" must be a string, got " + it->type_name();
      return std::nullopt;
    }
    return it->get<std::string>();
  }
  std::optional<bool> boolean(std::string_view name) {
    auto it = args.find(name);
    if (it == args.end()) return false;
    if (!it->is_boolean()) {
      error = tool + ": argument \"" + std::string(name) + "\" must be a boolean, got " + it->type_name();
      return std::nullopt;
    }
    return it->get<bool>();
  }
  // Absent -> fallback. Present -> an integer in [lo, hi].
  std::optional<std::int64_t> integer(std::string_view name, std::int64_t lo, std::int64_t hi, std::int64_t fallback) {
    auto it = args.find(name);
    if (it == args.end()) return fallback;
    std::int64_t v = 0;
    if (it->is_number_integer()) {
      v = it->get<std::int64_t>();
    } else if (it->is_number_unsigned()) {
      v = it->get<std::uint64_t>() > static_cast<std::uint64_t>(hi) ? hi + 1 : static_cast<std::int64_t>(it->get<std::uint64_t>());
    } else if (it->is_number_float() && it->get<double>() == static_cast<double>(static_cast<std::int64_t>(it->get<double>()))) {
      v = static_cast<std::int64_t>(it->get<double>());  // 5000.0 from some models
    } else {
      error = tool + ": argument \"" + std::string(name) + "\" must be an integer, got " + it->type_name();
      return std::nullopt;
    }
    if (v < lo || v > hi) {
      error = tool + ": argument \"" + std::string(name) + "\" must be between " + std::to_string(lo) + " and " +
              std::to_string(hi) + ", got " + std::to_string(v);
      return std::nullopt;
    }
    return v;
  }
};

std::string truncation_note(std::string_view stream, std::size_t cap) {
  return "\n[" + std::string(stream) + " truncated to " + std::to_string(cap) + " bytes]\n";
}

}  // namespace

std::string negotiate_protocol_version(std::string_view requested) {
  for (auto v : supported_versions)
    if (v == requested) return std::string(v);
  return std::string(latest_protocol_version);
}

json command_tool_result(const command_result& r, std::size_t output_cap) {
  if (!r.spawn_error.empty()) return tool_error("run_command: could not start the command: " + r.spawn_error);
  std::string status;
  if (r.timed_out) {
    status = "timed out after " + std::to_string(r.duration.count()) + " ms; process group killed";
  } else if (r.signal != 0) {
    status = "killed by signal " + std::to_string(r.signal);
  } else {
    status = "exit code: " + std::to_string(r.exit_code);
  }
  std::string text = status + "\n";
  if (!r.stdout_text.empty() || r.stdout_truncated) {
    text += "--- stdout ---\n" + r.stdout_text;
    if (r.stdout_truncated) text += truncation_note("stdout", output_cap);
  }
  if (!r.stderr_text.empty() || r.stderr_truncated) {
    if (!text.empty() && text.back() != '\n') text.push_back('\n');
    text += "--- stderr ---\n" + r.stderr_text;
    if (r.stderr_truncated) text += truncation_note("stderr", output_cap);
  }
  const bool failed = r.timed_out || r.signal != 0 || r.exit_code != 0;
  json j = text_result(std::move(text), failed);
  j["structuredContent"] = json{{"exitCode", r.signal == 0 && !r.timed_out ? json(r.exit_code) : json(nullptr)},
                                {"signal", r.signal},
                                {"timedOut", r.timed_out},
                                {"stdout", r.stdout_text},
                                {"stderr", r.stderr_text},
                                {"stdoutTruncated", r.stdout_truncated},
                                {"stderrTruncated", r.stderr_truncated},
                                {"durationMs", r.duration.count()}};
  return j;
}

server_fsm::server_fsm(workspace ws, server_options opts) : ws_(std::move(ws)), opts_(std::move(opts)) {}

json server_fsm::tool_list() {
  auto path_prop = [](std::string d) { return json{{"type", "string"}, {"description", std::move(d)}}; };
  json tools = json::array();
  tools.push_back(json{
      {"name", "list_files"},
      {"title", "List files"},
      {"description",
       "List the entries of a directory in the workspace (/workspace). Directories end in '/', symlinks in '@'."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"path", path_prop("Directory, relative to /workspace or absolute under it. Default: /workspace.")},
          {"recursive", {{"type", "boolean"}, {"description", "List subdirectories too. Default: false."}}}}},
        {"additionalProperties", false}}}});
  tools.push_back(json{
      {"name", "read_file"},
      {"title", "Read a file"},
      {"description", "Read a text file from the workspace. Long files are cut at max_bytes."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"path", path_prop("File, relative to /workspace or absolute under it.")},
          {"max_bytes", {{"type", "integer"}, {"minimum", 1}, {"description", "Read at most this many bytes."}}}}},
        {"required", json::array({"path"})},
        {"additionalProperties", false}}}});
  tools.push_back(json{
      {"name", "write_file"},
      {"title", "Write a file"},
      {"description", "Create or replace a file in the workspace; missing parent directories are created."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"path", path_prop("File, relative to /workspace or absolute under it.")},
          {"content", {{"type", "string"}, {"description", "The complete new content."}}}}},
        {"required", json::array({"path", "content"})},
        {"additionalProperties", false}}}});
  tools.push_back(json{
      {"name", "run_command"},
      {"title", "Run a shell command"},
      {"description",
       "Run a command with /bin/sh -c in /workspace. Returns the exit code, stdout and stderr (each capped)."},
      {"inputSchema",
       {{"type", "object"},
        {"properties",
         {{"command", {{"type", "string"}, {"description", "The shell command line."}}},
          {"timeout_ms",
           {{"type", "integer"}, {"minimum", 1}, {"description", "Kill the command after this long. Default: 30000."}}}}},
        {"required", json::array({"command"})},
        {"additionalProperties", false}}}});
  return json{{"tools", std::move(tools)}};
}

server_fsm::actions server_fsm::on_line(std::string_view line) {
  const auto m = mcp::parse_message(line);
  switch (m.kind) {
    case mcp::message_kind::invalid: {
      actions a;
      a.lines.push_back(mcp::make_error(m.id, m.invalid_code,
                                        m.invalid_code == rpc::parse_error ? "Parse error: " + m.invalid_reason
                                                                           : "Invalid Request: " + m.invalid_reason));
      return a;
    }
    case mcp::message_kind::request:
      return on_request(m.id, m.method, m.params);
    case mcp::message_kind::notification: {
      actions a;
      on_notification(m.method, m.params, a);
      return a;
    }
    case mcp::message_kind::response:
    case mcp::message_kind::error_response:
      // We never send requests to the client, so any response is stray: ignore it (no reply to
      // a response, per JSON-RPC).
      return {};
  }
  return {};
}

server_fsm::actions server_fsm::on_line_too_long(std::size_t bytes) {
  actions a;
  a.lines.push_back(mcp::make_error(nullptr, rpc::parse_error,
                                    "Parse error: line of " + std::to_string(bytes) + " bytes exceeds the limit"));
  return a;
}

server_fsm::actions server_fsm::on_request(const json& id, const std::string& method, const json& params) {
  actions a;
  if (method == "initialize") {
    if (!params.is_object() || !params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
      a.lines.push_back(mcp::make_error(id, rpc::invalid_params, "initialize: params.protocolVersion (string) is required"));
      return a;
    }
    initialize_seen_ = true;
    protocol_version_ = negotiate_protocol_version(params["protocolVersion"].get<std::string>());
    a.lines.push_back(mcp::make_result(
        id, json{{"protocolVersion", protocol_version_},
                 {"capabilities", {{"tools", {{"listChanged", false}}}}},
                 {"serverInfo", {{"name", opts_.server_name}, {"version", opts_.server_version}}},
                 {"instructions", "Tools operate on the user's workspace at " + ws_.root() + "."}}));
    return a;
  }
  if (method == "ping") {
    a.lines.push_back(mcp::make_result(id, json::object()));
    return a;
  }
  if (method == "tools/list") {
    // Lenient: answered before initialize too (a restarted client may skip straight here).
    a.lines.push_back(mcp::make_result(id, tool_list()));
    return a;
  }
  if (method == "tools/call") return call_tool(id, params);
  if (method == method_reset) {
    a.reset = id;
    return a;
  }
  if (method == method_export || method == method_import) return start_archive(id, method, params);
  a.lines.push_back(mcp::make_error(id, rpc::method_not_found, "Method not found: " + method.substr(0, 100)));
  return a;
}

void server_fsm::on_notification(const std::string& method, const json& params, actions& out) {
  if (method == "notifications/initialized") {
    initialized_ = true;
    return;
  }
  if (method == "notifications/cancelled") {
    if (!params.is_object()) return;
    auto it = params.find("requestId");
    if (it == params.end()) return;
    const auto key = mcp::id_key(*it);
    // Only a running command can be cancelled; everything else has already been answered.
    if (running_.count(key) != 0 && cancelled_.insert(key).second) out.cancel = *it;
    return;
  }
  // Other notifications (progress, roots changed, ...) need no action; never reply to one.
}

server_fsm::actions server_fsm::call_tool(const json& id, const json& params) {
  actions a;
  if (!params.is_object() || !params.contains("name") || !params["name"].is_string()) {
    a.lines.push_back(mcp::make_error(id, rpc::invalid_params, "tools/call: params.name (string) is required"));
    return a;
  }
  const std::string name = params["name"].get<std::string>();
  static const json empty = json::object();
  const json* args_ptr = &empty;
  if (auto it = params.find("arguments"); it != params.end() && !it->is_null()) {
    if (!it->is_object()) {
      a.lines.push_back(mcp::make_result(id, tool_error(name + ": arguments must be an object")));
      return a;
    }
    args_ptr = &*it;
  }
  args_checker c{*args_ptr, name, {}};
  auto reply = [&](const json& result) {
    a.lines.push_back(mcp::make_result(id, result));
    return a;
  };

  if (name == "list_files") {
    if (!c.allow_only({"path", "recursive"})) return reply(tool_error(c.error));
    auto path = c.string("path", false);
    if (!c.error.empty()) return reply(tool_error(c.error));
    auto rec = c.boolean("recursive");
    if (!rec) return reply(tool_error(c.error));
    auto out = ws_.list_files(path.value_or(""), *rec);
    return reply(text_result(std::move(out.text), out.is_error));
  }
  if (name == "read_file") {
    if (!c.allow_only({"path", "max_bytes"})) return reply(tool_error(c.error));
    auto path = c.string("path", true);
    if (!path) return reply(tool_error(c.error));
    const auto cap = static_cast<std::int64_t>(ws_.limits().max_read_bytes);
    auto max = c.integer("max_bytes", 1, std::numeric_limits<std::int64_t>::max() / 2, cap);
    if (!max) return reply(tool_error(c.error));
    auto out = ws_.read_file(*path, static_cast<std::size_t>(std::min(*max, cap)));
    return reply(text_result(std::move(out.text), out.is_error));
  }
  if (name == "write_file") {
    if (!c.allow_only({"path", "content"})) return reply(tool_error(c.error));
    auto path = c.string("path", true);
    if (!path) return reply(tool_error(c.error));
    auto content = c.string("content", true);
    if (!content) return reply(tool_error(c.error));
    auto out = ws_.write_file(*path, *content);
    return reply(text_result(std::move(out.text), out.is_error));
  }
  if (name == "run_command") {
    if (!c.allow_only({"command", "timeout_ms"})) return reply(tool_error(c.error));
    auto cmd = c.string("command", true);
    if (!cmd) return reply(tool_error(c.error));
    if (cmd->find_first_not_of(" \t\r\n") == std::string::npos) return reply(tool_error("run_command: command is empty"));
    if (cmd->size() > opts_.max_command_bytes)
      return reply(tool_error("run_command: command too long (" + std::to_string(cmd->size()) + " bytes, limit " +
                              std::to_string(opts_.max_command_bytes) + ")"));
    if (cmd->find('\0') != std::string::npos) return reply(tool_error("run_command: command contains a NUL byte"));
    auto timeout = c.integer("timeout_ms", 1, opts_.max_timeout.count(), opts_.default_timeout.count());
    if (!timeout) return reply(tool_error(c.error));
    const auto key = mcp::id_key(id);
    if (running_.count(key) != 0) {
      a.lines.push_back(mcp::make_error(id, rpc::invalid_request, "a request with this id is still running"));
      return a;
    }
    if (running_tools() >= opts_.max_running_commands)
      return reply(tool_error("run_command: " + std::to_string(running_tools()) +
                              " commands are already running; wait for one to finish"));
    running_.emplace(key, std::make_pair(job_kind::tool, id));
    a.start = command_request{id, std::move(*cmd), std::chrono::milliseconds(*timeout), opts_.output_cap, {}};
    return a;
  }
  a.lines.push_back(mcp::make_error(id, rpc::invalid_params, "Unknown tool: " + name.substr(0, 100)));
  return a;
}

std::size_t server_fsm::running_tools() const noexcept {
  std::size_t n = 0;
  for (const auto& [_, job] : running_) n += job.first == job_kind::tool ? 1 : 0;
  return n;
}

// A tar of the workspace, run by the shell as the workspace's user (so it can read what the user
// made, and nothing else): gzip to stdout for an export, from stdin for an import.
server_fsm::actions server_fsm::start_archive(const json& id, const std::string& method, const json& params) {
  actions a;
  for (const auto& [_, job] : running_)
    if (job.first != job_kind::tool) {
      a.lines.push_back(mcp::make_error(id, rpc::invalid_request, method + ": a workspace archive is already running"));
      return a;
    }
  if (running_.count(mcp::id_key(id)) != 0) {
    a.lines.push_back(mcp::make_error(id, rpc::invalid_request, "a request with this id is still running"));
    return a;
  }
  const std::string root = ws_.root();
  command_request req{id, {}, archive_timeout, 0, {}};
  if (method == method_export) {
    const auto max = params.is_object() ? params.find("maxBytes") : json::const_iterator{};
    if (!params.is_object() || max == params.end() || !max->is_number_unsigned() || max->get<std::uint64_t>() == 0 ||
        max->get<std::uint64_t>() > max_workspace_archive_bytes) {
      a.lines.push_back(mcp::make_error(id, rpc::invalid_params,
                                        method + ": params.maxBytes must be an integer in 1.." +
                                            std::to_string(max_workspace_archive_bytes)));
      return a;
    }
    // One byte over the cap tells "too large" from "exactly the cap"; the shell counts the rest.
    req.output_cap = static_cast<std::size_t>(max->get<std::uint64_t>()) + 1;
    req.command = "exec tar -czf - -C '" + root + "' .";
    running_.emplace(mcp::id_key(id), std::make_pair(job_kind::export_archive, id));
  } else {
    const auto data = params.is_object() ? params.find("data") : json::const_iterator{};
    if (!params.is_object() || data == params.end() || !data->is_string() ||
        !core::base64_decode(data->get_ref<const std::string&>(), req.stdin_data) || req.stdin_data.empty() ||
        req.stdin_data.size() > max_workspace_archive_bytes) {
      a.lines.push_back(mcp::make_error(id, rpc::invalid_params, method + ": params.data must be a base64 tar.gz"));
      return a;
    }
    req.output_cap = 4096;
    req.command = "exec tar -xzf - -C '" + root + "'";
    running_.emplace(mcp::id_key(id), std::make_pair(job_kind::import_archive, id));
  }
  a.start = std::move(req);
  return a;
}

std::string server_fsm::on_command_finished(const json& id, const command_result& r) {
  const auto key = mcp::id_key(id);
  const auto it = running_.find(key);
  const job_kind kind = it == running_.end() ? job_kind::tool : it->second.first;
  if (it != running_.end()) running_.erase(it);
  if (cancelled_.erase(key) != 0) return {};
  if (kind == job_kind::tool) return mcp::make_result(id, command_tool_result(r, opts_.output_cap));
  const bool ok = r.spawn_error.empty() && !r.timed_out && r.signal == 0 && r.exit_code == 0;
  if (!ok) {
    std::string why = !r.spawn_error.empty() ? r.spawn_error
                      : r.timed_out           ? "timed out"
                      : r.signal != 0         ? "killed by signal " + std::to_string(r.signal)
                                              : "tar exited with " + std::to_string(r.exit_code);
    if (!r.stderr_text.empty()) why += ": " + r.stderr_text.substr(0, 300);
    return mcp::make_error(id, control_error::archive_failed, "workspace archive failed: " + why);
  }
  if (kind == job_kind::import_archive) return mcp::make_result(id, json{{"ok", true}});
  if (r.stdout_truncated) {
    // Never cut: an archive over the cap is reported with its real size, and nothing is saved.
    return mcp::make_result(id, json{{"tooLarge", true}, {"bytes", r.stdout_total}});
  }
  return mcp::make_result(id, json{{"tooLarge", false}, {"bytes", r.stdout_text.size()},
                                   {"data", core::base64_encode(r.stdout_text)}});
}

std::vector<std::string> server_fsm::on_reset_done(const json& id, const scrub_report& report) {
  std::vector<std::string> lines;
  for (const auto& [key, job] : running_)
    if (cancelled_.count(key) == 0)
      lines.push_back(mcp::make_error(job.second, control_error::cancelled_by_reset,
                                      "request cancelled: the sandbox was reset for another session"));
  running_.clear();
  cancelled_.clear();
  json summary{{"processesKilled", report.processes_killed}, {"killRounds", report.kill_rounds},
               {"entriesRemoved", report.entries_removed}, {"ipcRemoved", report.ipc_removed},
               {"durationMs", report.duration.count()}};
  if (report.clean()) {
    summary["clean"] = true;
    lines.push_back(mcp::make_result(id, summary));
  } else {
    std::string why;
    for (const auto& p : report.problems) why += (why.empty() ? "" : "; ") + p;
    lines.push_back(mcp::make_error(id, control_error::scrub_failed, "sandbox not clean: " + why, summary));
  }
  return lines;
}

}  // namespace berth::sandbox
