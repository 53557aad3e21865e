#include "user_session.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/json.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "berth/gateway/history_mapping.hpp"
#include "sandbox_resource.hpp"

namespace berth::gateway {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {

constexpr const char* system_prompt =
    "You are Berth's coding agent. You work inside the user's own sandbox container; its files live in "
    "/workspace. Use the tools to list, read and write files and to run commands there, and explain what you did.";
constexpr std::chrono::milliseconds mcp_open_timeout{15000};
constexpr std::chrono::milliseconds lock_wait{10000};
constexpr std::chrono::milliseconds archive_timeout{60000};
constexpr std::size_t max_pending_inputs = 32;
constexpr std::size_t delta_burst = 8;  // agent:delta events a socket gets at once before pacing
constexpr core::log_task_failure log_failure{"gateway"};

std::int64_t now_ms() { return session::system_now_ms(); }
std::shared_ptr<spdlog::logger> log() { return core::logger("gateway"); }

json ack_ok() { return json::array({json{{"ok", true}}}); }
json ack_ok(const std::optional<std::string>& turn_id) {
  json body{{"ok", true}};
  if (turn_id) body["turnId"] = *turn_id;
  return json::array({std::move(body)});
}

std::vector<llm::tool_spec> to_tool_specs(const std::vector<mcp::tool_descriptor>& tools) {
  std::vector<llm::tool_spec> specs;
  for (const auto& t : tools) specs.push_back({t.name, t.description, t.input_schema});
  return specs;
}

std::string megabytes(std::size_t bytes) {
  const auto tenths = (bytes * 10 + 512 * 1024) / (1024 * 1024);
  return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + " MB";
}

// "saved:123" / "kept:123" -> 123.
std::size_t note_bytes(std::string_view note) {
  const auto colon = note.find(':');
  std::size_t n = 0;
  for (auto c : note.substr(colon == std::string_view::npos ? note.size() : colon + 1))
    if (c >= '0' && c <= '9') n = n * 10 + static_cast<std::size_t>(c - '0');
  return n;
}

}  // namespace

// ---------------------------------------------------------------- parked_sessions

void parked_sessions::park(const std::shared_ptr<user_session>& s) {
  std::lock_guard lock(mutex_);
  parked_[s->sid()] = entry{s, ++parks_, false};
}

std::shared_ptr<user_session> parked_sessions::pick_to_yield() {
  std::lock_guard lock(mutex_);
  entry* oldest = nullptr;
  for (auto& [_, e] : parked_)
    if (!e.yielding && (!oldest || e.order < oldest->order)) oldest = &e;
  if (!oldest) return nullptr;
  oldest->yielding = true;
  return oldest->session;
}

std::shared_ptr<user_session> parked_sessions::unpark(const std::string& sid) {
  std::lock_guard lock(mutex_);
  auto it = parked_.find(sid);
  if (it == parked_.end()) return nullptr;
  auto s = std::move(it->second.session);
  parked_.erase(it);
  return s;
}

bool parked_sessions::leave(const user_session* s) {
  std::lock_guard lock(mutex_);
  auto it = parked_.find(s->sid());
  if (it == parked_.end() || it->second.session.get() != s) return false;
  parked_.erase(it);
  ++hibernating_;
  return true;
}

void parked_sessions::done() {
  std::lock_guard lock(mutex_);
  if (hibernating_ > 0) --hibernating_;
}

std::size_t parked_sessions::busy() const {
  std::lock_guard lock(mutex_);
  return parked_.size() + hibernating_ + settling_;
}

void parked_sessions::settling(bool begins) {
  std::lock_guard lock(mutex_);
  if (begins) ++settling_;
  else if (settling_ > 0) --settling_;
}

std::size_t parked_sessions::size() const {
  std::lock_guard lock(mutex_);
  return parked_.size();
}

std::vector<std::shared_ptr<user_session>> parked_sessions::all() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<user_session>> out;
  for (const auto& [_, e] : parked_) out.push_back(e.session);
  return out;
}

gateway_counters::gateway_counters(core::metrics& m)
    : too_many(m.get_counter("berth_gateway_too_many_requests_total", "Requests refused by the per-user limit")),
      invalid_payloads(m.get_counter("berth_gateway_invalid_payloads_total",
                                     "Client events with an invalid payload or unknown name")),
      provision_failures(m.get_counter("berth_gateway_provision_failures_total",
                                       "Sessions that could not get a container or be stored")),
      containers_replaced(m.get_counter("berth_gateway_containers_replaced_total",
                                        "Resumed sessions whose container had died")),
      dead_containers_replaced(m.get_counter(
          "berth_gateway_dead_containers_replaced_total",
          "Live sessions whose container stopped (OOM kill, dockerd restart) and that got a new one")),
      hibernated(m.get_counter("berth_sessions_hibernated_total",
                               "Sessions whose workspace was saved and container given back after the detach grace")),
      hibernate_failures(m.get_counter("berth_sessions_hibernate_failures_total",
                                       "Hibernations that failed (the session kept its container)")),
      workspace_too_large(m.get_counter("berth_sessions_workspace_too_large_total",
                                        "Hibernations skipped: the workspace was over WORKSPACE_SAVE_MAX_BYTES")),
      restored(m.get_counter("berth_sessions_restored_total", "Hibernated workspaces restored into a container")),
      restore_failures(m.get_counter("berth_sessions_restore_failures_total",
                                     "Hibernated workspaces that could not be restored (the user is told)")),
      resumed_parked(m.get_counter("berth_sessions_resumed_parked_total",
                                   "Reconnects that took their parked session back on the same replica")),
      turn_deadlines(m.get_counter("berth_agent_turn_deadline_exceeded_total",
                                   "Turns stopped with TURN_TIMEOUT: they worked longer than TURN_DEADLINE_MS")),
      history_not_saved(m.get_counter("berth_history_write_failures_total",
                                      "History entries Redis did not take (the client was told HISTORY_NOT_SAVED)")) {}

// ---------------------------------------------------------------- user_session

user_session::user_session(session_services& svc, const std::shared_ptr<socketio::socket>& sock, session_identity who)
    : svc_(svc),
      sock_(sock),
      strand_(sock->executor()),
      who_(std::move(who)),
      deltas_(svc.cfg.stream_delta_interval, delta_burst) {}

void user_session::emit(const std::string& event, const json& payload) {
  if (auto s = sock_.lock()) s->emit(event, payload.is_null() ? json::array() : json::array({payload}));
}

void user_session::emit_error(const core::error& e) { emit("agent:error", core::error_body(e)); }

void user_session::reject(const core::error& e, ack_fn& ack) {
  if (e.code == core::errc::invalid_payload) svc_.counters.invalid_payloads.inc();
  emit_error(e);
  if (ack) std::exchange(ack, nullptr)(core::ack_error(e));
}

void user_session::start() {
  asio::co_spawn(strand_, provision(shared_from_this()), log_failure);
}

// ---- client events: one handler each; all wait for the tools before they run

void user_session::on_message(json args, ack_fn ack) { accept(input::message, std::move(args), std::move(ack)); }
void user_session::on_approval(json args, ack_fn ack) { accept(input::approval, std::move(args), std::move(ack)); }
void user_session::on_history_reset(json args, ack_fn ack) {
  accept(input::history_reset, std::move(args), std::move(ack));
}
void user_session::on_session_end(json args, ack_fn ack) { accept(input::session_end, std::move(args), std::move(ack)); }
void user_session::on_cancel(json args, ack_fn ack) { accept(input::cancel, std::move(args), std::move(ack)); }

void user_session::on_unknown(const std::string& event, json, ack_fn ack) {
  reject(core::make_error(core::errc::invalid_payload, "unknown event '" + core::log_prefix(event, 40) + "'"), ack);
}

void user_session::accept(input kind, json args, ack_fn ack) {
  if (!ready_) {
    if (before_ready_.size() >= max_pending_inputs) {
      if (ack) ack(core::ack_error(core::make_error(core::errc::too_many_requests, "session is still starting")));
      return;
    }
    before_ready_.push_back({kind, std::move(args), std::move(ack)});
    return;
  }
  asio::co_spawn(strand_, handle(shared_from_this(), kind, std::move(args), std::move(ack)), log_failure);
}

asio::awaitable<void> user_session::handle(std::shared_ptr<user_session> self, input kind, json args, ack_fn ack) {
  auto& svc = self->svc_;
  const json payload = args.empty() ? json() : args[0];
  if (kind == input::session_end) co_return co_await end_session(self, std::move(ack));
  if (kind == input::cancel) co_return self->cancel_turn(payload, std::move(ack));
  if (kind == input::history_reset) {
    self->current_ack_ = std::move(ack);
    self->apply(self->fsm_->on_history_reset());
    if (self->current_ack_) std::exchange(self->current_ack_, nullptr)(ack_ok());
    co_return;
  }
  std::optional<std::string> text;
  std::optional<agent::approval> approval;
  if (kind == input::message) {
    auto parsed = agent::parse_user_message(payload, svc.cfg.max_message_bytes);
    if (!parsed) co_return self->reject(parsed.error(), ack);
    text = std::move(*parsed);
  } else {
    auto parsed = agent::parse_approval(payload);
    if (!parsed) co_return self->reject(parsed.error(), ack);
    approval = std::move(*parsed);
  }
  // The per-user limit counts requests across sockets and replicas (Redis leases).
  auto permit = co_await svc.limiter.acquire(self->who_.user);
  if (self->closed_ || !self->fsm_) co_return;
  if (!permit) {
    if (permit.error().code == core::errc::too_many_requests) {
      svc.counters.too_many.inc();
      // The operator guide greps for this phrase (MAX_REQUESTS_PER_USER refusals).
      log()->warn("sid={} uid={} Too many concurrent requests: {}", self->sid(), core::log_prefix(self->user(), 32),
                  permit.error().message);
    }
    co_return self->reject(permit.error(), ack);
  }
  self->current_ack_ = std::move(ack);
  if (text) {
    self->turn_permits_.push_back(std::move(*permit));
    self->apply(self->fsm_->on_user_message(std::move(*text)));
  } else {
    self->step_permits_.push_back(std::move(*permit));
    self->apply(self->fsm_->on_approval(approval->call_id, approval->approved));
  }
  if (self->current_ack_) std::exchange(self->current_ack_, nullptr)(ack_ok());  // the machine did not ack
}

// ---- the agent state machine's actions

void user_session::apply(std::vector<agent::action> actions) {
  auto self = shared_from_this();
  for (auto& a : actions) {
    std::visit(
        [&](auto& act) {
          using T = std::decay_t<decltype(act)>;
          if constexpr (std::is_same_v<T, agent::emit>) {
            send(std::move(act.event), std::move(act.payload));
          } else if constexpr (std::is_same_v<T, agent::call_llm>) {
            asio::co_spawn(strand_, run_llm(self, std::move(act)), log_failure);
          } else if constexpr (std::is_same_v<T, agent::run_tool>) {
            asio::co_spawn(strand_, run_tool(self, std::move(act)), log_failure);
          } else if constexpr (std::is_same_v<T, agent::cancel_tool>) {
            if (tool_cancel_ && tool_call_id_ == act.call_id) tool_cancel_->request();
          } else if constexpr (std::is_same_v<T, agent::abort_llm>) {
            abort_llm();
          } else if constexpr (std::is_same_v<T, agent::append_history>) {
            for (auto& e : to_history_entries(act.message, now_ms()))
              outbox_.push_back({outbox_item::kind::history, std::move(e), {}, {}});
            start_outbox();
          } else if constexpr (std::is_same_v<T, agent::clear_history>) {
            outbox_.push_back({outbox_item::kind::clear_history, {}, {}, {}});
            start_outbox();
          } else if constexpr (std::is_same_v<T, agent::ack>) {
            if (current_ack_)
              std::exchange(current_ack_, nullptr)(act.ok ? ack_ok(act.turn_id) : core::ack_error(act.error.value_or(core::error{})));
          } else if constexpr (std::is_same_v<T, agent::turn_clock>) {
            on_turn_clock(act.what);
          } else if constexpr (std::is_same_v<T, agent::end_turn>) {
            if (!turn_permits_.empty()) turn_permits_.pop_front();
          } else if constexpr (std::is_same_v<T, agent::end_step>) {
            if (!step_permits_.empty()) step_permits_.pop_front();
          }
        },
        a);
  }
  // Disconnected while the turn ran: once it ends (or waits for an approval nobody can give
  // now), the session settles as any disconnected one.
  if (recovery_hold_ && !closed_ && !turn_in_flight()) {
    flush_deltas();
    close(std::move(detach_reason_), std::move(recovery_hold_));
    recovery_hold_.reset();
  }
}

asio::awaitable<void> user_session::run_llm(std::shared_ptr<user_session> self, agent::call_llm act) {
  llm::llm_request req;
  req.system_prompt = system_prompt;
  req.messages = std::move(act.messages);
  req.tools = std::move(act.tools);
  req.max_output_tokens = self->svc_.cfg.max_output_tokens;
  req.model = self->svc_.cfg.llm_model;
  // Streamed: each piece of text becomes agent:delta (paced); agent:cancel cancels llm_abort_,
  // which ends the `||` below and with it the request (its connection is closed).
  const auto epoch = ++self->llm_epoch_;
  auto abort = std::make_shared<asio::steady_timer>(self->strand_, asio::steady_timer::time_point::max());
  self->llm_abort_ = abort;
  // The user's LLM token budget (LLM_TOKENS_PER_USER_PER_MINUTE) is checked before each request.
  auto admitted = co_await self->svc_.llm_budget.admit(self->user());
  if (epoch != self->llm_epoch_ || self->closed_ || !self->fsm_) {  // stopped while Redis answered
    if (self->llm_abort_ == abort) self->llm_abort_.reset();
    co_return;
  }
  if (!admitted) {
    self->llm_abort_.reset();
    log()->info("sid={} uid={} LLM request refused: {}", self->sid(), self->user(), admitted.error().message);
    self->apply(self->fsm_->on_llm_failed(admitted.error().code, admitted.error().message, admitted.error().retry_after));
    co_return;
  }
  llm::delta_fn on_delta = [raw = self.get(), epoch](std::string_view text) {
    if (raw->llm_epoch_ == epoch && !raw->closed_ && raw->fsm_) raw->on_llm_delta(text);
  };
  using namespace asio::experimental::awaitable_operators;
  auto streamed = self->provider_->stream(req, std::move(on_delta));
  auto aborted = abort->async_wait(asio::as_tuple(asio::use_awaitable));
  auto outcome = co_await (std::move(streamed) || std::move(aborted));
  if (self->llm_abort_ == abort) self->llm_abort_.reset();
  if (outcome.index() != 0 || epoch != self->llm_epoch_) co_return;  // aborted: the machine moved on
  auto reply = std::get<0>(std::move(outcome));
  if (reply) {
    // Charged in the background: the answer does not wait for Redis.
    const auto tokens = std::uint64_t{reply->usage.input_tokens} + reply->usage.output_tokens;
    asio::co_spawn(self->strand_, charge_tokens(self, tokens), log_failure);
  }
  if (self->closed_ || !self->fsm_) co_return;
  self->flush_deltas();  // every delta before agent:response / tool:approval_required
  if (reply)
    self->apply(self->fsm_->on_llm_reply(*reply));
  else
    self->apply(self->fsm_->on_llm_failed(reply.error().code, reply.error().message));
}

asio::awaitable<void> user_session::charge_tokens(std::shared_ptr<user_session> self, std::uint64_t tokens) {
  if (auto r = co_await self->svc_.llm_budget.charge(self->user(), tokens); !r)
    log()->debug("sid={} uid={} LLM tokens not counted ({}): {}", self->sid(), self->user(), tokens, r.error().message);
}

asio::awaitable<void> user_session::run_tool(std::shared_ptr<user_session> self, agent::run_tool act) {
  const auto started = std::chrono::steady_clock::now();
  const auto timeout = self->svc_.cfg.tool_timeout;
  core::result<mcp::tool_call_outcome> outcome = core::make_error(core::errc::sandbox_unavailable, "no sandbox session");
  auto cancel = std::make_shared<mcp::call_cancel>();
  self->tool_cancel_ = cancel;
  self->tool_call_id_ = act.call_id;
  if (self->mcp_ && (self->mcp_->sandbox_open() || self->mcp_->tools().find(act.name)))
    outcome = co_await self->mcp_->call_tool(act.name, act.args, timeout, cancel);
  else if (self->mcp_)  // a sandbox tool, and the sandbox server could not be opened
    outcome = core::make_error(core::errc::sandbox_unavailable, "the sandbox MCP server is not running");
  if (self->tool_cancel_ == cancel) {
    self->tool_cancel_.reset();
    self->tool_call_id_.clear();
  }
  if (self->closed_ || !self->fsm_ || cancel->requested()) co_return;
  if (!outcome && outcome.error().code == core::errc::sandbox_unavailable) {
    if (auto recovered = co_await recover_sandbox(self)) outcome = core::make_error(core::errc::sandbox_unavailable, *recovered);
    if (self->closed_ || !self->fsm_) co_return;
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  if (!outcome && outcome.error().code == core::errc::tool_timeout) {
    self->apply(self->fsm_->on_tool_timeout(act.call_id, took));
  } else if (!outcome) {
    self->apply(self->fsm_->on_tool_result(act.call_id, outcome.error().message, true, took));
  } else {
    self->apply(self->fsm_->on_tool_result(act.call_id, std::move(outcome->text), outcome->is_error, took));
  }
}

// The sandbox did not answer a tool call. If its container stopped (the OOM killer, a dockerd
// restart, someone's `docker kill`), the session gets a new one now rather than failing every
// later call, and the user is told that the old /workspace is lost; a session whose sandbox
// server could not be opened, or that was left without a container at the last attempt, tries
// again. A few attempts, since right after a dockerd restart the pool may still hold containers
// that died with it. Returns what the failed call reports, or nullopt when nothing was wrong with
// the sandbox or Docker cannot say (then nothing changes).
asio::awaitable<std::optional<std::string>> user_session::recover_sandbox(std::shared_ptr<user_session> self) {
  auto& svc = self->svc_;
  std::optional<std::string> lost;  // why the old container is gone, once one was
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (const std::string old = self->lease_.id(); !old.empty()) {
      auto found = co_await svc.docker.find_container(old);
      if (!found || self->closed_) co_return std::nullopt;
      if (*found && (*found)->running) {
        if (self->mcp_ && self->mcp_->sandbox_open()) co_return std::nullopt;  // the tool's own failure
      } else {
        std::string why = "was removed";
        if (*found)
          why = "stopped (" + (*found)->state + ", exit code " + std::to_string((*found)->exit_code) +
                ((*found)->oom_killed ? ", killed for using more than its memory limit" : "") + ")";
        log()->warn("sid={} uid={} cid={} container {}: replacing it", self->sid(), self->user(), old.substr(0, 12), why);
        svc.counters.dead_containers_replaced.inc();
        if (!lost) lost = std::move(why);
        self->lease_.release();  // the pool removes what is left of it
        self->recorded_ = false;
      }
      if (self->mcp_) {
        self->mcp_->close();
        self->mcp_.reset();
      }
    }
    if (!self->lease_) {
      auto lease = co_await svc.pool.acquire();
      if (!lease) co_return "the sandbox container " + lost.value_or("could not be reached") +
                            " and no new one is available yet: " + lease.error().message;
      if (self->closed_) co_return std::nullopt;  // the user left meanwhile: the new lease ends with this scope
      // A turn cancelled while this one waited, then a new turn, may have recovered meanwhile: its
      // container stays (this lease ends with this scope), or the session's tools would target a
      // container it no longer holds.
      if (!self->lease_) {
        self->lease_ = std::move(*lease);
        auto claimed = co_await svc.sessions.set_container(self->sid(), self->lease_.id());
        self->recorded_ = claimed && *claimed;
      }
    }
    // A failure here is not told on its own: the call's result says what happened (an agent:error
    // without a turnId in the middle of a turn reads as another turn's end).
    std::vector<mcp::tool_descriptor> tools;
    (void)co_await tools_step(self, tools);
    if (self->closed_ || !self->fsm_) co_return std::nullopt;
    if (self->mcp_ && self->mcp_->sandbox_open()) {
      self->fsm_->set_tools(to_tool_specs(tools));
      if (!lost) co_return "the sandbox server had stopped and was started again, so the call can be made again";
      self->emit("system:message", "Your sandbox container " + *lost +
                                       ". A new, empty one was started: the files in the old /workspace are lost.");
      co_return "the sandbox container " + *lost + " before the tool could finish; a new, empty sandbox was "
             "started, so the call can be made again";
    }
  }
  co_return "the sandbox container " + lost.value_or("could not be reached") + " and could not be replaced yet";
}

void user_session::send(std::string event, json payload) {
  if (outbox_.empty() && !outbox_draining_) return emit(event, payload);
  outbox_.push_back({outbox_item::kind::event, {}, std::move(event), std::move(payload)});
}

void user_session::start_outbox() {
  if (outbox_draining_) return;
  outbox_draining_ = true;
  asio::co_spawn(strand_, drain_outbox(shared_from_this()), log_failure);
}

asio::awaitable<void> user_session::drain_outbox(std::shared_ptr<user_session> self) {
  auto& svc = self->svc_;
  while (!self->outbox_.empty()) {
    auto item = std::move(self->outbox_.front());
    self->outbox_.pop_front();
    if (item.what == outbox_item::kind::event) {
      self->emit(item.event, item.payload);
    } else if (item.what == outbox_item::kind::clear_history) {
      auto r = co_await svc.history.reset(self->sid());
      if (!r) log()->warn("sid={} history not cleared: {}", self->sid(), r.error().message);
    } else {
      const auto role = item.entry.role;
      auto r = co_await svc.history.append(self->sid(), std::move(item.entry));
      if (!r) {
        // Never silent: the user hears that this part of the conversation is not kept, before
        // the events it held back, and the turn goes on.
        svc.counters.history_not_saved.inc();
        log()->warn("sid={} history not saved ({} entry): {}", self->sid(), role, r.error().message);
        self->emit("agent:error", core::error_body(core::make_error(
                                      core::errc::history_not_saved,
                                      "a " + role + " message was not saved to the conversation history (" +
                                          r.error().message + "); a resumed session will not show it")));
      }
    }
  }
  self->outbox_draining_ = false;
}

// ---- streaming and stopping (issue 16)

void user_session::cancel_turn(const json& payload, ack_fn ack) {
  std::optional<std::string> turn_id;
  if (!payload.is_null()) {
    const json* id = &payload;
    if (payload.is_object()) {
      auto it = payload.find("turnId");
      id = it == payload.end() ? nullptr : &*it;
    }
    if (id && !id->is_null()) {
      if (!id->is_string() || id->get_ref<const std::string&>().empty() || id->get_ref<const std::string&>().size() > 128)
        return reject(core::make_error(core::errc::invalid_payload, "agent:cancel: turnId must be a string of 1-128 bytes"),
                      ack);
      turn_id = id->get<std::string>();
    }
  }
  current_ack_ = std::move(ack);
  auto actions = turn_id ? fsm_->on_cancel(std::string_view(*turn_id)) : fsm_->on_cancel(std::nullopt);
  // Not a failure worth an agent:error: the ack tells (NO_ACTIVE_TURN / TURN_NOT_FOUND).
  apply(std::move(actions));
  if (current_ack_) std::exchange(current_ack_, nullptr)(ack_ok());
}

void user_session::on_llm_delta(std::string_view text) {
  fsm_->on_llm_delta(text);
  const auto& turn = fsm_->turn_id();
  if (turn != delta_turn_) {
    flush_deltas();  // (a previous turn's held text, if any)
    delta_turn_ = turn;
    delta_index_ = 0;
  }
  if (auto now = deltas_.push(text, agent::delta_coalescer::clock::now())) send_delta(std::move(*now));
  else arm_delta_timer();
}

void user_session::send_delta(std::string text) {
  send("agent:delta", json{{"turnId", delta_turn_}, {"index", delta_index_++}, {"text", std::move(text)}});
}

void user_session::flush_deltas() {
  if (deltas_.holding()) send_delta(deltas_.take(agent::delta_coalescer::clock::now()));
}

void user_session::arm_delta_timer() {
  const auto due = deltas_.due();
  if (!due || delta_timer_armed_) return;
  if (!delta_timer_) delta_timer_ = std::make_unique<asio::steady_timer>(strand_);
  delta_timer_armed_ = true;
  delta_timer_->expires_at(*due);
  delta_timer_->async_wait([weak = weak_from_this()](boost::system::error_code) {
    auto self = weak.lock();
    if (!self) return;
    self->delta_timer_armed_ = false;
    if (self->closed_) return;
    self->flush_deltas();
  });
}

void user_session::abort_llm() {
  flush_deltas();  // what the user saw is what the history keeps
  ++llm_epoch_;
  if (llm_abort_) llm_abort_->cancel();
}

void user_session::on_turn_clock(agent::turn_clock::change what) {
  using change = agent::turn_clock::change;
  const auto now = std::chrono::steady_clock::now();
  switch (what) {
    case change::start:
      turn_worked_ = {};
      working_since_ = now;
      arm_turn_deadline(svc_.cfg.turn_deadline);
      break;
    case change::resume:
      if (working_since_) break;
      working_since_ = now;
      arm_turn_deadline(svc_.cfg.turn_deadline - turn_worked_);
      break;
    case change::pause:
    case change::stop:
      if (working_since_) turn_worked_ += now - *working_since_;
      working_since_.reset();
      ++deadline_epoch_;  // disarmed
      if (deadline_timer_) deadline_timer_->cancel();
      break;
  }
}

void user_session::arm_turn_deadline(std::chrono::steady_clock::duration remaining) {
  const auto epoch = ++deadline_epoch_;
  if (svc_.cfg.turn_deadline.count() == 0) return;  // TURN_DEADLINE_MS=0: off
  if (!deadline_timer_) deadline_timer_ = std::make_unique<asio::steady_timer>(strand_);
  deadline_timer_->expires_after(std::max(remaining, std::chrono::steady_clock::duration::zero()));
  deadline_timer_->async_wait([weak = weak_from_this(), epoch](boost::system::error_code) {
    auto self = weak.lock();
    if (!self || self->deadline_epoch_ != epoch || self->closed_ || !self->fsm_) return;
    const std::string turn = self->fsm_->turn_id();
    const auto phase = agent::to_string(self->fsm_->phase());
    auto actions = self->fsm_->on_turn_deadline(turn, self->svc_.cfg.turn_deadline);
    if (actions.empty()) return;
    self->svc_.counters.turn_deadlines.inc();
    log()->warn("sid={} uid={} turn {} stopped: it worked longer than TURN_DEADLINE_MS={} ({})", self->sid(),
                core::log_prefix(self->user(), 32), turn, self->svc_.cfg.turn_deadline.count(),
                phase);
    self->apply(std::move(actions));
  });
}

// ---- session:end: the session, its history and saved workspace go; the container is scrubbed
// and serves someone else.

asio::awaitable<void> user_session::end_session(std::shared_ptr<user_session> self, ack_fn ack) {
  auto& svc = self->svc_;
  self->ended_ = true;
  if (self->fsm_) self->apply(self->fsm_->abort(core::errc::internal, "session ended"));
  auto r = co_await svc.sessions.end(self->sid());
  self->recycle_container();
  log()->info("sid={} uid={} session ended by the user", self->sid(), self->user());
  if (ack) ack(r ? ack_ok() : core::ack_error(r.error()));
  self->emit("system:message", "Session ended; its sandbox was wiped and released.");
  if (auto s = self->sock_.lock()) s->disconnect(true);
}

void user_session::recycle_container() {
  std::shared_ptr<mcp::stdio_session> sandbox;
  if (mcp_) {
    sandbox = mcp_->take_sandbox();
    mcp_->close();  // the extra servers; they run as the user and the scrub ends them anyway
    mcp_.reset();
  }
  if (lease_) lease_.recycle(sandbox ? std::make_shared<prepared_sandbox_mcp>(std::move(sandbox)) : nullptr);
  recorded_ = false;
}

// ---- provisioning

void user_session::fail_provisioning(const core::error& e) {
  if (closed_) return;  // nobody to tell
  svc_.counters.provision_failures.inc();
  log()->warn("sid={} uid={} provisioning failed: {} {}", sid(), user(), core::to_string(e.code), e.message);
  emit_error(e);
  for (auto& in : before_ready_)
    if (in.ack) in.ack(core::ack_error(e));
  before_ready_.clear();
  if (auto s = sock_.lock()) s->disconnect(true);
}

asio::awaitable<void> user_session::provision(std::shared_ptr<user_session> self) {
  auto& svc = self->svc_;
  // Only one replica provisions (or hibernates) a session id at a time; what the record says is
  // read again under the lock (a hibernation or a resume elsewhere may have changed it).
  auto lock = co_await svc.sessions.lock(self->sid(), lock_wait);
  if (!lock) co_return self->fail_provisioning(lock.error());
  auto rec = co_await svc.sessions.get(self->sid());
  if (!rec) {
    co_await svc.sessions.unlock(*lock);
    co_return self->fail_provisioning(rec.error());
  }
  if (!*rec && self->who_.known) {
    co_await svc.sessions.unlock(*lock);
    co_return self->fail_provisioning(core::make_error(core::errc::session_forbidden, "the session ended meanwhile"));
  }
  std::optional<std::string> notice;
  auto leased = co_await lease_step(self, *rec, notice);
  if (leased && !self->closed_) leased = co_await record_step(self, *rec);
  co_await svc.sessions.unlock(*lock);
  if (!leased) {
    if (!self->who_.address.empty() && !*rec) (void)co_await svc.sessions.release_address(self->who_.address, self->sid());
    if (self->closed_) co_return co_await settle_container(self);  // gave up waiting: nobody to tell
    co_return self->fail_provisioning(leased.error());
  }
  if (self->closed_) co_return co_await settle_container(self);

  auto provider = svc.make_provider(self->who_.api_key);
  if (!provider) co_return self->fail_provisioning(provider.error());
  self->provider_ = std::move(*provider);

  std::vector<session::history_entry> entries;
  if (auto h = co_await svc.history.read(self->sid()); h) entries = std::move(*h);
  else log()->warn("sid={} history unavailable: {}", self->sid(), h.error().message);
  if (self->closed_) co_return;
  json history = json::array();
  for (const auto& e : entries) {
    json j{{"role", e.role}, {"content", e.content}, {"ts", e.ts_ms}};
    if (e.name) j["name"] = *e.name;
    if (e.call_id) j["callId"] = *e.call_id;
    history.push_back(std::move(j));
  }
  // Ready as soon as the container and the session are the user's. The tools (usually open
  // already: the pool prepared the sandbox's MCP server) and a hibernated workspace follow while
  // the user types; input that arrives meanwhile waits in before_ready_.
  const bool resumed = rec->has_value();
  // A recovered socket's client has all of this already (and its events were replayed).
  if (!self->who_.recovered)
    self->emit("system:ready", json{{"sessionId", self->sid()},
                                  {"containerId", self->lease_.id()},
                                  {"provider", std::string(self->provider_->name())},
                                  {"model", self->provider_->model()},
                                  {"resumed", resumed},
                                  {"resumeToken", self->resume_token_},
                                  {"limits", {{"maxConcurrentRequests", svc.cfg.max_requests_per_user}}},
                                  {"history", std::move(history)}});

  std::vector<mcp::tool_descriptor> tools;
  const auto sandbox_error = co_await tools_step(self, tools);
  if (sandbox_error) self->emit_error(*sandbox_error);
  if (self->closed_) co_return;
  if (*rec && (*rec)->workspace == "saved:0") {
    (void)co_await svc.sessions.forget_workspace(self->sid());  // hibernated before any tool ran
  } else if (*rec && (*rec)->workspace.starts_with("saved:")) {
    auto problem = co_await restore_step(self);
    if (problem) notice = notice ? *notice + " " + *problem : *problem;
  } else if (*rec && (*rec)->workspace.starts_with("kept:")) {
    notice = "Your workspace (" + megabytes(note_bytes((*rec)->workspace)) + ") was over the " +
             megabytes(svc.cfg.workspace_save_max_bytes) +
             " hibernation limit (WORKSPACE_SAVE_MAX_BYTES), so it stayed in its container instead of being saved.";
  }
  if (self->closed_) co_return;

  agent::turn_options opts;
  opts.max_tool_rounds = svc.cfg.max_tool_rounds;
  opts.max_history_tokens = svc.cfg.max_history_tokens;
  opts.max_tool_output_bytes = static_cast<std::size_t>(svc.cfg.max_tool_output_bytes);
  opts.turn_id_prefix = "t" + core::random_token(6);  // a turn of another session never matches
  self->fsm_.emplace(opts, to_tool_specs(tools), from_history_entries(entries));
  self->ready_ = true;
  log()->info("sid={} uid={} cid={} ready ({}, {} tools)", self->sid(), self->user(), self->lease_.id().substr(0, 12),
              resumed ? "resumed" : "new", tools.size());
  if (notice) self->emit("system:message", *notice);
  auto pending = std::move(self->before_ready_);
  self->before_ready_.clear();
  for (auto& in : pending) self->accept(in.kind, std::move(in.args), std::move(in.ack));
}

// A container for the session: the one this replica still holds for it (a reconnect within the
// grace), the one its record names (a resume elsewhere), or one from the pool (new, hibernated,
// or its container died). A lost container is never silent: the user gets `notice`.
asio::awaitable<core::result<void>> user_session::lease_step(std::shared_ptr<user_session> self,
                                                             std::optional<session::session_record> rec,
                                                             std::optional<std::string>& notice) {
  auto& svc = self->svc_;
  if (auto parked = svc.parked.unpark(self->sid())) {
    // On the parked session's own strand (it is another socket's).
    auto hold = co_await asio::co_spawn(parked->strand_, hand_over(parked), asio::use_awaitable);
    self->lease_ = std::move(hold.lease);
    self->mcp_ = std::move(hold.mcp);
    if (self->lease_ && rec && rec->container == self->lease_.id()) {
      self->recorded_ = true;
      svc.counters.resumed_parked.inc();
      co_return core::result<void>{};
    }
    self->recycle_container();  // the record names no longer this one: nobody resumes into it
  }
  if (rec && !rec->container.empty()) {
    auto adopted = co_await svc.pool.adopt(rec->container);
    if (adopted) {
      self->lease_ = std::move(*adopted);
      self->recorded_ = true;  // the record names it already: never handed to another user from here
      co_return core::result<void>{};
    }
    svc.counters.containers_replaced.inc();
    log()->warn("sid={} container {} is gone ({}): replacing it", self->sid(), rec->container.substr(0, 12),
                adopted.error().message);
    notice = "Your previous sandbox container was no longer running, and the files in its /workspace are lost; "
             "a new, empty one was started.";
  }
  auto on_queued = [weak = std::weak_ptr<user_session>(self)](std::size_t position) {
    if (auto s = weak.lock()) s->emit("system:queued", json{{"position", position}});
  };
  self->acquiring_ = std::make_shared<pool::acquire_ticket>();
  auto lease = co_await svc.pool.acquire(on_queued, self->acquiring_);
  self->acquiring_.reset();
  if (!lease) co_return lease.error();
  self->lease_ = std::move(*lease);
  co_return core::result<void>{};
}

asio::awaitable<user_session::sandbox_hold> user_session::hand_over(std::shared_ptr<user_session> parked) {
  if (parked->grace_timer_) parked->grace_timer_->cancel();  // its grace sees it unparked and stops
  co_return sandbox_hold{std::move(parked->lease_), std::move(parked->mcp_)};
}

asio::awaitable<core::result<void>> user_session::record_step(std::shared_ptr<user_session> self,
                                                              const std::optional<session::session_record>& rec) {
  auto& svc = self->svc_;
  if (!rec) {
    auto created = co_await svc.sessions.create(self->sid(), self->user(), self->lease_.id(), self->who_.address);
    if (!created) co_return created.error();
    self->resume_token_ = created->resume_token;
    self->recorded_ = true;
    co_return core::result<void>{};
  }
  // Claims the session for this replica and container (set_container writes both): a parked
  // session elsewhere then sees it moved on and lets its container go without touching it.
  auto claimed = co_await svc.sessions.set_container(self->sid(), self->lease_.id());
  if (!claimed || !*claimed) {
    co_return claimed ? core::make_error(core::errc::internal, "session vanished while resuming") : claimed.error();
  }
  self->recorded_ = true;
  if (rec->workspace.starts_with("kept:")) (void)co_await svc.sessions.set_workspace_note(self->sid(), "");  // told once
  if (self->who_.recovered) co_return core::result<void>{};  // its client keeps the token it has
  auto token = co_await svc.sessions.rotate_resume_token(self->sid());
  if (!token || !*token)
    co_return token ? core::make_error(core::errc::internal, "session vanished while resuming") : token.error();
  self->resume_token_ = **token;
  co_return core::result<void>{};
}

asio::awaitable<std::optional<core::error>> user_session::tools_step(std::shared_ptr<user_session> self,
                                                                     std::vector<mcp::tool_descriptor>& tools) {
  auto& svc = self->svc_;
  if (self->mcp_ && self->mcp_->sandbox() && self->mcp_->sandbox()->container_id() != self->lease_.id()) {
    self->mcp_->close();  // a server of a container the session no longer holds
    self->mcp_.reset();
  }
  if (!self->mcp_) {
    http::client_options mcp_http;
    mcp_http.connect_timeout = std::chrono::milliseconds(5000);
    mcp_http.total_timeout = std::max(svc.cfg.tool_timeout, std::chrono::milliseconds(15000));
    mcp_http.extra_ca_file = svc.cfg.llm_ca_file;
    self->mcp_ = std::make_shared<mcp::router>(self->strand_, svc.docker, self->lease_.id(), svc.extra_mcp_servers,
                                               mcp_http, svc.metrics, "sid=" + self->sid(),
                                               prepared_sandbox_mcp::session_of(self->lease_.take_prepared()));
  }
  auto opened = co_await self->mcp_->open(mcp_open_timeout);
  tools = std::move(opened.tools);
  if (opened.sandbox_error) {
    log()->warn("sid={} cid={} sandbox MCP unavailable: {}", self->sid(), self->lease_.id().substr(0, 12),
                opened.sandbox_error->message);
  }
  co_return std::move(opened.sandbox_error);
}

// The hibernated workspace goes into the new container before any input runs. A failure is told
// (never silent) and the saved copy stays for a later resume.
asio::awaitable<std::optional<std::string>> user_session::restore_step(std::shared_ptr<user_session> self) {
  auto& svc = self->svc_;
  auto fail = [&](const std::string& why) -> std::optional<std::string> {
    svc.counters.restore_failures.inc();
    log()->warn("sid={} workspace not restored: {}", self->sid(), why);
    return "Your saved workspace could not be restored (" + why + "); it is kept, and the next resume tries again.";
  };
  auto archive = co_await svc.sessions.load_workspace(self->sid());
  if (!archive) co_return fail(archive.error().message);
  if (!*archive) co_return fail("it is no longer in Redis");
  auto sandbox = self->mcp_ ? self->mcp_->sandbox() : nullptr;
  if (!sandbox) co_return fail("the sandbox server is not running");
  // Named first: GCC 12 miscompiles a braced json temporary inside a co_await expression.
  json params = json::object();
  params["data"] = std::move(**archive);
  auto imported = co_await sandbox->request("berth/workspace.import", std::move(params), archive_timeout);
  if (!imported) co_return fail(imported.error().message);
  (void)co_await svc.sessions.forget_workspace(self->sid());
  svc.counters.restored.inc();
  co_return std::nullopt;
}

// ---- the socket is gone

void user_session::on_disconnect(std::string reason, std::shared_ptr<void> recovery_hold) {
  asio::dispatch(strand_, [self = shared_from_this(), reason = std::move(reason), hold = std::move(recovery_hold)]() mutable {
    if (self->closed_ || self->recovery_hold_) return;
    if (hold && self->turn_in_flight()) {
      // The answer (or the tool and the answer after it) goes on; what it emits is numbered and
      // buffered for the client's recovery, on this replica or another.
      self->recovery_hold_ = std::move(hold);
      self->detach_reason_ = std::move(reason);
      log()->info("sid={} uid={} disconnected ({}): the turn in flight runs on for the socket's recovery", self->sid(),
                  self->user(), self->detach_reason_);
      return;
    }
    self->close(std::move(reason), std::move(hold));
  });
}

bool user_session::turn_in_flight() const {
  if (!fsm_) return false;
  const auto phase = fsm_->phase();
  return phase == agent::turn_phase::waiting_llm || phase == agent::turn_phase::running_tool;
}

void user_session::close(std::string reason, std::shared_ptr<void> recovery_hold) {
  closed_ = true;
  // Nobody will see the turn any more: the machine stops it (the tool killed, the model call
  // aborted, the history made whole) and drops the queue, which frees every limiter slot.
  if (fsm_) apply(fsm_->on_disconnect());
  if (acquiring_) acquiring_->cancel();  // queued for a container: not any more
  svc_.parked.settling(true);
  asio::co_spawn(strand_, after_disconnect(shared_from_this(), std::move(reason), std::move(recovery_hold)), log_failure);
}

asio::awaitable<void> user_session::after_disconnect(std::shared_ptr<user_session> self, std::string reason,
                                                     std::shared_ptr<void> recovery_hold) {
  log()->info("sid={} uid={} disconnected ({})", self->sid(), self->user(), reason);
  struct settled {  // on every way out, exceptions included
    parked_sessions& parked;
    ~settled() { parked.settling(false); }
  } guard{self->svc_.parked};
  // A resume (a recovered socket, or a reconnect that takes the parked session) reads the history
  // from Redis: every entry of the turn, its stop included, must be there first (bounded: a Redis
  // that does not answer fails the writes in seconds).
  asio::steady_timer wait(self->strand_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while ((self->outbox_draining_ || !self->outbox_.empty()) && std::chrono::steady_clock::now() < deadline) {
    wait.expires_after(std::chrono::milliseconds(5));
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_await settle_container(self);
  // Parked (or its container given back): the socket's state may be sealed and recovered now.
  recovery_hold.reset();
}

// What becomes of the container once the socket is gone (provisioning calls it too, when the user
// left while it ran): a container no session names is nobody's to resume into, so the next user
// gets it; one the session names waits for a reconnect, then hibernates.
asio::awaitable<void> user_session::settle_container(std::shared_ptr<user_session> self) {
  if (self->ended_ || !self->lease_ || self->grace_timer_) co_return;
  if (!self->recorded_) {
    self->recycle_container();
    co_return;
  }
  (void)co_await self->svc_.sessions.touch(self->sid());
  self->park();
}

void user_session::park() {
  svc_.parked.park(shared_from_this());
  const auto wait = svc_.parked.draining() ? std::chrono::milliseconds(0) : svc_.cfg.session_detach_grace;
  grace_timer_ = std::make_unique<asio::steady_timer>(strand_, wait);
  asio::co_spawn(strand_, grace(shared_from_this()), log_failure);
}

void user_session::hibernate_now() {
  asio::dispatch(strand_, [self = shared_from_this()] {
    if (self->grace_timer_) self->grace_timer_->cancel();
  });
}

asio::awaitable<void> user_session::grace(std::shared_ptr<user_session> self) {
  auto* timer = self->grace_timer_.get();
  if (timer) co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
  // Taken back by a reconnect (unpark) meanwhile: that session owns the container now.
  if (!self->svc_.parked.leave(self.get())) co_return;
  co_await hibernate(self);
  self->svc_.parked.done();
}

// Saves /workspace where every replica can read it and gives the container back, unless the
// session moved on meanwhile (resumed elsewhere: that replica owns the container now).
asio::awaitable<void> user_session::hibernate(std::shared_ptr<user_session> self) {
  auto& svc = self->svc_;
  const std::string container = self->lease_.id();
  auto keep_container = [&](const char* why) {
    svc.counters.hibernate_failures.inc();
    log()->warn("sid={} cid={} not hibernated ({}): it keeps its container until the idle timeout", self->sid(),
                container.substr(0, 12), why);
    if (self->mcp_) self->mcp_->close();
    self->lease_.detach();  // the session's now; the janitor removes it with the session
  };
  auto lock = co_await svc.sessions.lock(self->sid(), lock_wait);
  if (!lock) co_return keep_container("session lock unavailable");
  auto rec = co_await svc.sessions.get(self->sid());
  if (!rec || !*rec || (*rec)->container != container || (*rec)->replica != svc.cfg.replica_id) {
    co_await svc.sessions.unlock(*lock);
    // Ended, or resumed elsewhere: never ours to touch again.
    if (self->mcp_) self->mcp_->close();
    self->lease_.detach();
    co_return;
  }
  // The server the tools use, or (the user left before they opened) the one the pool prepared.
  auto sandbox = self->mcp_ ? self->mcp_->sandbox() : prepared_sandbox_mcp::session_of(self->lease_.prepared());
  if (!sandbox && !self->mcp_) {
    // No server at all, and no tool ever ran: the workspace is as the pool gave it (empty). Nothing
    // to save; the container goes (it cannot be scrubbed without its server).
    auto stored = co_await svc.sessions.hibernate(self->sid(), container, "", "saved:0");
    co_await svc.sessions.unlock(*lock);
    if (!stored || !*stored) co_return keep_container("the session moved on");
    svc.counters.hibernated.inc();
    self->lease_.release();
    co_return;
  }
  core::result<json> saved = core::make_error(core::errc::sandbox_unavailable, "no sandbox server");
  if (sandbox) {
    json params = json::object();
    params["maxBytes"] = svc.cfg.workspace_save_max_bytes;
    saved = co_await sandbox->request("berth/workspace.export", std::move(params), archive_timeout);
  }
  if (!saved || !saved->is_object()) {
    co_await svc.sessions.unlock(*lock);
    co_return keep_container(saved ? "unexpected export reply" : saved.error().message.c_str());
  }
  // The sandbox server's answer, read without trusting its types (json::value throws on a
  // present field of another type).
  const json& reply = *saved;
  const auto bytes = core::json_uint(reply, "bytes");
  if (core::json_bool(reply, "tooLarge")) {
    // Never cut a workspace: the container stays with the session, and the user hears why on resume.
    svc.counters.workspace_too_large.inc();
    std::string note = "kept:" + std::to_string(bytes);
    (void)co_await svc.sessions.set_workspace_note(self->sid(), std::move(note));
    co_await svc.sessions.unlock(*lock);
    log()->info("sid={} workspace of {} bytes is over WORKSPACE_SAVE_MAX_BYTES={}: kept in its container until the "
                "idle timeout", self->sid(), bytes, svc.cfg.workspace_save_max_bytes);
    if (self->mcp_) self->mcp_->close();
    self->lease_.detach();
    co_return;
  }
  if (!reply.contains("data") || !reply["data"].is_string()) {
    co_await svc.sessions.unlock(*lock);
    co_return keep_container("unexpected export reply");
  }
  std::string archive = reply["data"].get<std::string>();
  std::string note = "saved:" + std::to_string(bytes);
  auto stored = co_await svc.sessions.hibernate(self->sid(), container, std::move(archive), std::move(note));
  co_await svc.sessions.unlock(*lock);
  if (!stored || !*stored) co_return keep_container(stored ? "the session moved on" : "Redis refused the archive");
  svc.counters.hibernated.inc();
  log()->info("sid={} hibernated: {} bytes of workspace saved, container {} back to the pool", self->sid(), bytes,
              container.substr(0, 12));
  self->recycle_container();
}

}  // namespace berth::gateway
