#pragma once
// Docker Engine API, pure part: version negotiation, request builders (the hardened container
// spec from core::config), response mapping and the status table for idempotent outcomes.
// No sockets, no Asio: everything here is unit-tested with literal JSON.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "berth/core/config.hpp"
#include "berth/core/errors.hpp"

namespace berth::docker {

struct api_version {
  unsigned major = 1;
  unsigned minor = 0;
  auto operator<=>(const api_version&) const = default;
  std::string to_string() const;  // "1.41"
};

// "1.41" -> {1,41}; anything else (empty, "v1.41", "1.x") -> nullopt.
std::optional<api_version> parse_api_version(std::string_view s);

// The range of API versions this client speaks (the builders below are valid across it).
inline constexpr api_version client_min_version{1, 24};
inline constexpr api_version client_max_version{1, 45};

// Picks the version to talk: min(daemon's ApiVersion, client max), refused when below the
// daemon's MinAPIVersion or the client min. daemon_min may be empty (old daemons omit it).
core::result<api_version> negotiate_version(std::string_view daemon_api, std::string_view daemon_min);

// ---- request builders ----------------------------------------------------------------------

// Inside a sandbox two uids matter. berth-sandbox (the MCP server, and the container's init) runs
// as root with CAP_SETUID, CAP_SETGID and CAP_KILL only; everything the user or the model runs
// runs as the user, the owner of /workspace, with no capability: it cannot signal, trace or
// write into the server, and the server can kill all of it between two users (docs/SANDBOX.md).
inline constexpr std::string_view sandbox_server_user = "0:0";
inline constexpr std::string_view sandbox_user = "1000:1000";

// The sandbox MCP server, and the container's main process that runs it on the container's stdio
// (berth-sandbox supervise restarts it if it dies): the gateway attaches to the container rather
// than exec'ing the server, which cost dockerd an exec per container and 12 descriptors per sandbox
// instead of 7.
std::vector<std::string> sandbox_server_command();
std::vector<std::string> sandbox_main_command();

// Everything create needs; hardened_spec() fills it from config so hardening is server-side only.
struct container_spec {
  std::string image;
  std::string name;  // empty: the daemon picks one
  std::vector<std::string> cmd;  // empty: the image's CMD
  bool open_stdin = false;       // the main process reads stdin, reached by attach (sandbox_main_command)
  bool docker_init = true;       // HostConfig.Init: Docker's tini as PID 1, reaping orphans
  std::string user{sandbox_server_user};
  std::vector<std::string> cap_add = {"SETUID", "SETGID", "KILL"};  // on top of CapDrop ALL
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> env;
  std::uint64_t memory_bytes = 0;
  std::int64_t nano_cpus = 0;
  std::int64_t pids_limit = 0;
  std::string network_mode = "none";
  std::string runtime;  // HostConfig.Runtime (SANDBOX_RUNTIME); empty: the daemon's default
  std::string tmp_size = "64m";
  std::string workspace_size = "256m";
  std::string workspace_owner = "1000";  // uid=gid of the tmpfs mounted on /workspace
};

// The pool's sandbox shape: sandbox_main_command as the container's main process and PID 1 (the
// supervisor reaps orphans itself, so no Docker init: one process less per sandbox), stdin open.
void make_sandbox_server_main(container_spec& spec);

// Labels of ARCHITECTURE.md: berth.managed=true, berth.replica=<id>, berth.pool=<name>.
std::map<std::string, std::string> pool_labels(std::string_view replica, std::string_view pool);

// The hardened spec: CapDrop ALL but the three the server needs, no-new-privileges, limits,
// network mode, Init, read-only rootfs with size-capped tmpfs /tmp and a /workspace tmpfs owned by
// the user.
container_spec hardened_spec(const core::config& cfg, std::string_view pool_name);

// The JSON body of POST /containers/create.
nlohmann::json create_body(const container_spec& spec);

// Body of POST /containers/{id}/exec.
struct exec_spec {
  std::vector<std::string> cmd;
  bool attach_stdin = true;
  std::string user;  // empty: the container's user
  std::string working_dir;
  std::map<std::string, std::string> env;
};
nlohmann::json exec_body(const exec_spec& spec);

// Percent-encodes for a query component (RFC 3986 unreserved kept).
std::string url_encode(std::string_view s);
// `filters=` value for label filters (and optional extra filter keys), already url-encoded.
std::string label_filters(const std::map<std::string, std::string>& labels,
                          const std::map<std::string, std::vector<std::string>>& extra = {});
// "/v1.41" + path; a path with a query keeps it.
std::string versioned(const api_version& v, std::string_view path);

// ---- responses ----------------------------------------------------------------------------

struct version_info {
  std::string api_version;
  std::string min_api_version;
  std::string engine_version;
  std::string os;
  std::string arch;
};
core::result<version_info> parse_version(std::string_view body);

struct container_info {
  std::string id;
  std::string name;
  std::string image;
  std::string state;  // created|running|paused|restarting|removing|exited|dead
  bool running = false;
  int exit_code = 0;
  bool oom_killed = false;  // the kernel's OOM killer ended it (State.OOMKilled)
  std::int64_t created = 0;  // unix seconds (list only; 0 when unknown)
  std::map<std::string, std::string> labels;
  nlohmann::json raw;  // the whole inspect document (for hardening checks)
};
// GET /containers/{id}/json
core::result<container_info> parse_inspect(std::string_view body);
// GET /containers/json (fields Id, Names, Image, State, Labels)
core::result<std::vector<container_info>> parse_list(std::string_view body);
// POST /containers/create -> Id (+ Warnings)
core::result<std::string> parse_created_id(std::string_view body);

struct exec_info {
  bool running = false;
  std::optional<int> exit_code;
  std::int64_t pid = 0;
};
core::result<exec_info> parse_exec_inspect(std::string_view body);

struct wait_result {
  int status_code = 0;
  std::string error;
};
core::result<wait_result> parse_wait(std::string_view body);

// One line of GET /events.
struct docker_event {
  std::string type;    // container, image, ...
  std::string action;  // die, destroy, start, oom, kill, ...
  std::string id;
  std::map<std::string, std::string> attributes;
  std::int64_t time_nano = 0;
};
core::result<docker_event> parse_event(std::string_view line);

// The daemon's error text ({"message": "..."}) or a prefix of the body.
std::string daemon_message(std::string_view body);

// Idempotent outcomes: which statuses count as success for an operation.
enum class op { start, stop, kill, remove, other };
bool is_success(op o, unsigned status) noexcept;

}  // namespace berth::docker

namespace berth::docker {
// DOCKER_HOST "unix:///var/run/docker.sock" (or a bare absolute path) -> the socket path.
// tcp:// and others are refused with a message naming the value.
core::result<std::string> socket_path_from_host(std::string_view docker_host);
}  // namespace berth::docker
