#pragma once
// Docker Engine API client over the daemon's unix socket (HTTP/1.1, Beast).
// - Ordinary calls share a bounded set of keep-alive connections (options.max_connections; a call
//   beyond that waits for a free one within its deadline). Each call has a deadline: on expiry
//   the connection is closed and the call fails with a clear message.
// - The API version is negotiated from /_ping + /version (negotiate(); every call negotiates
//   lazily if needed), never hard-coded: min(daemon's ApiVersion, client max), refused below
//   the daemon's minimum.
// - Hijacked exec streams and the /events stream use their own connection each (not counted).
// - Idempotent outcomes are successes: 304 on start/stop, 404 on remove/kill, 409 "not running"
//   on kill; any other error carries the daemon's message (errc::sandbox_unavailable).
// Lifetime: must outlive its calls and streams' pending operations. Thread-safety: calls may be
// made concurrently from coroutines of one io_context; the shared state is mutex-protected, but
// each connection/stream must only be used by one coroutine at a time (run on one thread or
// strand when THREADS>1).
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/api.hpp"
#include "berth/docker/stream_demux.hpp"

namespace berth::docker {

struct client_options {
  std::string socket_path = "/var/run/docker.sock";
  std::size_t max_connections = 8;                   // keep-alive connections for ordinary calls
  std::chrono::milliseconds call_timeout{30000};     // connect .. last byte, per call
  std::chrono::milliseconds stop_grace{2000};        // extra deadline on top of stop's timeout
  std::size_t max_body_bytes = 16 * 1024 * 1024;     // response body cap
  std::size_t max_event_line = 64 * 1024;            // one /events line
};

// From config: the socket path of DOCKER_HOST plus defaults. Fails on a non-unix DOCKER_HOST.
core::result<client_options> options_from_config(const core::config& cfg);

struct http_reply {
  unsigned status = 0;
  std::string body;
};

class client;

// A hijacked exec (or attach) stream: stdin out, demultiplexed stdout/stderr in. Movable handle; closing (or
// destroying) it closes the connection, which ends the exec's stdin. One reader and one writer
// at a time.
class exec_stream {
 public:
  exec_stream() = default;
  exec_stream(exec_stream&&) noexcept = default;
  exec_stream& operator=(exec_stream&&) noexcept = default;
  ~exec_stream();

  const std::string& exec_id() const noexcept;
  bool is_open() const noexcept;
  // Writes all of `data` to the process's stdin.
  boost::asio::awaitable<core::result<void>> write(std::string data);
  // Next stdout/stderr chunk; nullopt at the end of the stream (the process closed its output).
  // timeout <= 0: no deadline (cancel with close()); on expiry the stream is closed.
  boost::asio::awaitable<core::result<std::optional<stream_chunk>>> read(
      std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  // Half-close: the process sees EOF on stdin; output can still be read.
  core::result<void> close_write();
  void close();

  struct impl;
  explicit exec_stream(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

 private:
  std::shared_ptr<impl> impl_;
};

// GET /events as a stream of parsed events. Movable handle; close() ends it.
class event_stream {
 public:
  event_stream() = default;
  event_stream(event_stream&&) noexcept = default;
  event_stream& operator=(event_stream&&) noexcept = default;
  ~event_stream();

  // Next event; an error when the daemon closes the stream or the connection fails (reconnect
  // is the caller's policy). Unreadable lines are skipped and counted.
  boost::asio::awaitable<core::result<docker_event>> next();
  void close();

  struct impl;
  explicit event_stream(std::shared_ptr<impl> p) : impl_(std::move(p)) {}

 private:
  std::shared_ptr<impl> impl_;
};

// Result of exec_run: a whole command's output and exit code.
struct exec_output {
  std::string out;
  std::string err;
  int exit_code = -1;
};

class client {
 public:
  client(boost::asio::any_io_executor ex, client_options opts, core::metrics& metrics);
  ~client();
  client(const client&) = delete;
  client& operator=(const client&) = delete;

  const client_options& options() const noexcept { return opts_; }
  boost::asio::any_io_executor get_executor() const { return ex_; }

  // /_ping then /version, negotiate; stores the version for later calls.
  boost::asio::awaitable<core::result<api_version>> negotiate();
  std::optional<api_version> negotiated() const;

  boost::asio::awaitable<core::result<void>> ping();
  boost::asio::awaitable<core::result<version_info>> version();
  boost::asio::awaitable<core::result<nlohmann::json>> image_inspect(std::string image);

  // POST /containers/create (+ name); returns the id.
  boost::asio::awaitable<core::result<std::string>> create_container(container_spec spec);
  boost::asio::awaitable<core::result<void>> start_container(std::string id);
  boost::asio::awaitable<core::result<void>> stop_container(std::string id, int timeout_s = 2);
  boost::asio::awaitable<core::result<void>> kill_container(std::string id, std::string signal = "KILL");
  // DELETE with force=true&v=true (anonymous volumes go too).
  boost::asio::awaitable<core::result<void>> remove_container(std::string id, bool force = true);
  boost::asio::awaitable<core::result<container_info>> inspect_container(std::string id);
  // The same, with a container that does not exist (404) as nullopt rather than an error.
  boost::asio::awaitable<core::result<std::optional<container_info>>> find_container(std::string id);
  // GET /containers/json?all=..&filters={"label":[...]}.
  boost::asio::awaitable<core::result<std::vector<container_info>>> list_containers(
      std::map<std::string, std::string> labels, bool all = true);
  // POST /containers/{id}/wait?condition=... within `timeout`.
  boost::asio::awaitable<core::result<wait_result>> wait_container(
      std::string id, std::chrono::milliseconds timeout, std::string condition = "not-running");

  boost::asio::awaitable<core::result<std::string>> exec_create(std::string container_id, exec_spec spec);
  // POST /exec/{id}/start hijacked (Connection: Upgrade, Upgrade: tcp).
  boost::asio::awaitable<core::result<exec_stream>> exec_start(std::string exec_id);
  // POST /containers/{id}/attach hijacked: the container's main process's stdin out, its
  // stdout/stderr in (the container was created with open_stdin). Closing the stream detaches;
  // the process runs on.
  boost::asio::awaitable<core::result<exec_stream>> attach(std::string container_id);
  boost::asio::awaitable<core::result<exec_info>> exec_inspect(std::string exec_id);
  // create + start + write stdin + close-write + read all (bounded by max_body_bytes) + exit code.
  // `user` ("uid:gid"): empty runs as the container's user.
  boost::asio::awaitable<core::result<exec_output>> exec_run(std::string container_id, std::vector<std::string> cmd,
                                                             std::string stdin_data,
                                                             std::chrono::milliseconds timeout,
                                                             std::string user = {});

  // GET /events?filters={"type":["container"],"label":[...]}.
  boost::asio::awaitable<core::result<event_stream>> events(std::map<std::string, std::string> labels);

  // Low level: one request on a pooled keep-alive connection; path is unversioned ("/containers/json").
  boost::asio::awaitable<core::result<http_reply>> request(std::string method, std::string path, std::string body,
                                                           std::chrono::milliseconds timeout);

  struct connection;
  struct shared;

 private:
  boost::asio::awaitable<core::result<api_version>> ensure_version();
  // POST `path` with Connection: Upgrade, then the raw multiplexed stream; `what` names the call
  // in errors, `id` is the stream's exec_id().
  boost::asio::awaitable<core::result<exec_stream>> hijack(std::string path, std::string body, std::string what,
                                                           std::string id);
  boost::asio::awaitable<core::result<http_reply>> call(std::string method, std::string path, std::string body,
                                                        std::chrono::milliseconds timeout, bool versioned_path);

  boost::asio::any_io_executor ex_;
  client_options opts_;
  core::metrics& metrics_;
  std::shared_ptr<shared> shared_;
};

}  // namespace berth::docker
