#include "berth/session/orphan_reaper.hpp"

#include <algorithm>

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

namespace {
std::string kept_summary(const std::map<orphan_verdict, std::size_t>& kept) {
  std::string s;
  for (const auto& [v, n] : kept) {
    if (!s.empty()) s += ',';
    s += std::string(to_string(v)) + ':' + std::to_string(n);
  }
  return s.empty() ? "-" : s;
}
}  // namespace

std::shared_ptr<orphan_reaper> orphan_reaper::create(session_store& store, docker::client& docker,
                                                     orphan_reaper_options opts, core::metrics& metrics) {
  return std::make_shared<orphan_reaper>(private_tag{}, store, docker, std::move(opts), metrics);
}

orphan_reaper::orphan_reaper(private_tag, session_store& store, docker::client& docker, orphan_reaper_options opts,
                             core::metrics& metrics)
    : store_(store),
      docker_(docker),
      opts_(std::move(opts)),
      c_reaped_(metrics.get_counter("berth_orphans_reaped_total",
                                    "orphaned containers (dead replica, no session) removed by this replica")),
      c_failed_(metrics.get_counter("berth_orphan_reaper_failures_total",
                                    "orphan reaper rounds or container removals that failed")),
      strand_(asio::make_strand(store.redis()->get_executor())),
      timer_(strand_) {}

awaitable<core::result<bool>> orphan_reaper::try_lock() {
  // Not released at the end of the round: the key *is* this interval's round, so however many
  // replicas wake up during it, one runs it.
  const auto px = std::max<std::int64_t>(opts_.interval.count(), 1);
  auto r = co_await store_.redis()->command(
      argv("SET", store_.options().keys.orphan_lock(), store_.options().replica_id, "NX", "PX", std::to_string(px)));
  if (!r) co_return r.error();
  if (r->is_nil()) co_return false;
  if (auto ok = redis::expect_ok(*r, "SET orphan lock NX"); !ok) co_return ok.error();
  co_return true;
}

awaitable<core::result<std::set<std::string>>> orphan_reaper::known_replicas() {
  // One entry per replica id that ever beat here, pruned below: small; capped all the same.
  auto r = co_await store_.redis()->command(argv("ZRANGE", store_.options().keys.replicas(), "0", "9999"));
  if (!r) co_return r.error();
  auto ids = redis::as_string_array(*r, "ZRANGE replicas");
  if (!ids) co_return ids.error();
  co_return std::set<std::string>(ids->begin(), ids->end());
}

awaitable<core::result<orphan_round>> orphan_reaper::run_round() {
  orphan_round round;
  auto locked = co_await try_lock();
  if (!locked) co_return locked.error();
  // The cluster-wide round (every replica's containers) runs on one replica per interval; the
  // others still look after their own containers, which only they can tell apart from the
  // pool's (the own_held rule).
  round.ran = *locked;
  if (!round.ran && !opts_.own_held) {
    log()->debug("orphan reaper: another replica runs this round");
    co_return round;
  }

  // Containers first, then the Redis view: a session or heartbeat written in between is seen.
  auto filter = opts_.label_filter;
  filter["berth.managed"] = "true";
  if (!round.ran) filter["berth.replica"] = store_.options().replica_id;
  auto listed = co_await docker_.list_containers(std::move(filter), true);
  if (!listed) co_return listed.error();
  auto live = co_await store_.list_live_replicas();
  if (!live) co_return live.error();
  auto known = co_await known_replicas();
  if (!known) co_return known.error();
  auto refs = co_await store_.referenced_containers();
  if (!refs) co_return refs.error();
  std::optional<std::set<std::string>> own_held;
  if (opts_.own_held) {
    auto held = co_await opts_.own_held();
    own_held.emplace(held.begin(), held.end());
  }

  orphan_view view;
  view.self_replica = store_.options().replica_id;
  view.live_replicas.insert(live->begin(), live->end());
  view.known_replicas = std::move(*known);
  for (const auto& [container, sid] : *refs) view.referenced.insert(container);
  view.own_held = std::move(own_held);
  view.now_s = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<labelled_container> containers;
  containers.reserve(listed->size());
  for (auto& c : *listed) {
    labelled_container lc;
    lc.id = std::move(c.id);
    lc.labels = std::move(c.labels);
    lc.created = c.created;
    containers.push_back(std::move(lc));
  }
  const auto plan = plan_orphan_reaping(containers, view, opts_.max_removals);

  round.listed = containers.size();
  round.kept = plan.kept;
  round.deferred = plan.deferred;
  round.orphans = plan.remove.size() + plan.deferred;
  for (const auto& id : plan.remove) {
    auto r = co_await docker_.remove_container(id, true);  // 404 (already gone) counts as removed
    if (!r) {
      ++round.failed;
      c_failed_.inc();
      log()->warn("orphan reaper: removing cid={} failed: {}", core::log_prefix(id, 12), r.error().message);
      continue;
    }
    ++round.removed;
    c_reaped_.inc();
    log()->debug("orphan reaper: removed cid={}", core::log_prefix(id, 12));
  }
  if (round.ran && !plan.forget_replicas.empty()) {  // (an own-only listing cannot tell)
    auto cmd = argv("ZREM", store_.options().keys.replicas());
    for (const auto& r : plan.forget_replicas) cmd.push_back(r);
    auto z = co_await store_.redis()->command(std::move(cmd));
    if (z) {
      round.forgotten_replicas = plan.forget_replicas.size();
    } else {  // harmless: retried next round; the removals above stand
      c_failed_.inc();
      log()->warn("orphan reaper: pruning dead replicas failed: {}", z.error().message);
    }
  }
  if (round.ran || round.orphans > 0)
    log()->info("orphan reaper round{}: listed={} orphans={} removed={} failed={} deferred={} kept={} forgotten_replicas={}",
                round.ran ? "" : " (own containers)", round.listed, round.orphans, round.removed, round.failed,
                round.deferred, kept_summary(round.kept), round.forgotten_replicas);
  co_return round;
}

awaitable<void> orphan_reaper::loop(std::shared_ptr<orphan_reaper> self) {
  // The start-up round needs Redis: give the connection a moment instead of failing round one.
  (void)co_await self->store_.redis()->wait_connected(std::chrono::seconds(10));
  auto round = [self] { return self->run_round(); };  // named: see the GCC 12 rules in docs/DEVELOPING.md
  co_await detail::run_periodically(std::move(round), self->stopped_, self->timer_,
                                    self->opts_.interval, self->opts_.interval, self->c_failed_, "orphan reaper round");
}

void orphan_reaper::start() { asio::co_spawn(strand_, loop(shared_from_this()), asio::detached); }

void orphan_reaper::stop() {
  auto self = shared_from_this();
  asio::post(strand_, [self] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

}  // namespace berth::session
