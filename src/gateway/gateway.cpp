#include "berth/gateway/gateway.hpp"

#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/rate_limit.hpp"
#include "berth/core/random.hpp"
#include "berth/gateway/jwt.hpp"
#include "sandbox_resource.hpp"
#include "user_session.hpp"

namespace berth::gateway {

namespace asio = boost::asio;
using json = nlohmann::json;
using socketio::socket;

// Events one user may send over all their sockets on this replica (USER_EVENTS_PER_SECOND), on
// top of each socket's own budget (SOCKET_EVENTS_PER_SECOND, in socketio): a user who opens many
// sockets gets no more. One bucket per user id, the least recently seen forgotten first.
struct user_event_budget {
  static constexpr std::size_t max_tracked_users = 100000;

  user_event_budget(const core::config& cfg, core::metrics& metrics)
      : enabled(cfg.user_events_per_second > 0),
        per_second(cfg.user_events_per_second),
        burst(cfg.user_event_burst),
        buckets(std::max<double>(per_second, 1), std::max<double>(burst, 1), max_tracked_users),
        refused(metrics.get_counter("berth_gateway_user_events_rate_limited_total",
                                    "Events refused: their user sent more than USER_EVENTS_PER_SECOND over all sockets")) {}

  // True when the event may go on; otherwise it is answered (RATE_LIMITED, when it asked for an
  // ack) or dropped, and counted.
  bool admit(const std::string& user, socket::ack_fn& ack) {
    if (!enabled) return true;
    std::chrono::milliseconds retry;
    {
      std::lock_guard lock(mutex);
      const auto now = core::rate_clock::now();
      if (buckets.try_take(user, now)) return true;
      retry = std::max(buckets.wait_time(user, now), std::chrono::milliseconds(1));
    }
    refused.inc();
    if (std::uint64_t suppressed = 0; log_lines.allow(suppressed))
      core::logger("gateway")->warn("uid={} over {} events per second across its sockets (burst {}): events refused{}",
                                    core::log_prefix(user, 32), per_second, burst,
                                    suppressed ? " (" + std::to_string(suppressed) + " more such lines suppressed)" : "");
    if (ack) {
      auto e = core::make_error(core::errc::rate_limited, "Too many events from this user: slow down");
      e.retry_after = retry;
      std::exchange(ack, nullptr)(core::ack_error(e));
    }
    return false;
  }

  const bool enabled;
  const std::uint32_t per_second;
  const std::uint32_t burst;
  std::mutex mutex;
  core::keyed_token_buckets buckets;
  core::counter& refused;
  core::log_limiter log_lines;
};

namespace {

constexpr std::chrono::milliseconds mcp_open_timeout{15000};
constexpr std::chrono::milliseconds scrub_timeout{10000};
constexpr core::log_task_failure log_failure{"gateway"};

// The pool's prepare hook. The session gets its own strand: it changes hands to a socket later.
asio::awaitable<std::shared_ptr<pool::prepared_resource>> prepare_sandbox_mcp(docker::client& docker,
                                                                              std::string container_id,
                                                                              core::metrics& metrics) {
  auto session = mcp::sandbox_server_session(asio::make_strand(docker.get_executor()), docker, container_id, metrics);
  auto tools = co_await session->open(mcp_open_timeout);
  if (!tools) {
    core::logger("gateway")->warn("cid={} sandbox MCP server not prepared (it opens when the session starts): {}",
                                  container_id.substr(0, 12), tools.error().message);
    co_return nullptr;
  }
  co_return std::make_shared<prepared_sandbox_mcp>(std::move(session));
}

// The pool's recycle hook: berth/reset through the container's own sandbox server. Only a reply
// that says "clean" lets the container serve someone else.
asio::awaitable<core::result<void>> scrub_sandbox(std::string container_id,
                                                  std::shared_ptr<pool::prepared_resource> resource) {
  auto session = prepared_sandbox_mcp::session_of(resource);
  if (!session) co_return core::make_error(core::errc::sandbox_unavailable, "no sandbox server to scrub with");
  auto reply = co_await session->request("berth/reset", json::object(), scrub_timeout);
  if (!reply) co_return reply.error();
  if (!reply->is_object() || reply->value("clean", false) != true)
    co_return core::make_error(core::errc::sandbox_unavailable, "scrub of " + container_id.substr(0, 12) +
                                                                    " did not report clean: " + reply->dump());
  co_return core::result<void>{};
}

std::shared_ptr<user_session> session_of(const std::shared_ptr<socket>& sock) {
  return std::static_pointer_cast<user_session>(sock->user_data);
}

// One handler per client event for the whole namespace, through the user's event budget to the
// user session's method.
template <void (user_session::*Handler)(json, user_session::ack_fn)>
void route(socketio::namespace_& nsp, std::string event, user_event_budget& budget) {
  nsp.on(std::move(event), [&budget](const std::shared_ptr<socket>& sock, json args, socket::ack_fn ack) {
    auto s = session_of(sock);
    if (s && budget.admit(s->user(), ack)) (s.get()->*Handler)(std::move(args), std::move(ack));
  });
}

}  // namespace

gateway::gateway(gateway_deps deps)
    : deps_(std::move(deps)),
      counters_(std::make_unique<gateway_counters>(deps_.metrics)),
      parked_(std::make_shared<parked_sessions>()),
      services_(std::make_unique<session_services>(session_services{
          deps_.cfg, deps_.metrics, deps_.docker, deps_.pool, deps_.sessions, deps_.history, deps_.limiter,
          deps_.llm_budget, deps_.make_provider, deps_.extra_mcp_servers, *counters_, *parked_})),
      user_events_(std::make_unique<user_event_budget>(deps_.cfg, deps_.metrics)),
      rejected_connects_(deps_.metrics.get_counter("berth_gateway_connect_rejected_total",
                                                    "Connections refused (auth, forbidden session, bad id)")) {
  deps_.metrics.add_gauge("berth_sessions_parked", "Sessions without a socket, in their detach grace on this replica",
                          [this] { return static_cast<double>(parked_->size()); });
  // The hooks capture only what outlives the pool (the docker client, the metrics), not the gateway.
  deps_.pool.set_recycle(scrub_sandbox);
  // A user waits with no container to give while disconnected users' sessions sit parked in their
  // grace, each holding one: the longest-parked one hibernates now (its workspace saved, as at the
  // end of its grace) and its container comes back through the scrub to the waiting user.
  deps_.pool.set_on_starved([parked = std::weak_ptr<parked_sessions>(parked_),
                             &yielded = deps_.metrics.get_counter(
                                 "berth_sessions_yielded_total",
                                 "Parked sessions hibernated before their grace ended: a user waited for a container")] {
    auto sessions = parked.lock();
    if (!sessions) return;
    auto s = sessions->pick_to_yield();
    if (!s) return;
    yielded.inc();
    core::logger("gateway")->info("sid={} parked: hibernating now, a user waits for a container", s->sid());
    s->hibernate_now();
  });
  if (!deps_.cfg.pool_prepare_mcp) return;
  deps_.pool.set_prepare([&docker = deps_.docker, &metrics = deps_.metrics](std::string container_id) {
    return prepare_sandbox_mcp(docker, std::move(container_id), metrics);
  });
}

gateway::~gateway() = default;

void gateway::attach(socketio::namespace_& nsp) {
  nsp.use([this](std::shared_ptr<socket> sock) { return authenticate(this, std::move(sock)); });
  route<&user_session::on_message>(nsp, "message", *user_events_);
  route<&user_session::on_approval>(nsp, "tool:approval", *user_events_);
  route<&user_session::on_history_reset>(nsp, "history:reset", *user_events_);
  route<&user_session::on_session_end>(nsp, "session:end", *user_events_);
  route<&user_session::on_cancel>(nsp, "agent:cancel", *user_events_);
  nsp.on_connection([this](std::shared_ptr<socket> sock) { on_connection(std::move(sock)); });
}

asio::awaitable<std::optional<socketio::connect_error>> gateway::authenticate(gateway* self,
                                                                              std::shared_ptr<socket> sock) {
  auto refuse = [self](const core::error& e) {
    self->rejected_connects_.inc();
    core::logger("gateway")->info("connection refused: {} {}", core::to_string(e.code), e.message);
    auto data = core::error_body(e);  // {code, retryAfterMs?}: the message travels beside it
    data.erase("message");
    return socketio::connect_error{e.message, std::move(data)};
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
    auto claims = verify_jwt(auth_string("token").value_or(""), jwt_policy_of(cfg), session::system_now_ms() / 1000);
    if (!claims) co_return refuse(claims.error());
    jwt_user = claims->subject;
  }
  const auto& query = sock->handshake().query;
  session_identity who;
  if (auto it = query.find("sessionId"); it != query.end() && !it->second.empty()) {
    if (auto valid = session::validate_session_id(it->second); !valid) co_return refuse(valid.error());
    who.sid = it->second;
  } else {
    who.sid = core::random_token(15);
  }
  auto existing = co_await self->deps_.sessions.get(who.sid);
  if (!existing) co_return refuse(core::make_error(existing.error().code, "session store unavailable: " + existing.error().message));
  if (*existing) {
    auto allowed = session::authorize_resume(**existing, jwt_user, auth_string("resumeToken"));
    if (!allowed) co_return refuse(allowed.error());
  } else if (!jwt_user && cfg.max_sessions_per_address > 0 && !sock->handshake().address_key.empty()) {
    // Without auth anyone may open sessions: one address may hold only so many at once. The
    // same key as Engine.IO's per-address limits (TRUSTED_PROXIES rule; IPv6 counted per /64).
    who.address = sock->handshake().address_key;
    auto admitted = co_await self->deps_.sessions.admit_address(who.address, who.sid, cfg.max_sessions_per_address);
    if (!admitted) co_return refuse(admitted.error());
  }
  who.known = existing->has_value();
  who.user = jwt_user ? *jwt_user : (*existing ? (*existing)->user : who.sid);
  if (cfg.allow_user_api_key) who.api_key = auth_string("apiKey");
  sock->data = json{{"sessionId", who.sid}, {"user", who.user}};  // what a recovered socket is
  sock->user_data = std::make_shared<user_session>(*self->services_, sock, std::move(who));
  co_return std::nullopt;
}

void gateway::on_connection(std::shared_ptr<socket> sock) {
  if (sock->recovered()) recovered_session(sock);
  auto s = session_of(sock);
  if (!s) return sock->disconnect(true);
  std::weak_ptr<user_session> weak = s;
  sock->on_any([weak, &budget = *user_events_](const std::string& event, json args, socket::ack_fn ack) {
    auto us = weak.lock();
    if (us && budget.admit(us->user(), ack)) us->on_unknown(event, std::move(args), std::move(ack));
  });
  sock->on_disconnect([this, weak, weak_sock = std::weak_ptr<socket>(sock)](const std::string& reason) {
    auto us = weak.lock();
    if (!us) return;
    unregister_session(us->sid(), us.get());
    auto so = weak_sock.lock();
    us->on_disconnect(reason, so ? so->hold_for_recovery() : nullptr);
  });
  register_session(s->sid(), s);
  s->start();
}

// A recovered socket skipped the middleware (its pid proved it): its session is the one its
// data names, taken back like a resume, without system:ready.
void gateway::recovered_session(const std::shared_ptr<socket>& sock) {
  const auto& data = sock->data;
  session_identity who;
  if (data.is_object() && data.contains("sessionId") && data["sessionId"].is_string() && data.contains("user") &&
      data["user"].is_string()) {
    who.sid = data["sessionId"].get<std::string>();
    who.user = data["user"].get<std::string>();
  }
  if (!session::validate_session_id(who.sid) || !session::validate_user_id(who.user)) {
    core::logger("gateway")->warn("recovered socket {} carries no valid session: closed", sock->id());
    return;
  }
  who.known = true;
  who.recovered = true;
  const auto& auth = sock->auth();
  if (deps_.cfg.allow_user_api_key && auth.is_object())
    if (auto it = auth.find("apiKey"); it != auth.end() && it->is_string()) who.api_key = it->get<std::string>();
  sock->user_data = std::make_shared<user_session>(*services_, sock, std::move(who));
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
    if (auto old = previous->socket()) {
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

std::size_t gateway::parked_count() const { return parked_->size(); }

void gateway::drain() { parked_->drain(); }

asio::awaitable<void> gateway::on_session_reaped(session::session_record rec) {
  // A session reaped with a container is one no pool holds (kept over the save cap, or its
  // replica died): remove it here. A hibernated one has none; its archive went with the session.
  if (!rec.container.empty()) {
    auto r = co_await deps_.docker.remove_container(rec.container, true);
    if (!r) core::logger("gateway")->warn("sid={} container {} not removed: {}", rec.id, rec.container.substr(0, 12), r.error().message);
  }
  co_await deps_.history.reset(rec.id);
  core::logger("gateway")->info("sid={} uid={} idle session reaped", rec.id, rec.user);
}

asio::awaitable<std::size_t> gateway::hibernate_parked(std::chrono::milliseconds limit) {
  for (auto& s : parked_->all()) s->hibernate_now();
  asio::steady_timer wait(co_await asio::this_coro::executor);
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (parked_->busy() > 0 && std::chrono::steady_clock::now() < deadline) {
    wait.expires_after(std::chrono::milliseconds(20));
    co_await wait.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  co_return parked_->busy();
}

}  // namespace berth::gateway
