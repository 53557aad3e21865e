#include "berth/gateway/gateway.hpp"

#include <deque>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/agent/turn_fsm.hpp"
#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"
#include "berth/gateway/jwt.hpp"
#include "berth/gateway/mcp_router.hpp"

namespace berth::gateway {

namespace asio = boost::asio;
using json = nlohmann::json;
using socketio::socket;

namespace {

constexpr const char* system_prompt =
    "You are Berth's coding agent. You work inside the user's own sandbox container; its files live in "
    "/workspace. Use the tools to list, read and write files and to run commands there, and explain what you did.";

std::int64_t now_ms() { return session::system_now_ms(); }

json error_json(const core::error& e) {
  json j{{"code", core::to_string(e.code)}, {"message", e.message}};
  if (auto retry = pool::retry_after_of(e)) j["retryAfterMs"] = retry->count();
  return j;
}

json ack_ok() { return json::array({json{{"ok", true}}}); }

json ack_error(const core::error& e) {
  return json::array({json{{"ok", false}, {"code", core::to_string(e.code)}, {"message", e.message}}});
}

constexpr core::log_task_failure log_failure{"gateway"};

std::vector<llm::tool_spec> to_tool_specs(const std::vector<mcp::tool_descriptor>& tools) {
  std::vector<llm::tool_spec> specs;
  for (const auto& t : tools) specs.push_back({t.name, t.description, t.input_schema});
  return specs;
}

constexpr std::chrono::milliseconds mcp_open_timeout{15000};

// The sandbox's MCP exec, opened by the pool while its container was idle (the exec is the slow
// part of a session start: it costs dockerd ~0.1 s of CPU, too much to pay while users wait).
struct prepared_sandbox_mcp final : pool::prepared_resource {
  explicit prepared_sandbox_mcp(std::shared_ptr<mcp_session> s) : session(std::move(s)) {}
  void close() override { session->close(); }
  std::shared_ptr<mcp_session> session;
};

// The pool's prepare hook. The session gets its own strand: it changes hands to a socket later.
asio::awaitable<std::shared_ptr<pool::prepared_resource>> prepare_sandbox_mcp(docker::client& docker,
                                                                              std::string container_id,
                                                                              std::vector<std::string> command,
                                                                              core::metrics& metrics) {
  auto session = std::make_shared<mcp_session>(asio::make_strand(docker.get_executor()), docker, container_id,
                                               std::move(command), metrics);
  auto tools = co_await session->open(mcp_open_timeout);
  if (!tools) {
    core::logger("gateway")->warn("cid={} sandbox MCP server not prepared (it opens when the session starts): {}",
                                  container_id.substr(0, 12), tools.error().message);
    co_return nullptr;
  }
  co_return std::make_shared<prepared_sandbox_mcp>(std::move(session));
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// One user's session on this replica. Lives on its socket's strand.

struct user_session : std::enable_shared_from_this<user_session> {
  gateway& gw;
  std::weak_ptr<socket> sock;
  socketio::socket::ack_fn current_ack;
  std::string sid;
  std::string user;
  std::optional<session::session_record> existing;  // set by the middleware on resume
  std::optional<std::string> api_key;
  std::string resume_token;
  pool::container_lease lease;
  std::shared_ptr<mcp_router> mcp;  // every MCP server of this session (sandbox first)
  std::unique_ptr<llm::llm_provider> provider;
  std::optional<agent::turn_fsm> fsm;
  bool ready = false;
  bool closed = false;
  bool ended = false;  // session:end: the container goes, not kept for resume
  // Inputs that arrived before system:ready, replayed in order.
  struct pending_input {
    std::string event;
    json args;
    socketio::socket::ack_fn ack;
  };
  std::deque<pending_input> before_ready;
  std::deque<session::user_permit> turn_permits;  // one per accepted message, released by end_turn
  session::user_permit step_permit;               // the tool:approval being processed
  std::deque<session::history_entry> history_queue;
  bool history_writing = false;

  user_session(gateway& g, const std::shared_ptr<socket>& s) : gw(g), sock(s), strand_(s->executor()) {}

  void emit(const std::string& event, const json& payload) {
    if (auto s = sock.lock()) s->emit(event, payload.is_null() ? json::array() : json::array({payload}));
  }
  void emit_error(const core::error& e) { emit("agent:error", error_json(e)); }
  void ack_if_pending() {
    if (current_ack) std::exchange(current_ack, nullptr)(ack_ok());
  }

  // ---- actions of the agent state machine
  void apply(std::vector<agent::action> actions) {
    auto self = shared_from_this();
    for (auto& a : actions) {
      std::visit(
          [&](auto& act) {
            using T = std::decay_t<decltype(act)>;
            if constexpr (std::is_same_v<T, agent::emit>) {
              if (act.event == "agent:response" || act.event == "agent:error" ||
                  act.event == "tool:approval_required")
                step_permit.reset();  // the approval's step is over
              emit(act.event, act.payload);
            } else if constexpr (std::is_same_v<T, agent::call_llm>) {
              asio::co_spawn(strand(), run_llm(self, std::move(act)), log_failure);
            } else if constexpr (std::is_same_v<T, agent::run_tool>) {
              asio::co_spawn(strand(), run_tool(self, std::move(act)), log_failure);
            } else if constexpr (std::is_same_v<T, agent::cancel_tool>) {
              // The MCP deadline cancels a running call; nothing else holds it.
            } else if constexpr (std::is_same_v<T, agent::append_history>) {
              for (auto& e : to_history_entries(act.message, now_ms())) history_queue.push_back(std::move(e));
              if (!history_writing) asio::co_spawn(strand(), write_history(self), log_failure);
            } else if constexpr (std::is_same_v<T, agent::clear_history>) {
              history_queue.clear();
              asio::co_spawn(strand(), reset_history(self), log_failure);
            } else if constexpr (std::is_same_v<T, agent::ack>) {
              if (current_ack) std::exchange(current_ack, nullptr)(act.ok ? ack_ok() : ack_error(act.error.value_or(core::error{})));
            } else if constexpr (std::is_same_v<T, agent::end_turn>) {
              if (!turn_permits.empty()) turn_permits.pop_front();
              step_permit.reset();
            }
          },
          a);
    }
  }

  engineio::strand_type strand() const { return strand_; }
  engineio::strand_type strand_;

  static asio::awaitable<void> run_llm(std::shared_ptr<user_session> self, agent::call_llm act) {
    llm::llm_request req;
    req.system_prompt = system_prompt;
    req.messages = std::move(act.messages);
    req.tools = std::move(act.tools);
    req.max_output_tokens = self->gw.deps_.cfg.max_output_tokens;
    req.model = self->gw.deps_.cfg.llm_model;
    auto reply = co_await self->provider->complete(req);
    if (self->closed || !self->fsm) co_return;
    if (reply)
      self->apply(self->fsm->on_llm_reply(*reply));
    else
      self->apply(self->fsm->on_llm_failed(reply.error().code, reply.error().message));
  }

  static asio::awaitable<void> run_tool(std::shared_ptr<user_session> self, agent::run_tool act) {
    const auto started = std::chrono::steady_clock::now();
    const auto timeout = self->gw.deps_.cfg.tool_timeout;
    core::result<mcp::tool_call_outcome> outcome = core::make_error(core::errc::sandbox_unavailable, "no sandbox session");
    if (self->mcp) outcome = co_await self->mcp->call_tool(act.name, act.args, timeout);
    if (self->closed || !self->fsm) co_return;
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    if (!outcome && outcome.error().code == core::errc::tool_timeout) {
      self->apply(self->fsm->on_tool_timeout(act.call_id, took));
    } else if (!outcome) {
      self->apply(self->fsm->on_tool_result(act.call_id, outcome.error().message, true, took));
    } else {
      self->apply(self->fsm->on_tool_result(act.call_id, std::move(outcome->text), outcome->is_error, took));
    }
  }

  static asio::awaitable<void> write_history(std::shared_ptr<user_session> self) {
    self->history_writing = true;
    while (!self->history_queue.empty()) {
      auto e = std::move(self->history_queue.front());
      self->history_queue.pop_front();
      auto r = co_await self->gw.deps_.history.append(self->sid, std::move(e));
      if (!r) core::logger("gateway")->warn("sid={} history not saved: {}", self->sid, r.error().message);
    }
    self->history_writing = false;
  }

  static asio::awaitable<void> reset_history(std::shared_ptr<user_session> self) {
    auto r = co_await self->gw.deps_.history.reset(self->sid);
    if (!r) core::logger("gateway")->warn("sid={} history not cleared: {}", self->sid, r.error().message);
  }

  // ---- client events
  void on_event(const std::string& event, json args, socketio::socket::ack_fn ack) {
    if (!ready) {
      if (before_ready.size() >= 32) {
        if (ack) ack(ack_error(core::make_error(core::errc::too_many_requests, "session is still starting")));
        return;
      }
      before_ready.push_back({event, std::move(args), std::move(ack)});
      return;
    }
    asio::co_spawn(strand(), handle_event(shared_from_this(), event, std::move(args), std::move(ack)), log_failure);
  }

  static asio::awaitable<void> handle_event(std::shared_ptr<user_session> self, std::string event, json args,
                                            socketio::socket::ack_fn ack) {
    auto& gw = self->gw;
    const json payload = args.empty() ? json() : args[0];
    auto reject = [&](const core::error& e, bool as_event) {
      if (e.code == core::errc::invalid_payload) gw.invalid_payloads_.inc();
      if (as_event) self->emit_error(e);
      if (ack) ack(ack_error(e));
    };
    if (event == "message" || event == "tool:approval") {
      std::optional<std::string> text;
      std::optional<agent::approval> approval;
      if (event == "message") {
        auto parsed = agent::parse_user_message(payload, gw.deps_.cfg.max_message_bytes);
        if (!parsed) co_return reject(parsed.error(), true);
        text = std::move(*parsed);
      } else {
        auto parsed = agent::parse_approval(payload);
        if (!parsed) co_return reject(parsed.error(), true);
        approval = std::move(*parsed);
      }
      // The per-user limit counts requests across sockets and replicas (Redis leases).
      auto permit = co_await gw.deps_.limiter.acquire(self->user);
      if (self->closed || !self->fsm) co_return;
      if (!permit) {
        if (permit.error().code == core::errc::too_many_requests) {
          gw.too_many_.inc();
          // The operator guide greps for this phrase (MAX_REQUESTS_PER_USER refusals).
          core::logger("gateway")->warn("sid={} uid={} Too many concurrent requests: {}", self->sid,
                                        core::log_prefix(self->user, 32), permit.error().message);
        }
        co_return reject(permit.error(), true);
      }
      self->current_ack = std::move(ack);
      if (text) {
        self->turn_permits.push_back(std::move(*permit));
        self->apply(self->fsm->on_user_message(std::move(*text)));
      } else {
        self->step_permit = std::move(*permit);
        self->apply(self->fsm->on_approval(approval->call_id, approval->approved));
        // NO_PENDING_CALL and the like end the step at once.
        if (self->fsm->phase() != agent::turn_phase::running_tool && self->fsm->phase() != agent::turn_phase::waiting_llm)
          self->step_permit.reset();
      }
      self->ack_if_pending();  // the machine did not ack: do it now
      co_return;
    }
    if (event == "history:reset") {
      self->current_ack = std::move(ack);
      self->apply(self->fsm->on_history_reset());
      self->ack_if_pending();
      co_return;
    }
    if (event == "session:end") {
      co_await end_session(self, std::move(ack));
      co_return;
    }
    reject(core::make_error(core::errc::invalid_payload, "unknown event '" + core::log_prefix(event, 40) + "'"), true);
  }

  static asio::awaitable<void> end_session(std::shared_ptr<user_session> self, socketio::socket::ack_fn ack) {
    auto& gw = self->gw;
    self->ended = true;
    if (self->fsm) self->apply(self->fsm->abort(core::errc::internal, "session ended"));
    auto r = co_await gw.deps_.sessions.end(self->sid);
    co_await gw.deps_.history.reset(self->sid);
    if (self->mcp) self->mcp->close();
    // Destroyed before the ack, so "ended" means the container is gone.
    if (self->lease) {
      const auto id = self->lease.detach();
      auto removed = co_await gw.deps_.docker.remove_container(id, true);
      if (!removed) core::logger("gateway")->warn("sid={} container {} not removed: {}", self->sid, id.substr(0, 12), removed.error().message);
    }
    core::logger("gateway")->info("sid={} uid={} session ended by the user", self->sid, self->user);
    if (ack) ack(r ? ack_ok() : ack_error(r.error()));
    self->emit("system:message", "Session ended; its container was destroyed.");
    if (auto s = self->sock.lock()) s->disconnect(true);
  }

  // ---- provisioning after CONNECT
  static asio::awaitable<void> provision(std::shared_ptr<user_session> self) {
    auto& gw = self->gw;
    auto& cfg = gw.deps_.cfg;
    auto log = core::logger("gateway");
    const bool resumed = self->existing.has_value();
    std::optional<std::string> notice;
    auto fail = [&](const core::error& e) {
      gw.provision_failures_.inc();
      log->warn("sid={} uid={} provisioning failed: {} {}", self->sid, self->user, core::to_string(e.code), e.message);
      self->emit_error(e);
      for (auto& in : self->before_ready)
        if (in.ack) in.ack(ack_error(e));
      self->before_ready.clear();
      if (auto s = self->sock.lock()) s->disconnect(true);
    };

    // Only one replica provisions a session id at a time.
    auto lock = co_await gw.deps_.sessions.lock(self->sid, std::chrono::milliseconds(10000));
    if (!lock) co_return fail(lock.error());
    if (resumed) {
      auto adopted = co_await gw.deps_.pool.adopt(self->existing->container);
      if (adopted) {
        self->lease = std::move(*adopted);
      } else {
        gw.containers_replaced_.inc();
        log->warn("sid={} container {} is gone ({}): replacing it", self->sid, self->existing->container.substr(0, 12),
                  adopted.error().message);
        notice = "Your previous sandbox container was no longer running; a new one was started.";
      }
    }
    if (!self->lease) {
      auto on_queued = [weak = std::weak_ptr<user_session>(self)](std::size_t position) {
        if (auto s = weak.lock()) s->emit("system:queued", json{{"position", position}});
      };
      auto lease = co_await gw.deps_.pool.acquire(on_queued);
      if (!lease) {
        co_await gw.deps_.sessions.unlock(*lock);
        co_return fail(lease.error());
      }
      self->lease = std::move(*lease);
    }
    if (self->closed) {
      self->lease.detach();  // the user left meanwhile: keep it for a resume (the janitor owns it now)
      co_await gw.deps_.sessions.unlock(*lock);
      co_return;
    }
    if (resumed) {
      if (self->lease.id() != self->existing->container) co_await gw.deps_.sessions.set_container(self->sid, self->lease.id());
      auto token = co_await gw.deps_.sessions.rotate_resume_token(self->sid);
      if (!token || !*token) {
        co_await gw.deps_.sessions.unlock(*lock);
        co_return fail(token ? core::make_error(core::errc::internal, "session vanished while resuming") : token.error());
      }
      self->resume_token = **token;
    } else {
      auto created = co_await gw.deps_.sessions.create(self->sid, self->user, self->lease.id());
      if (!created) {
        co_await gw.deps_.sessions.unlock(*lock);
        co_return fail(created.error());
      }
      self->resume_token = created->resume_token;
    }
    co_await gw.deps_.sessions.unlock(*lock);

    auto provider = gw.deps_.make_provider(self->api_key);
    if (!provider) co_return fail(provider.error());
    self->provider = std::move(*provider);

    std::vector<session::history_entry> entries;
    if (auto h = co_await gw.deps_.history.read(self->sid); h) entries = std::move(*h);
    else log->warn("sid={} history unavailable: {}", self->sid, h.error().message);
    if (self->closed) co_return;

    json history = json::array();
    for (const auto& e : entries) {
      json j{{"role", e.role}, {"content", e.content}, {"ts", e.ts_ms}};
      if (e.name) j["name"] = *e.name;
      if (e.call_id) j["callId"] = *e.call_id;
      history.push_back(std::move(j));
    }
    // Ready as soon as the container and the session are the user's. The sandbox's MCP server
    // (a docker exec: the slow part) is usually open already (the pool prepared it); otherwise it
    // starts next, while the user types: input that arrives meanwhile waits in before_ready and is
    // handled once the tools are known.
    self->emit("system:ready", json{{"sessionId", self->sid},
                                    {"containerId", self->lease.id()},
                                    {"provider", std::string(self->provider->name())},
                                    {"model", self->provider->model()},
                                    {"resumed", resumed},
                                    {"resumeToken", self->resume_token},
                                    {"limits", {{"maxConcurrentRequests", cfg.max_requests_per_user}}},
                                    {"history", std::move(history)}});

    // The MCP server inside the container, and the extra servers of mcp-config.json.
    llm::http_client_options mcp_http;
    mcp_http.connect_timeout = std::chrono::milliseconds(5000);
    mcp_http.total_timeout = std::max(cfg.tool_timeout, std::chrono::milliseconds(15000));
    mcp_http.extra_ca_file = cfg.llm_ca_file;
    std::shared_ptr<mcp_session> prepared;
    if (auto p = std::dynamic_pointer_cast<prepared_sandbox_mcp>(self->lease.take_prepared())) prepared = p->session;
    self->mcp = std::make_shared<mcp_router>(self->strand(), gw.deps_.docker, self->lease.id(), gw.deps_.sandbox_command,
                                             gw.deps_.extra_mcp_servers, mcp_http, gw.deps_.metrics, "sid=" + self->sid,
                                             std::move(prepared));
    auto opened = co_await self->mcp->open(mcp_open_timeout);
    std::vector<mcp::tool_descriptor> tools = std::move(opened.tools);
    if (opened.sandbox_error) {
      log->warn("sid={} cid={} sandbox MCP unavailable: {}", self->sid, self->lease.id().substr(0, 12),
                opened.sandbox_error->message);
      self->emit_error(*opened.sandbox_error);
    }
    if (self->closed) co_return;

    agent::turn_options opts;
    opts.max_tool_rounds = cfg.max_tool_rounds;
    self->fsm.emplace(opts, to_tool_specs(tools), from_history_entries(entries));
    self->ready = true;
    log->info("sid={} uid={} cid={} ready ({}, {} tools)", self->sid, self->user, self->lease.id().substr(0, 12),
              resumed ? "resumed" : "new", tools.size());
    if (notice) self->emit("system:message", *notice);
    auto pending = std::move(self->before_ready);
    self->before_ready.clear();
    for (auto& in : pending) self->on_event(in.event, std::move(in.args), std::move(in.ack));
  }

  static asio::awaitable<void> on_disconnect(std::shared_ptr<user_session> self, std::string reason) {
    self->closed = true;
    if (self->mcp) self->mcp->close();
    self->turn_permits.clear();
    self->step_permit.reset();
    if (!self->ended && self->lease) {
      // Keep the container for SESSION_IDLE_TIMEOUT_MS: the user may resume here or on another replica.
      self->lease.detach();
      co_await self->gw.deps_.sessions.touch(self->sid);
    }
    core::logger("gateway")->info("sid={} uid={} disconnected ({})", self->sid, self->user, reason);
  }
};

// ------------------------------------------------------------------------------------------------

gateway::gateway(gateway_deps deps)
    : deps_(std::move(deps)),
      rejected_connects_(deps_.metrics.get_counter("berth_gateway_connect_rejected_total",
                                                    "Connections refused (auth, forbidden session, bad id)")),
      too_many_(deps_.metrics.get_counter("berth_gateway_too_many_requests_total",
                                          "Requests refused by the per-user limit")),
      invalid_payloads_(deps_.metrics.get_counter("berth_gateway_invalid_payloads_total",
                                                  "Client events with an invalid payload or unknown name")),
      provision_failures_(deps_.metrics.get_counter("berth_gateway_provision_failures_total",
                                                     "Sessions that could not get a container or be stored")),
      containers_replaced_(deps_.metrics.get_counter("berth_gateway_containers_replaced_total",
                                                      "Resumed sessions whose container had died")) {
  // Captures only what outlives the pool (the docker client, the metrics), not the gateway.
  if (!deps_.cfg.pool_prepare_mcp) return;
  deps_.pool.set_prepare([&docker = deps_.docker, &metrics = deps_.metrics,
                          command = deps_.sandbox_command](std::string container_id) {
    return prepare_sandbox_mcp(docker, std::move(container_id), command, metrics);
  });
}

gateway::~gateway() = default;

void gateway::attach(socketio::namespace_& nsp) {
  nsp.use([this](std::shared_ptr<socket> sock) { return authenticate(this, std::move(sock)); });
  nsp.on_connection([this](std::shared_ptr<socket> sock) { on_connection(std::move(sock)); });
}

asio::awaitable<std::optional<socketio::connect_error>> gateway::authenticate(gateway* self,
                                                                              std::shared_ptr<socket> sock) {
  auto refuse = [self](const core::error& e) {
    self->rejected_connects_.inc();
    core::logger("gateway")->info("connection refused: {} {}", core::to_string(e.code), e.message);
    return socketio::connect_error{e.message, json{{"code", core::to_string(e.code)}}};
  };
  const auto& cfg = self->deps_.cfg;
  const auto& auth = sock->auth();
  auto auth_string = [&](const char* key) -> std::optional<std::string> {
    if (!auth.is_object()) return std::nullopt;
    auto it = auth.find(key);
    if (it == auth.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  std::optional<std::string> jwt_user;
  if (!cfg.auth_jwt_secret.empty()) {
    auto claims = verify_jwt(auth_string("token").value_or(""), cfg.auth_jwt_secret, now_ms() / 1000);
    if (!claims) co_return refuse(claims.error());
    jwt_user = claims->subject;
  }
  const auto& query = sock->handshake().query;
  std::string sid;
  if (auto it = query.find("sessionId"); it != query.end() && !it->second.empty()) {
    if (auto valid = session::validate_session_id(it->second); !valid) co_return refuse(valid.error());
    sid = it->second;
  } else {
    sid = core::random_token(15);
  }
  auto existing = co_await self->deps_.sessions.get(sid);
  if (!existing) co_return refuse(core::make_error(existing.error().code, "session store unavailable: " + existing.error().message));
  if (*existing) {
    auto allowed = session::authorize_resume(**existing, jwt_user, auth_string("resumeToken"));
    if (!allowed) co_return refuse(allowed.error());
  }
  auto s = std::make_shared<user_session>(*self, sock);
  s->sid = sid;
  s->user = jwt_user ? *jwt_user : (*existing ? (*existing)->user : sid);
  s->existing = *existing;
  if (cfg.allow_user_api_key) s->api_key = auth_string("apiKey");
  sock->user_data = s;
  co_return std::nullopt;
}

void gateway::on_connection(std::shared_ptr<socket> sock) {
  auto s = std::static_pointer_cast<user_session>(sock->user_data);
  if (!s) return sock->disconnect(true);
  std::weak_ptr<user_session> weak = s;
  for (const char* event : {"message", "tool:approval", "history:reset", "session:end"}) {
    sock->on(event, [weak, name = std::string(event)](json args, socket::ack_fn ack) {
      if (auto us = weak.lock()) us->on_event(name, std::move(args), std::move(ack));
    });
  }
  sock->on_any([weak](const std::string& event, json args, socket::ack_fn ack) {
    if (auto us = weak.lock()) us->on_event(event, std::move(args), std::move(ack));
  });
  sock->on_disconnect([this, s](const std::string& reason) {
    unregister_session(s->sid, s.get());
    asio::co_spawn(s->strand(), user_session::on_disconnect(s, reason), log_failure);
    s->sock.reset();
  });
  register_session(s->sid, s);
  asio::co_spawn(s->strand(), user_session::provision(s), log_failure);
}

void gateway::register_session(const std::string& sid, std::shared_ptr<user_session> s) {
  std::shared_ptr<user_session> previous;
  {
    std::lock_guard lock(mutex_);
    previous = connected_[sid].lock();
    connected_[sid] = s;
  }
  // The same session opened again (another tab, a reconnect that beat the disconnect): the
  // newest socket wins, the older one is told and closed.
  if (previous && previous.get() != s.get())
    if (auto old = previous->sock.lock()) {
      old->emit("system:message", json::array({"This session was opened elsewhere."}));
      old->disconnect(true);
    }
}

void gateway::unregister_session(const std::string& sid, const user_session* s) {
  std::lock_guard lock(mutex_);
  auto it = connected_.find(sid);
  if (it != connected_.end() && (it->second.expired() || it->second.lock().get() == s)) connected_.erase(it);
}

std::vector<std::string> gateway::connected_sessions() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> out;
  for (const auto& [sid, _] : connected_) out.push_back(sid);
  return out;
}

asio::awaitable<void> gateway::on_session_reaped(session::session_record rec) {
  if (!rec.container.empty()) {
    auto r = co_await deps_.docker.remove_container(rec.container, true);
    if (!r) core::logger("gateway")->warn("sid={} container {} not removed: {}", rec.id, rec.container.substr(0, 12), r.error().message);
  }
  co_await deps_.history.reset(rec.id);
  core::logger("gateway")->info("sid={} uid={} idle session reaped", rec.id, rec.user);
}

}  // namespace berth::gateway
