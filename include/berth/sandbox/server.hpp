#pragma once
// The MCP server of berth-sandbox as a sans-I/O state machine: JSON-RPC lines in, lines to write
// and command start/cancel actions out. File tools run synchronously inside on_line (they are
// local and bounded); run_command is handed to the caller (the process shell in main) which
// reports its outcome through on_command_finished. A bad line never stops the server: it gets a
// JSON-RPC error (-32700 / -32600 / -32601 / -32602) or a tool result with isError.
// Lifetime: one per stdio session. Thread-safety: none (single-threaded loop).
#include <chrono>
#include <cstddef>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "berth/sandbox/workspace.hpp"

namespace berth::sandbox {

inline constexpr std::string_view latest_protocol_version = "2025-06-18";

// Berth's own requests on the same JSON-RPC channel (never listed as tools, so the model cannot
// call them): the gateway scrubs a container between two users and saves/restores /workspace.
inline constexpr std::string_view method_reset = "berth/reset";
inline constexpr std::string_view method_export = "berth/workspace.export";  // {maxBytes} -> tar.gz
inline constexpr std::string_view method_import = "berth/workspace.import";  // {data} base64 tar.gz
inline constexpr std::size_t max_workspace_archive_bytes = 64u * 1024u * 1024u;
// JSON-RPC error codes of those requests (server-defined range).
namespace control_error {
inline constexpr int scrub_failed = -32010;
inline constexpr int archive_failed = -32011;
inline constexpr int cancelled_by_reset = -32800;
}  // namespace control_error
// Answer the client's version when supported, else the latest.
std::string negotiate_protocol_version(std::string_view requested);

struct server_options {
  std::chrono::milliseconds default_timeout{30000};
  std::chrono::milliseconds max_timeout{600000};
  std::size_t output_cap = 256u * 1024u;  // per stream (stdout, stderr) of run_command
  std::size_t max_command_bytes = 64u * 1024u;
  std::size_t max_running_commands = 4;
  std::string server_name = "berth-sandbox";
  std::string server_version = "0.1.0";
};

// What the shell must start: a run_command call, or the tar of a workspace export/import.
struct command_request {
  nlohmann::json id;  // the JSON-RPC request id
  std::string command;
  std::chrono::milliseconds timeout{30000};
  std::size_t output_cap = 0;
  std::string stdin_data;  // written to the command's stdin (empty: /dev/null)
};

// What happened to it.
struct command_result {
  int exit_code = -1;  // valid when signal == 0 and spawn_error empty
  int signal = 0;      // terminating signal, 0 if it exited
  bool timed_out = false;
  std::string stdout_text, stderr_text;
  bool stdout_truncated = false, stderr_truncated = false;
  std::size_t stdout_total = 0;  // bytes the command wrote to stdout, including what the cap dropped
  std::chrono::milliseconds duration{0};
  std::string spawn_error;  // non-empty: it never ran
};

// What a berth/reset did. Any problem means the container is not known to be clean: the gateway
// destroys it instead of handing it to the next user.
struct scrub_report {
  std::size_t processes_killed = 0;
  std::size_t kill_rounds = 0;
  std::size_t entries_removed = 0;
  std::size_t ipc_removed = 0;
  std::chrono::milliseconds duration{0};
  std::vector<std::string> problems;
  bool clean() const noexcept { return problems.empty(); }
};

// The MCP tool result for a finished command ({content, structuredContent, isError}).
nlohmann::json command_tool_result(const command_result& r, std::size_t output_cap);

class server_fsm {
 public:
  struct actions {
    std::vector<std::string> lines;          // to write to stdout, in order
    std::optional<command_request> start;    // start this command
    std::optional<nlohmann::json> cancel;    // kill the command of this request id
    std::optional<nlohmann::json> reset;     // kill every command, scrub, then on_reset_done(id)
  };

  server_fsm(workspace ws, server_options opts);

  actions on_line(std::string_view line);
  // A line over the framer's limit was dropped.
  actions on_line_too_long(std::size_t bytes);
  // Returns the response line, or "" when the request was cancelled (MCP: no response then).
  std::string on_command_finished(const nlohmann::json& id, const command_result& r);
  // The reset's answer, plus an error answer for every request its kill cut short (the shell
  // drops those commands without on_command_finished). Forgets every running command.
  std::vector<std::string> on_reset_done(const nlohmann::json& id, const scrub_report& report);

  bool initialized() const noexcept { return initialized_; }
  const std::string& protocol_version() const noexcept { return protocol_version_; }
  std::size_t running_commands() const noexcept { return running_.size(); }
  std::size_t running_tools() const noexcept;
  static nlohmann::json tool_list();

 private:
  actions on_request(const nlohmann::json& id, const std::string& method, const nlohmann::json& params);
  void on_notification(const std::string& method, const nlohmann::json& params, actions& out);
  actions call_tool(const nlohmann::json& id, const nlohmann::json& params);
  actions start_archive(const nlohmann::json& id, const std::string& method, const nlohmann::json& params);
  enum class job_kind { tool, export_archive, import_archive };
  static constexpr std::chrono::milliseconds archive_timeout{120000};

  workspace ws_;
  server_options opts_;
  bool initialize_seen_ = false;
  bool initialized_ = false;
  std::string protocol_version_;
  std::map<std::string, std::pair<job_kind, nlohmann::json>> running_;  // id_key -> kind, request id
  std::set<std::string> cancelled_;  // id_key of running commands that were cancelled
};

}  // namespace berth::sandbox
