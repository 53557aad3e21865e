#include "berth/session/janitor.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;
using detail::log;

// ---- replica_heartbeat ------------------------------------------------------------------------

std::shared_ptr<replica_heartbeat> replica_heartbeat::create(std::shared_ptr<redis::redis_client> redis, key_schema keys,
                                                             std::string replica_id, std::chrono::milliseconds ttl,
                                                             core::metrics& metrics) {
  return std::make_shared<replica_heartbeat>(private_tag{}, std::move(redis), std::move(keys), std::move(replica_id), ttl,
                                             metrics);
}

replica_heartbeat::replica_heartbeat(private_tag, std::shared_ptr<redis::redis_client> redis, key_schema keys,
                                     std::string replica_id, std::chrono::milliseconds ttl, core::metrics& metrics)
    : redis_(std::move(redis)),
      keys_(std::move(keys)),
      id_(std::move(replica_id)),
      ttl_(ttl),
      c_failed_(metrics.get_counter("berth_replica_heartbeat_failures_total", "replica heartbeats that failed")),
      strand_(asio::make_strand(redis_->get_executor())),
      timer_(strand_) {}

awaitable<core::result<void>> replica_heartbeat::beat() {
  // The `replicas` zset records that this replica exists in this Redis: the orphan reaper only
  // removes containers of replicas it has seen beat (never another deployment's on a shared dockerd).
  const auto now = std::to_string(system_now_ms());
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(argv("SET", keys_.replica(id_), now, "PX", std::to_string(ttl_.count())));
  cmds.push_back(argv("ZADD", keys_.replicas(), now, id_));
  if (status_) cmds.push_back(argv("HSET", keys_.replica_stats(), id_, status_()));
  const auto expected = cmds.size();
  auto r = co_await redis_->pipeline(std::move(cmds));
  if (!r) co_return r.error();
  if (r->size() != expected) co_return core::make_error(core::errc::internal, "redis heartbeat: reply count mismatch");
  if (auto z = redis::as_integer((*r)[1], "ZADD replicas"); !z) co_return z.error();
  if (expected == 3)
    if (auto h = redis::as_integer((*r)[2], "HSET replica-stats"); !h) co_return h.error();
  co_return redis::expect_ok((*r)[0], "SET replica");
}

awaitable<void> replica_heartbeat::loop(std::shared_ptr<replica_heartbeat> self) {
  // A failed beat (Redis not connected yet at start-up, or down) is retried soon: until it
  // succeeds, other replicas cannot tell this one is alive.
  const auto interval = std::chrono::duration_cast<std::chrono::milliseconds>(self->ttl_ / 3);
  auto beat = [self] { return self->beat(); };  // named: see the GCC 12 rules in docs/DEVELOPING.md
  co_await detail::run_periodically(std::move(beat), self->stopped_, self->timer_, interval,
                                    std::min(interval, std::chrono::milliseconds(250)), self->c_failed_,
                                    "replica heartbeat");
}

void replica_heartbeat::start() { asio::co_spawn(strand_, loop(shared_from_this()), asio::detached); }

namespace {
// Orderly shutdown: the heartbeat key and the published status go at once (no stale entry).
awaitable<void> forget_replica(std::shared_ptr<redis::redis_client> redis, std::shared_ptr<std::vector<std::string>> keys) {
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(argv("DEL", (*keys)[0]));
  cmds.push_back(argv("HDEL", (*keys)[1], (*keys)[2]));
  (void)co_await redis->pipeline(std::move(cmds));
}
}  // namespace

void replica_heartbeat::stop() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    if (self->stopped_) return;
    self->stopped_ = true;
    self->timer_.cancel();
    auto keys = std::make_shared<std::vector<std::string>>(
        std::vector<std::string>{self->keys_.replica(self->id_), self->keys_.replica_stats(), self->id_});
    asio::co_spawn(self->strand_, forget_replica(self->redis_, std::move(keys)), asio::detached);
  });
}

// ---- janitor ----------------------------------------------------------------------------------

std::shared_ptr<janitor> janitor::create(session_store& store, janitor_options opts, reaped_fn on_reaped,
                                         connected_fn connected, core::metrics& metrics) {
  return std::make_shared<janitor>(private_tag{}, store, opts, std::move(on_reaped), std::move(connected), metrics);
}

janitor::janitor(private_tag, session_store& store, janitor_options opts, reaped_fn on_reaped, connected_fn connected,
                 core::metrics& metrics)
    : store_(store),
      opts_(opts),
      on_reaped_(std::move(on_reaped)),
      connected_(std::move(connected)),
      c_reaped_(metrics.get_counter("berth_sessions_reaped_total", "idle sessions ended by this replica's janitor")),
      c_failed_(metrics.get_counter("berth_janitor_failures_total", "janitor sweeps that failed (Redis errors)")),
      strand_(asio::make_strand(store.redis()->get_executor())),
      timer_(strand_) {}

awaitable<core::result<std::size_t>> janitor::sweep() {
  // 1. Sessions with a socket here are active by definition: refresh them first.
  if (connected_) {
    auto live = connected_();
    if (!live.empty()) {
      auto t = co_await store_.touch_many(std::move(live));
      if (!t) co_return t.error();
    }
  }
  // 2. Claim the idle ones. The cutoff is re-checked inside the claim script, so a session touched
  //    between the listing and the claim is left alone; ZREM makes the claim exactly-once.
  const auto cutoff = store_.options().clock() - store_.options().idle_timeout.count();
  auto idle = co_await store_.idle_sessions(cutoff, opts_.batch);
  if (!idle) co_return idle.error();
  std::size_t reaped = 0;
  for (auto& sid : *idle) {
    auto rec = co_await store_.end_if_idle(sid, cutoff);
    if (!rec) co_return rec.error();
    if (!*rec) continue;  // another replica won, or the user came back
    ++reaped;
    c_reaped_.inc();
    log()->info("session reaped (idle) sid={} cid={}", sid, core::log_prefix((*rec)->container, 12));
    if (on_reaped_) co_await on_reaped_(std::move(**rec));
  }
  co_return reaped;
}

awaitable<void> janitor::loop(std::shared_ptr<janitor> self) {
  auto sweep = [self] { return self->sweep(); };  // named: see the GCC 12 rules in docs/DEVELOPING.md
  co_await detail::run_periodically(std::move(sweep), self->stopped_, self->timer_, self->opts_.interval,
                                    self->opts_.interval, self->c_failed_, "janitor sweep");
}

void janitor::start() { asio::co_spawn(strand_, loop(shared_from_this()), asio::detached); }

void janitor::stop() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

}  // namespace berth::session
