#pragma once
// One MCP stdio session inside a user's container, driven by the sans-I/O client_fsm over
// JSON-RPC lines on a process's stdin/stdout. The process is reached in one of two ways:
// - attach: the container's main process (berth-sandbox supervise running the sandbox server,
//   docker::sandbox_main_command); the session attaches to it, and re-attaches on the next call
//   if the stream breaks or the server was restarted. No exec: dockerd keeps 7 descriptors per
//   sandbox instead of 12 and spends no exec on a container;
// - exec: a long-lived `docker exec` of `command` (extra stdio-docker servers of mcp-config.json),
//   restarted on the next call if it dies. Lifetime: shared_ptr, kept by the user's
// session; close() ends the exec. Thread-safety: the state lives on the executor given (a strand);
// open(), ensure_open(), call_tool() and close() may be called from any executor (they hop), so a
// session opened by the pool for an idle container can be handed to a user's socket.
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/mcp/client_fsm.hpp"

namespace berth::mcp {

// Lets the caller of a tool call stop it, from any thread: the MCP session sends
// notifications/cancelled for the request (berth-sandbox then kills the command's process
// group) and the call returns at once with TOOL_FAILED "cancelled". A request made before the
// call reached the server is kept and applied as soon as it does. One per call.
class call_cancel {
 public:
  void request();
  bool requested() const;

 private:
  friend class stdio_session;
  void bind(std::function<void()> fn);  // runs fn at once when already requested
  void unbind();
  mutable std::mutex mutex_;
  bool requested_ = false;
  std::function<void()> on_request_;
};

enum class stdio_transport { exec, attach };

class stdio_session : public std::enable_shared_from_this<stdio_session> {
 public:
  using executor_type = boost::asio::any_io_executor;

  // `command`: what exec runs (unused by attach).
  stdio_session(executor_type ex, docker::client& docker, std::string container_id, std::vector<std::string> command,
                core::metrics& metrics, stdio_transport transport = stdio_transport::exec);
  ~stdio_session();

  // Starts the exec (or attaches), runs initialize + tools/list. SANDBOX_UNAVAILABLE when the container or the
  // sandbox server cannot be reached.
  boost::asio::awaitable<core::result<std::vector<tool_descriptor>>> open(std::chrono::milliseconds timeout);
  // The tools of the running exec, or open() when there is none (never started, or it died).
  boost::asio::awaitable<core::result<std::vector<tool_descriptor>>> ensure_open(std::chrono::milliseconds timeout);
  // tools/call with a deadline: TOOL_TIMEOUT (and the call is cancelled) or the outcome;
  // SANDBOX_UNAVAILABLE at once when the exec's stream breaks (the server exits, dockerd drops the
  // connection). `cancel` (optional) stops it earlier.
  boost::asio::awaitable<core::result<tool_call_outcome>> call_tool(std::string name, nlohmann::json args,
                                                                    std::chrono::milliseconds timeout,
                                                                    std::shared_ptr<call_cancel> cancel = nullptr);
  // Any other request of the running server, e.g. berth/reset (an exec is not restarted for it:
  // a dead exec is an error; an attach is opened again).
  // The JSON-RPC error's code and message come back as SANDBOX_UNAVAILABLE errors.
  boost::asio::awaitable<core::result<nlohmann::json>> request(std::string method, nlohmann::json params,
                                                               std::chrono::milliseconds timeout);
  void close();
  // Environment of the exec (extra stdio-docker servers from mcp-config.json); before open().
  void set_env(std::map<std::string, std::string> env) { env_ = std::move(env); }
  // The uid:gid the exec runs as (docker::sandbox_server_user or docker::sandbox_user); before open().
  void set_user(std::string user) { user_ = std::move(user); }
  const std::string& container_id() const noexcept { return container_id_; }

 private:
  using tools_result = core::result<std::vector<tool_descriptor>>;
  // The bodies of the public calls, on ex_.
  static boost::asio::awaitable<tools_result> open_here(std::shared_ptr<stdio_session> self, std::chrono::milliseconds timeout,
                                                        bool reuse_running);
  static boost::asio::awaitable<core::result<nlohmann::json>> request_here(std::shared_ptr<stdio_session> self,
                                                                           std::string method, nlohmann::json params,
                                                                           std::chrono::milliseconds timeout);
  static boost::asio::awaitable<core::result<tool_call_outcome>> call_here(std::shared_ptr<stdio_session> self,
                                                                           std::string name, nlohmann::json args,
                                                                           std::chrono::milliseconds timeout,
                                                                           std::shared_ptr<call_cancel> cancel);
  // On ex_: cancels a pending request (notifications/cancelled) and wakes its waiter.
  void cancel_request(std::uint64_t id, std::uint64_t generation);
  static boost::asio::awaitable<void> flush_owned(std::shared_ptr<stdio_session> self);
  void close_here();
  boost::asio::awaitable<tools_result> start_exec(std::chrono::milliseconds timeout);
  boost::asio::awaitable<core::result<docker::exec_stream>> open_stream();
  struct waiter {
    std::shared_ptr<boost::asio::steady_timer> wake;
    std::optional<client_event> event;
    bool woken = false;  // its event came, or the session closed (possibly before the wait began)
  };
  static boost::asio::awaitable<void> read_loop(std::shared_ptr<stdio_session> self, std::uint64_t generation);
  static boost::asio::awaitable<void> timer_loop(std::shared_ptr<stdio_session> self, std::uint64_t generation);
  boost::asio::awaitable<void> flush();
  // Writes what the state machine queued, without waiting for the write: a daemon connection
  // that takes no more bytes must not hold a caller past its deadline, nor the read loop.
  void start_flush();
  // Registers the wait for request `id`; call it before the request's bytes are written. Whatever
  // ends a request (its answer, its deadline, the stream closing) may come while the write is
  // under way, and an event nobody waits for yet is dropped: such a caller used to wait forever.
  std::shared_ptr<waiter> expect(std::uint64_t id);
  boost::asio::awaitable<std::optional<client_event>> wait_for(std::uint64_t id, std::shared_ptr<waiter> w);
  void dispatch_events();

  executor_type ex_;
  docker::client& docker_;
  std::string container_id_;
  std::vector<std::string> command_;
  stdio_transport transport_;
  std::map<std::string, std::string> env_;
  std::string user_;
  std::unique_ptr<client_fsm> fsm_;
  std::shared_ptr<docker::exec_stream> stream_;
  boost::asio::steady_timer timer_;
  std::map<std::uint64_t, std::shared_ptr<waiter>> waiters_;
  std::vector<tool_descriptor> tools_;
  std::uint64_t generation_ = 0;  // bumps on every (re)start: stale loops stop
  std::uint64_t next_request_id_ = 1;  // carried from one client_fsm to the next (attach)
  bool writing_ = false;
  // Output batches handed to the stream (numbered from 1), and the last one whose write
  // completed: a request queued when writes_taken_ was n is written once last_written_batch_ > n.
  std::uint64_t writes_taken_ = 0;
  std::uint64_t last_written_batch_ = 0;
  core::counter& restarts_;
  core::counter& protocol_errors_;
};

// The session with a pooled container's sandbox server: an attach to its main process
// (docker::sandbox_main_command), which runs as root with three capabilities and runs the user's
// commands and file tools as docker::sandbox_user.
inline std::shared_ptr<stdio_session> sandbox_server_session(stdio_session::executor_type ex, docker::client& docker,
                                                             std::string container_id, core::metrics& metrics) {
  return std::make_shared<stdio_session>(std::move(ex), docker, std::move(container_id), std::vector<std::string>{},
                                         metrics, stdio_transport::attach);
}

}  // namespace berth::mcp
