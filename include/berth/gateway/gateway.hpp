#pragma once
// The Berth protocol (docs/PROTOCOL.md) on the Socket.IO "/" namespace: authentication, session
// identity and the per-address cap in the connection middleware; one user_session per socket
// (src/gateway/user_session.*) does the rest. The gateway also installs the pool's hooks: the
// sandbox MCP server opened while a container is idle, and the scrub (berth/reset) that lets a
// released container serve the next user.
// Lifetime: built once by the app, outlives every socket. Thread-safety: each user session runs
// on its socket's strand; the registries of connected and parked sessions take a mutex.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <chrono>

#include <boost/asio/awaitable.hpp>

#include "berth/core/config.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/gateway/history_mapping.hpp"
#include "berth/llm/provider.hpp"
#include "berth/mcp/config.hpp"
#include "berth/pool/container_pool.hpp"
#include "berth/session/history.hpp"
#include "berth/session/limiter.hpp"
#include "berth/session/store.hpp"
#include "berth/socketio/server.hpp"

namespace berth::gateway {

class user_session;
class parked_sessions;
struct gateway_counters;
struct session_services;
struct user_event_budget;

using provider_factory =
    std::function<core::result<std::unique_ptr<llm::llm_provider>>(std::optional<std::string> user_api_key)>;

struct gateway_deps {
  const core::config& cfg;
  core::metrics& metrics;
  docker::client& docker;
  pool::container_pool& pool;
  session::session_store& sessions;
  session::history_store& history;
  session::user_limiter& limiter;
  session::llm_token_budget& llm_budget;  // LLM_TOKENS_PER_USER_PER_MINUTE
  provider_factory make_provider;
  // Enabled servers of mcp-config.json (MCP_CONFIG_FILE), opened for every session after the sandbox.
  std::vector<mcp::server_config> extra_mcp_servers = {};
};

class gateway {
 public:
  explicit gateway(gateway_deps deps);
  ~gateway();
  void attach(socketio::namespace_& nsp);
  // Session ids with a live socket on this replica (the janitor leaves them alone).
  std::vector<std::string> connected_sessions() const;
  // The janitor ended an abandoned session: destroy its container (one no pool holds any more).
  boost::asio::awaitable<void> on_session_reaped(session::session_record rec);
  // Graceful shutdown, before the sockets close: every session that loses its socket from now on
  // hibernates at once instead of after its grace.
  void drain();
  // Then, once the sockets are closed: parked sessions hibernate now, and this waits (bounded by
  // `limit`) until none is left; returns how many did not finish.
  boost::asio::awaitable<std::size_t> hibernate_parked(std::chrono::milliseconds limit);
  std::size_t parked_count() const;

 private:
  static boost::asio::awaitable<std::optional<socketio::connect_error>> authenticate(
      gateway* self, std::shared_ptr<socketio::socket> sock);
  void on_connection(std::shared_ptr<socketio::socket> sock);
  void recovered_session(const std::shared_ptr<socketio::socket>& sock);
  void register_session(const std::string& sid, std::shared_ptr<user_session> s);
  void unregister_session(const std::string& sid, const user_session* s);

  gateway_deps deps_;
  std::unique_ptr<gateway_counters> counters_;
  std::shared_ptr<parked_sessions> parked_;  // shared: the pool's on_starved hook holds it weakly
  std::unique_ptr<session_services> services_;
  std::unique_ptr<user_event_budget> user_events_;
  mutable std::mutex mutex_;
  std::map<std::string, std::weak_ptr<user_session>> connected_;
  core::counter& rejected_connects_;
};

}  // namespace berth::gateway
