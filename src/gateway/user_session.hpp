#pragma once
// One user's session on this replica, from CONNECT to hibernation or session:end. Provisioning
// reads as the protocol does: lease a container, write the session record, system:ready, open the
// tools, restore a hibernated workspace; then the turn loop (agent::turn_fsm) for message,
// tool:approval and history:reset, with the per-user limiter in front of every request.
// Its container's life: on session:end it goes back to the pool (scrubbed) at once; when the
// socket goes, the session parks on this replica for SESSION_DETACH_GRACE_MS (a reconnect here
// takes it back with its container and MCP server, without a Docker call), then hibernates: the
// workspace is saved in Redis and the container goes back to the pool.
// Lifetime: shared_ptr, held by its socket (user_data) and by parked_sessions while parked; its
// coroutines hold it too. Thread-safety: lives on its socket's strand (event handlers, the
// provisioning and hibernation coroutines); only start()/on_disconnect() hop onto it.
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "berth/agent/delta_coalescer.hpp"
#include "berth/agent/turn_fsm.hpp"
#include "berth/core/config.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/gateway/gateway.hpp"
#include "berth/mcp/router.hpp"
#include "berth/mcp/stdio_session.hpp"
#include "berth/pool/container_pool.hpp"
#include "berth/session/history.hpp"
#include "berth/session/limiter.hpp"
#include "berth/session/store.hpp"
#include "berth/socketio/server.hpp"

namespace berth::gateway {

class user_session;

// Sessions this replica holds without a socket, until their grace ends (then they hibernate).
class parked_sessions {
 public:
  void park(const std::shared_ptr<user_session>& s);
  // The parked session of `sid`, now the caller's; nullptr when none is parked (or it already
  // started to hibernate: the caller then waits for the session lock and finds it hibernated).
  std::shared_ptr<user_session> unpark(const std::string& sid);
  // The grace of `s` ended: true when it was still parked; it then counts as hibernating until done().
  bool leave(const user_session* s);
  void done();
  std::size_t size() const;
  // Parked, hibernating, or between disconnect and parking: what a graceful shutdown waits for.
  std::size_t busy() const;
  void settling(bool begins);
  // From here on (graceful shutdown) a session parks with no grace: it hibernates at once.
  void drain() { draining_ = true; }
  bool draining() const noexcept { return draining_; }
  std::vector<std::shared_ptr<user_session>> all() const;
  // The longest-parked session not already picked, marked as picked: the pool has a user waiting
  // with no container to give, and this one's grace ends now (hibernate_now) so its container
  // goes back. nullptr when none is left to pick.
  std::shared_ptr<user_session> pick_to_yield();

 private:
  struct entry {
    std::shared_ptr<user_session> session;
    std::uint64_t order = 0;  // when it parked, in park() calls
    bool yielding = false;    // picked by pick_to_yield()
  };
  mutable std::mutex mutex_;
  std::map<std::string, entry> parked_;
  std::uint64_t parks_ = 0;
  std::size_t hibernating_ = 0;
  std::size_t settling_ = 0;
  std::atomic<bool> draining_{false};
};

struct gateway_counters {
  core::counter& too_many;
  core::counter& invalid_payloads;
  core::counter& provision_failures;
  core::counter& containers_replaced;
  core::counter& dead_containers_replaced;
  core::counter& hibernated;
  core::counter& hibernate_failures;
  core::counter& workspace_too_large;
  core::counter& restored;
  core::counter& restore_failures;
  core::counter& resumed_parked;
  core::counter& turn_deadlines;
  core::counter& history_not_saved;
  explicit gateway_counters(core::metrics& m);
};

// What a user session may use of the replica: the services, and nothing of the gateway.
struct session_services {
  const core::config& cfg;
  core::metrics& metrics;
  docker::client& docker;
  pool::container_pool& pool;
  session::session_store& sessions;
  session::history_store& history;
  session::user_limiter& limiter;
  session::llm_token_budget& llm_budget;
  const provider_factory& make_provider;
  const std::vector<mcp::server_config>& extra_mcp_servers;
  gateway_counters& counters;
  parked_sessions& parked;
};

// Who the middleware decided is connecting.
struct session_identity {
  std::string sid;
  std::string user;
  std::optional<std::string> api_key;
  std::string address;  // counted against MAX_SESSIONS_PER_ADDRESS; "" when not counted
  bool known = false;   // the session existed in Redis when the socket connected
  // A recovered socket (connection state recovery): the client kept its state, so no
  // system:ready and no new resume token; the session is taken back as a resume is.
  bool recovered = false;
};

class user_session : public std::enable_shared_from_this<user_session> {
 public:
  using ack_fn = socketio::socket::ack_fn;

  user_session(session_services& svc, const std::shared_ptr<socketio::socket>& sock, session_identity who);

  const std::string& sid() const noexcept { return who_.sid; }
  const std::string& user() const noexcept { return who_.user; }
  std::shared_ptr<socketio::socket> socket() const { return sock_.lock(); }

  // After CONNECT: provisioning on the socket's strand.
  void start();
  // The socket is gone (any reason). Parks, hibernates or gives the container back. With a
  // recovery hold (the socket may be recovered) a turn in flight first runs to its end, its
  // events buffered for the client; the hold goes once the session is parked.
  void on_disconnect(std::string reason, std::shared_ptr<void> recovery_hold = nullptr);

  // One handler per client event (registered once per namespace by the gateway).
  void on_message(nlohmann::json args, ack_fn ack);
  void on_approval(nlohmann::json args, ack_fn ack);
  void on_history_reset(nlohmann::json args, ack_fn ack);
  void on_session_end(nlohmann::json args, ack_fn ack);
  // agent:cancel {turnId?}: stops the running (or a queued) turn; no limiter permit needed.
  void on_cancel(nlohmann::json args, ack_fn ack);
  void on_unknown(const std::string& event, nlohmann::json args, ack_fn ack);

  // The hibernation that parking leads to, at once (graceful shutdown).
  void hibernate_now();

 private:
  enum class input { message, approval, history_reset, session_end, cancel };
  struct pending_input {
    input kind;
    nlohmann::json args;
    ack_fn ack;
  };
  // What a reconnect on this replica takes over from the parked session.
  struct sandbox_hold {
    pool::container_lease lease;
    std::shared_ptr<mcp::router> mcp;
  };

  void emit(const std::string& event, const nlohmann::json& payload);
  void emit_error(const core::error& e);
  void reject(const core::error& e, ack_fn& ack);
  void accept(input kind, nlohmann::json args, ack_fn ack);
  void apply(std::vector<agent::action> actions);
  void fail_provisioning(const core::error& e);
  void park();
  // Gives the container back to the pool with its sandbox server, for the next user.
  void recycle_container();

  // Provisioning, in the protocol's order.
  static boost::asio::awaitable<void> provision(std::shared_ptr<user_session> self);
  static boost::asio::awaitable<core::result<void>> lease_step(std::shared_ptr<user_session> self,
                                                               std::optional<session::session_record> rec,
                                                               std::optional<std::string>& notice);
  static boost::asio::awaitable<sandbox_hold> hand_over(std::shared_ptr<user_session> parked);
  static boost::asio::awaitable<core::result<void>> record_step(std::shared_ptr<user_session> self,
                                                                const std::optional<session::session_record>& rec);
  // Opens the tools (the sandbox's server and the extra MCP servers). Returns the sandbox server's
  // failure, logged here, for the caller to tell (provisioning: agent:error; a recovery mid-turn:
  // the tool result).
  static boost::asio::awaitable<std::optional<core::error>> tools_step(std::shared_ptr<user_session> self,
                                                                       std::vector<mcp::tool_descriptor>& tools);
  static boost::asio::awaitable<std::optional<std::string>> restore_step(std::shared_ptr<user_session> self);

  static boost::asio::awaitable<void> handle(std::shared_ptr<user_session> self, input kind, nlohmann::json args,
                                             ack_fn ack);
  static boost::asio::awaitable<void> end_session(std::shared_ptr<user_session> self, ack_fn ack);
  static boost::asio::awaitable<void> run_llm(std::shared_ptr<user_session> self, agent::call_llm act);
  // Streaming and stopping (issue 16): deltas paced per socket, the LLM call and tool in flight.
  void cancel_turn(const nlohmann::json& payload, ack_fn ack);
  void on_llm_delta(std::string_view text);
  void send_delta(std::string text);
  void flush_deltas();
  void arm_delta_timer();
  void abort_llm();
  // The turn deadline's clock (agent::turn_clock), timed here; the machine decides what it means.
  void on_turn_clock(agent::turn_clock::change what);
  void arm_turn_deadline(std::chrono::steady_clock::duration remaining);
  static boost::asio::awaitable<void> run_tool(std::shared_ptr<user_session> self, agent::run_tool act);
  static boost::asio::awaitable<void> charge_tokens(std::shared_ptr<user_session> self, std::uint64_t tokens);
  static boost::asio::awaitable<std::optional<std::string>> recover_sandbox(std::shared_ptr<user_session> self);
  // What the turn tells the client waits behind the history writes before it (see outbox_).
  void send(std::string event, nlohmann::json payload);
  void start_outbox();
  static boost::asio::awaitable<void> drain_outbox(std::shared_ptr<user_session> self);
  static boost::asio::awaitable<void> after_disconnect(std::shared_ptr<user_session> self, std::string reason,
                                                       std::shared_ptr<void> recovery_hold);
  bool turn_in_flight() const;
  void close(std::string reason, std::shared_ptr<void> recovery_hold);
  static boost::asio::awaitable<void> settle_container(std::shared_ptr<user_session> self);
  static boost::asio::awaitable<void> grace(std::shared_ptr<user_session> self);
  static boost::asio::awaitable<void> hibernate(std::shared_ptr<user_session> self);

  session_services& svc_;
  std::weak_ptr<socketio::socket> sock_;
  engineio::strand_type strand_;
  session_identity who_;

  // The session's resources.
  pool::container_lease lease_;
  std::shared_ptr<mcp::router> mcp_;
  std::unique_ptr<llm::llm_provider> provider_;
  std::optional<agent::turn_fsm> fsm_;
  std::string resume_token_;
  bool recorded_ = false;  // the session record exists (created or resumed) with lease_'s container

  // Where it is in its life.
  bool ready_ = false;
  bool closed_ = false;  // the socket is gone
  bool ended_ = false;   // session:end
  // Disconnected with a turn in flight that runs on for the socket's recovery (see on_disconnect).
  std::shared_ptr<void> recovery_hold_;
  std::string detach_reason_;
  std::shared_ptr<pool::acquire_ticket> acquiring_;  // a queued acquire to cancel on disconnect
  std::unique_ptr<boost::asio::steady_timer> grace_timer_;

  // The turn loop's bookkeeping.
  ack_fn current_ack_;
  std::deque<pending_input> before_ready_;  // inputs that arrived before the tools were known
  std::deque<session::user_permit> turn_permits_;  // one per accepted message, released by end_turn
  // One per tool:approval whose step runs (released by end_step; the leases are alike, so which
  // one goes does not matter).
  std::deque<session::user_permit> step_permits_;
  // The turn's output in order: history entries are written to Redis before any event after them
  // is sent, so what a client has seen is in the history (a resume or another replica reads it).
  // A failed write is told (agent:error HISTORY_NOT_SAVED) before the events it held back.
  struct outbox_item {
    enum class kind { history, clear_history, event } what = kind::event;
    session::history_entry entry;
    std::string event;
    nlohmann::json payload;
  };
  std::deque<outbox_item> outbox_;
  bool outbox_draining_ = false;

  // Streaming and stopping (issue 16).
  agent::delta_coalescer deltas_;
  std::unique_ptr<boost::asio::steady_timer> delta_timer_;  // sends held delta text when due
  bool delta_timer_armed_ = false;
  std::string delta_turn_;           // the turn the deltas (held or sent) belong to
  std::uint64_t delta_index_ = 0;    // agent:delta index within delta_turn_
  std::uint64_t llm_epoch_ = 0;      // bumps per LLM call and per abort: late results are stale
  std::shared_ptr<boost::asio::steady_timer> llm_abort_;  // cancelled to abort the call in flight
  std::shared_ptr<mcp::call_cancel> tool_cancel_;         // the running tool call's
  std::string tool_call_id_;

  // The turn deadline (TURN_DEADLINE_MS): time the running turn has worked, and since when it works.
  std::unique_ptr<boost::asio::steady_timer> deadline_timer_;
  std::chrono::steady_clock::duration turn_worked_{};
  std::optional<std::chrono::steady_clock::time_point> working_since_;
  std::uint64_t deadline_epoch_ = 0;  // bumps per arm and disarm: a late timer is stale

  friend class parked_sessions;
};

}  // namespace berth::gateway
