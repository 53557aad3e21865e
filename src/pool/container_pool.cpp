#include "berth/pool/container_pool.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"
#include "berth/core/random.hpp"

namespace berth::pool {
namespace asio = boost::asio;
using boost::system::error_code;
using ms = std::chrono::milliseconds;

namespace {
constexpr auto tuple_awaitable = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t latency_window = 1024;

// The last latency_window samples and their percentiles (p in 0..1).
struct latency_ring {
  std::vector<double> samples;
  std::size_t next = 0;
  void add(double ms) {
    if (samples.size() < latency_window) samples.push_back(ms);
    else samples[next] = ms;
    next = (next + 1) % latency_window;
  }
  void percentiles(double& p50, double& p95, double& p99) const {
    if (samples.empty()) return;
    std::vector<double> v = samples;
    std::sort(v.begin(), v.end());
    auto pct = [&v](double p) {
      const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
      return v[std::min(v.size() - 1, rank == 0 ? 0 : rank - 1)];
    };
    p50 = pct(0.50);
    p95 = pct(0.95);
    p99 = pct(0.99);
  }
};
}  // namespace

nlohmann::json to_json(const pool_stats& s) {
  auto round2 = [](double v) { return std::round(v * 100.0) / 100.0; };
  return nlohmann::json{{"idle", s.idle},
                        {"prepared", s.prepared},
                        {"active", s.active},
                        {"total", s.total},
                        {"maxPoolSize", s.max_pool_size},
                        {"minPoolSize", s.min_pool_size},
                        {"creating", s.creating},
                        {"waiting", s.waiting},
                        {"acquireMs",
                         {{"p50", round2(s.acquire_p50_ms)}, {"p95", round2(s.acquire_p95_ms)},
                          {"p99", round2(s.acquire_p99_ms)}}},
                        {"scrubbing", s.scrubbing},
                        {"recycled", s.recycled},
                        {"recycleFailures", s.scrub_failures},
                        {"retired", s.retired},
                        {"scrubMs",
                         {{"p50", round2(s.scrub_p50_ms)}, {"p95", round2(s.scrub_p95_ms)},
                          {"p99", round2(s.scrub_p99_ms)}}},
                        {"pooling", s.pooling},
                        {"recycling", s.recycling}};
}

namespace detail {

struct waiter_slot {
  explicit waiter_slot(const asio::strand<asio::any_io_executor>& ex) : wake(ex) {}
  asio::steady_timer wake;
  std::optional<core::result<std::string>> outcome;
  ms retry_after{0};
  std::shared_ptr<prepared_resource> prepared;  // handed over with a granted container
  std::function<void(std::size_t)> on_queued;
};

pool_limits limits_from(const core::config& cfg, const pool_options& o) {
  pool_limits l;
  l.min_idle = cfg.pool_min_size;
  l.max_total = cfg.pool_max_size;
  l.max_parallel_creates = o.max_parallel_creates;
  l.max_waiters = o.max_waiters;
  l.idle_timeout = cfg.pool_idle_timeout;
  l.acquire_timeout = cfg.acquire_timeout;
  l.backoff_initial = o.backoff_initial;
  l.backoff_max = o.backoff_max;
  l.retry_after = o.retry_after;
  l.pooling = cfg.enable_container_pool;
  l.recycle = cfg.pool_recycle;
  l.max_uses = cfg.pool_max_uses;
  l.max_age = cfg.pool_max_age;
  return l;
}

// Everything the pool owns; lives on `strand`, kept alive by its background coroutines and
// reachable from leases through weak_ptr.
struct pool_state : std::enable_shared_from_this<pool_state> {
  pool_state(asio::any_io_executor ex, docker::client& d, const core::config& c, core::metrics& m, pool_options o)
      : strand(asio::make_strand(ex)), docker(d), cfg(c), opts(std::move(o)), fsm(limits_from(c, opts)),
        tick_timer(strand), warm_timer(strand), drain_timer(strand), check_timer(strand), retry_timer(strand),
        log(core::logger("pool")),
        creates(m.get_counter("berth_pool_creates_total", "Sandbox containers created and started", label())),
        create_failures(m.get_counter("berth_pool_create_failures_total", "Sandbox container creates that failed", label())),
        reaped(m.get_counter("berth_pool_reaped_total", "Idle containers above the minimum removed after the idle timeout", label())),
        dead_replaced(m.get_counter("berth_pool_dead_replaced_total", "Idle containers found dead and replaced", label())),
        exhausted(m.get_counter("berth_pool_exhausted_total", "Acquires refused with POOL_EXHAUSTED", label())),
        destroyed(m.get_counter("berth_pool_destroyed_total", "Containers removed by the pool", label())),
        destroy_failures(m.get_counter("berth_pool_destroy_failures_total", "Container removals that failed", label())),
        leftovers(m.get_counter("berth_pool_leftovers_removed_total", "Containers of a previous run removed at start-up", label())),
        event_errors(m.get_counter("berth_pool_event_stream_errors_total", "Docker events stream failures", label())),
        prepare_failures(m.get_counter("berth_pool_prepare_failures_total",
                                       "Containers that went idle without their prepared resource (the hook failed)",
                                       label())),
        recycled(m.get_counter("berth_pool_recycled_total",
                               "Released containers scrubbed clean and handed to the next user", label())),
        recycle_failures(m.get_counter("berth_pool_recycle_failures_total",
                                       "Released containers destroyed because the scrub could not vouch for them",
                                       label())),
        retired(m.get_counter("berth_pool_retired_total",
                              "Containers destroyed at POOL_MAX_USES sessions or POOL_MAX_AGE_MS", label())) {
    spec = docker::hardened_spec(cfg, opts.name);
    spec.cmd = opts.cmd;
    if (opts.sandbox_server_main) docker::make_sandbox_server_main(spec);
    for (const auto& [k, v] : opts.extra_labels) spec.labels[k] = v;
    labels = spec.labels;
    snapshot.pooling = cfg.enable_container_pool;
    snapshot.max_pool_size = fsm.limits().max_total;
    snapshot.min_pool_size = fsm.limits().min_idle;
    snapshot.recycling = fsm.limits().recycle;
  }

  std::string label() const { return "pool=\"" + opts.name + "\""; }

  void apply(const actions& as);
  void update_snapshot();
  std::shared_ptr<prepared_resource> take_prepared(const std::string& id) {
    auto it = prepared.find(id);
    if (it == prepared.end()) return nullptr;
    auto p = std::move(it->second);
    prepared.erase(it);
    return p;
  }
  void close_prepared(const std::string& id) {
    if (auto p = take_prepared(id)) p->close();
  }

  asio::strand<asio::any_io_executor> strand;
  docker::client& docker;
  core::config cfg;
  pool_options opts;
  pool_fsm fsm;
  docker::container_spec spec;
  std::map<std::string, std::string> labels;
  std::unordered_map<waiter_id, std::shared_ptr<waiter_slot>> waiters;
  prepare_hook prepare;
  recycle_hook recycle;
  std::function<void()> on_starved;
  std::unordered_map<std::string, std::shared_ptr<prepared_resource>> prepared;  // idle containers only
  std::unordered_map<std::string, std::shared_ptr<prepared_resource>> returned;  // being scrubbed
  waiter_id next_waiter = 1;
  asio::steady_timer tick_timer, warm_timer, drain_timer, check_timer, retry_timer;
  std::size_t pending_ops = 0;
  docker::event_stream* events = nullptr;
  bool started = false;
  bool stopped = false;
  std::string last_create_error;
  std::shared_ptr<spdlog::logger> log;

  mutable std::mutex stats_mu;
  pool_stats snapshot;
  latency_ring acquire_ms;  // successful acquires
  latency_ring scrub_ms;    // scrubs, clean or not

  core::counter& creates;
  core::counter& create_failures;
  core::counter& reaped;
  core::counter& dead_replaced;
  core::counter& exhausted;
  core::counter& destroyed;
  core::counter& destroy_failures;
  core::counter& leftovers;
  core::counter& event_errors;
  core::counter& prepare_failures;
  core::counter& recycled;
  core::counter& recycle_failures;
  core::counter& retired;
};

// The prepare hook for a container about to go idle. Skipped when a caller is already waiting
// (it would wait for the hook too) or the pool is off or stopping. Never throws.
asio::awaitable<std::shared_ptr<prepared_resource>> prepare_for_idle(std::shared_ptr<pool_state> self, std::string id) {
  if (!self->prepare || !self->fsm.limits().pooling || self->fsm.stats().waiting > 0 || self->stopped) co_return nullptr;
  auto hook = self->prepare;  // set_prepare() may replace it meanwhile
  std::shared_ptr<prepared_resource> out;
  try {
    out = co_await hook(id);
  } catch (const std::exception& e) {
    self->log->warn("[ContainerPool] Preparing cid={} threw: {}", id.substr(0, 12), e.what());
  }
  if (!out) self->prepare_failures.inc();
  co_return out;
}

// A slot in the cluster's MAX_CONTAINERS before Docker is asked (Redis down: no slot, fail closed).
asio::awaitable<core::result<void>> reserve_slot(std::shared_ptr<pool_state> self, std::string reservation) {
  if (!self->opts.budget.reserve) co_return core::result<void>{};
  auto granted = co_await self->opts.budget.reserve(std::move(reservation));
  if (!granted) co_return core::make_error(core::errc::sandbox_unavailable, "container accounting unavailable: " +
                                                                                granted.error().message);
  if (!*granted) {
    core::error e = core::make_error(core::errc::pool_exhausted, "the cluster holds MAX_CONTAINERS containers");
    e.retry_after = self->opts.retry_after;
    co_return e;
  }
  co_return core::result<void>{};
}

asio::awaitable<void> create_task(std::shared_ptr<pool_state> self, create_id cid) {
  docker::container_spec spec = self->spec;
  // Unique name: a 409 conflict (e.g. a half-finished earlier create) is retried with a new one.
  spec.name = "berth-" + self->opts.name + "-" + core::random_token(9);
  const std::string reservation = "creating:" + self->cfg.replica_id + ":" + spec.name;
  core::result<std::string> out = core::make_error(core::errc::internal, "not created");
  if (auto slot = co_await reserve_slot(self, reservation); !slot) {
    out = slot.error();
  } else {
    out = co_await self->docker.create_container(spec);
  }
  if (out) {
    auto started = co_await self->docker.start_container(*out);
    if (!started) {
      // Created but not started: remove it so nothing leaks.
      (void)co_await self->docker.remove_container(*out, true);
      out = started.error();
    }
  }
  if (self->opts.budget.settle) {
    // Named first: GCC 12 destroys a conditional's temporary twice inside a co_await expression.
    std::string settled = out ? *out : std::string();
    (void)co_await self->opts.budget.settle(reservation, std::move(settled));
  }
  if (out) {
    self->creates.inc();
    if (auto prepared = co_await prepare_for_idle(self, *out)) self->prepared[*out] = std::move(prepared);
  } else {
    self->create_failures.inc();
    self->last_create_error = out.error().message;
    self->log->warn("[ContainerPool] Container create failed: {}", core::log_prefix(out.error().message, 300));
  }
  --self->pending_ops;
  if (self->pending_ops == 0) self->drain_timer.cancel();
  self->apply(self->fsm.create_done(clock_type::now(), cid, out));
}

asio::awaitable<void> destroy_task(std::shared_ptr<pool_state> self, std::string id_in, destroy_reason reason) {
  const std::string id = std::move(id_in);
  auto r = co_await self->docker.remove_container(id, true);
  if (r) {
    self->destroyed.inc();
    self->log->debug("[ContainerPool] Removed container cid={} ({})", id.substr(0, 12), to_string(reason));
    if (self->opts.budget.remove) (void)co_await self->opts.budget.remove(id);
  } else {
    self->destroy_failures.inc();
    self->log->warn("[ContainerPool] Removing container cid={} failed: {}", id.substr(0, 12),
                    core::log_prefix(r.error().message, 300));
  }
  --self->pending_ops;
  if (self->pending_ops == 0) self->drain_timer.cancel();
}

// Scrubs a released container through the sandbox server it came back with. Clean: it goes idle
// (or straight to a waiter) with that server still open. Anything else: destroyed.
asio::awaitable<void> scrub_task(std::shared_ptr<pool_state> self, std::string id_in) {
  const std::string id = std::move(id_in);
  auto it = self->returned.find(id);
  std::shared_ptr<prepared_resource> resource = it == self->returned.end() ? nullptr : std::move(it->second);
  if (it != self->returned.end()) self->returned.erase(it);
  const auto t0 = clock_type::now();
  core::result<void> outcome = core::make_error(core::errc::internal, "no scrub hook");
  if (self->recycle && resource) {
    auto hook = self->recycle;
    try {
      outcome = co_await hook(id, resource);
    } catch (const std::exception& e) {
      outcome = core::make_error(core::errc::internal, std::string("scrub threw: ") + e.what());
    }
  }
  {
    std::lock_guard lk(self->stats_mu);
    self->scrub_ms.add(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
  }
  if (outcome) {
    self->recycled.inc();
    self->prepared[id] = std::move(resource);
  } else {
    self->recycle_failures.inc();
    self->log->warn("[ContainerPool] Container cid={} not reused (destroyed): {}", id.substr(0, 12),
                    core::log_prefix(outcome.error().message, 300));
    if (resource) resource->close();
  }
  self->apply(self->fsm.scrub_done(clock_type::now(), id, static_cast<bool>(outcome)));
}

void pool_state::apply(const actions& as) {
  auto self = shared_from_this();
  for (const auto& a : as) {
    switch (a.type) {
      case action::kind::create:
        ++pending_ops;
        asio::co_spawn(strand, create_task(self, a.create), asio::detached);
        break;
      case action::kind::scrub:
        asio::co_spawn(strand, scrub_task(self, a.container), asio::detached);
        break;
      case action::kind::destroy:
        if (a.reason == destroy_reason::reaped) reaped.inc();
        if (a.reason == destroy_reason::retired) retired.inc();
        if (a.reason == destroy_reason::dead) {
          dead_replaced.inc();
          log->warn("[ContainerPool] Idle container cid={} died; replacing it", a.container.substr(0, 12));
        }
        close_prepared(a.container);
        ++pending_ops;
        asio::co_spawn(strand, destroy_task(self, a.container, a.reason), asio::detached);
        break;
      case action::kind::grant: {
        auto it = waiters.find(a.waiter);
        if (it == waiters.end()) {
          apply(fsm.release(clock_type::now(), a.container));  // nobody to hand it to
        } else {
          it->second->outcome = core::result<std::string>(a.container);
          it->second->prepared = take_prepared(a.container);
          it->second->wake.cancel();
        }
        break;
      }
      case action::kind::fail: {
        if (a.error.code == core::errc::pool_exhausted) {
          exhausted.inc();
          log->warn("[ContainerPool] Acquire refused: POOL_EXHAUSTED ({}), retry after {} ms", a.error.message,
                    a.retry_after.count());
        }
        auto it = waiters.find(a.waiter);
        if (it != waiters.end()) {
          it->second->outcome = core::result<std::string>(a.error);
          it->second->retry_after = a.retry_after;
          it->second->wake.cancel();
        }
        break;
      }
      case action::kind::queued: {
        auto it = waiters.find(a.waiter);
        if (it != waiters.end() && it->second->on_queued) {
          try {
            it->second->on_queued(a.position);
          } catch (const std::exception& e) {
            log->error("[ContainerPool] on_queued callback threw: {}", e.what());
          }
        }
        break;
      }
    }
  }
  update_snapshot();
  tick_timer.cancel();  // the ticker recomputes its deadline
  warm_timer.cancel();  // start() re-checks its condition
}

void pool_state::update_snapshot() {
  const auto s = fsm.stats();
  std::lock_guard lk(stats_mu);
  snapshot.idle = s.idle;
  snapshot.active = s.active;
  snapshot.creating = s.creating;
  snapshot.waiting = s.waiting;
  snapshot.total = s.total;
  snapshot.created = s.created;
  snapshot.create_failures = s.create_failures;
  snapshot.reaped = s.reaped;
  snapshot.dead_replaced = s.dead_replaced;
  snapshot.exhausted = s.exhausted;
  snapshot.prepared = prepared.size();
  snapshot.prepare_failures = prepare_failures.value();
  snapshot.scrubbing = s.scrubbing;
  snapshot.recycled = s.recycled;
  snapshot.scrub_failures = s.scrub_failures;
  snapshot.retired = s.retired;
}

asio::awaitable<void> ticker(std::shared_ptr<pool_state> self) {
  while (!self->stopped) {
    const auto d = self->fsm.next_deadline();
    self->tick_timer.expires_at(d ? *d : clock_type::now() + std::chrono::hours(1));
    co_await self->tick_timer.async_wait(tuple_awaitable);
    if (self->stopped) break;
    self->apply(self->fsm.tick(clock_type::now()));
  }
}

// Periodic check: idle containers that are no longer running are replaced. Only containers idle
// before the list was taken are judged (a newer one may simply be missing from the list).
asio::awaitable<void> checker(std::shared_ptr<pool_state> self) {
  while (!self->stopped) {
    self->check_timer.expires_after(self->opts.check_interval);
    co_await self->check_timer.async_wait(tuple_awaitable);
    if (self->stopped) break;
    if (self->opts.budget.refresh) {
      auto held = self->fsm.containers();
      (void)co_await self->opts.budget.refresh(std::move(held));
    }
    const auto before = self->fsm.idle_containers();
    if (before.empty()) continue;
    auto list = co_await self->docker.list_containers(self->labels, true);
    if (!list || self->stopped) continue;
    std::unordered_set<std::string> running;
    for (const auto& c : *list) {
      if (c.running) running.insert(c.id);
    }
    for (const auto& id : before) {
      if (!running.count(id) && self->fsm.is_idle(id)) self->apply(self->fsm.container_died(clock_type::now(), id));
    }
  }
}

asio::awaitable<void> watcher(std::shared_ptr<pool_state> self) {
  while (!self->stopped) {
    auto es = co_await self->docker.events(self->labels);
    if (self->stopped) break;
    if (!es) {
      self->event_errors.inc();
      self->log->warn("[ContainerPool] Docker events stream unavailable: {}", core::log_prefix(es.error().message, 300));
    } else {
      self->events = &*es;
      for (;;) {
        auto ev = co_await es->next();
        if (!ev) {
          if (!self->stopped) {
            self->event_errors.inc();
            self->log->warn("[ContainerPool] Docker events stream ended: {}", core::log_prefix(ev.error().message, 300));
          }
          break;
        }
        if (ev->action == "die" || ev->action == "destroy") {
          if (self->fsm.is_idle(ev->id)) self->apply(self->fsm.container_died(clock_type::now(), ev->id));
        }
      }
      self->events = nullptr;
    }
    if (self->stopped) break;
    self->retry_timer.expires_after(self->opts.check_interval);
    co_await self->retry_timer.async_wait(tuple_awaitable);
  }
}

asio::awaitable<core::result<void>> start_impl(std::shared_ptr<pool_state> self) {
  auto& log = *self->log;
  const auto& lim = self->fsm.limits();
  // The operator guide's first line under `docker compose logs app | grep "ContainerPool"`: the
  // logger's name puts "[ContainerPool]" on it.
  if (lim.pooling) core::logger("ContainerPool")->info("[Phase 2] Container pooling enabled");
  log.info("[ContainerPool] Initializing with min={}, max={}", self->cfg.pool_min_size, self->cfg.pool_max_size);
  if (self->started) co_return core::make_error(core::errc::internal, "container pool started twice");
  self->started = true;
  std::optional<core::error> first_error;
  if (auto v = co_await self->docker.negotiate(); !v) {
    log.error("[ContainerPool] Docker unreachable: {}", core::log_prefix(v.error().message, 300));
    first_error = v.error();
  } else if (auto img = co_await self->docker.image_inspect(self->spec.image); !img) {
    log.error("[ContainerPool] {}", core::log_prefix(img.error().message, 300));
    first_error = img.error();
  }
  if (!first_error) {
    std::map<std::string, std::string> mine = docker::pool_labels(self->cfg.replica_id, self->opts.name);
    for (const auto& [k, v] : self->opts.extra_labels) mine[k] = v;
    auto left = co_await self->docker.list_containers(mine, true);
    std::set<std::string> keep;
    if (left && !left->empty() && self->opts.referenced_containers) {
      auto referenced = co_await self->opts.referenced_containers();
      if (referenced) {
        keep = std::move(*referenced);
      } else {
        // Not knowing which are still in use, remove none: the orphan reaper decides later.
        log.warn("[ContainerPool] Sessions unreadable ({}): leaving {} containers of a previous run for the orphan reaper",
                 core::log_prefix(referenced.error().message, 200), left->size());
        left->clear();
      }
    }
    if (left && !left->empty()) {
      std::size_t removed = 0, kept = 0;
      for (const auto& c : *left) {
        if (keep.count(c.id) && c.running) {
          ++kept;  // a live session's: its user resumes into it (adopt)
          continue;
        }
        if (auto r = co_await self->docker.remove_container(c.id, true); r) ++removed;
      }
      self->leftovers.inc(removed);
      log.info("[ContainerPool] Removed {} containers left by a previous run; kept {} that live sessions hold", removed,
               kept);
    }
  }
  if (lim.pooling) {
    log.info("[ContainerPool] Warming up {} containers...", lim.min_idle);
  } else {
    log.info("[Phase 2] Container pooling disabled: one container per acquire (ENABLE_CONTAINER_POOL=false)");
  }
  self->apply(self->fsm.start(clock_type::now()));
  asio::co_spawn(self->strand, ticker(self), asio::detached);
  asio::co_spawn(self->strand, checker(self), asio::detached);
  asio::co_spawn(self->strand, watcher(self), asio::detached);

  if (!first_error && lim.pooling && lim.min_idle > 0) {
    const auto deadline = clock_type::now() + self->opts.warmup_timeout;
    // Woken by every state change (apply); bounded by the deadline and by repeated failures.
    while (!self->stopped && self->fsm.stats().idle < lim.min_idle) {
      if (self->fsm.consecutive_failures() >= 3) {
        first_error = core::make_error(core::errc::sandbox_unavailable,
                                       "warm-up failing: " + self->last_create_error);
        break;
      }
      if (clock_type::now() >= deadline) {
        first_error = core::make_error(core::errc::sandbox_unavailable, "warm-up did not finish in time");
        break;
      }
      self->warm_timer.expires_at(deadline);
      co_await self->warm_timer.async_wait(tuple_awaitable);
    }
  }
  log.info("[ContainerPool] Initialized with {} idle containers", self->fsm.stats().idle);
  if (first_error) {
    log.error("[ContainerPool] Start-up degraded: {}", core::log_prefix(first_error->message, 300));
    co_return *first_error;
  }
  co_return core::result<void>{};
}

asio::awaitable<void> stop_impl(std::shared_ptr<pool_state> self) {
  if (self->stopped) co_return;
  const auto idle = self->fsm.stats().idle;
  self->apply(self->fsm.shutdown(clock_type::now()));
  self->stopped = true;
  if (self->events) self->events->close();
  self->tick_timer.cancel();
  self->check_timer.cancel();
  self->retry_timer.cancel();
  self->warm_timer.cancel();
  self->drain_timer.expires_after(self->opts.destroy_timeout);
  while (self->pending_ops > 0) {
    auto [ec] = co_await self->drain_timer.async_wait(tuple_awaitable);
    if (!ec) break;  // deadline: leave the rest to the orphan reaper
  }
  self->log->info("[ContainerPool] Stopped: removed {} idle containers ({} operations unfinished)", idle,
                  self->pending_ops);
}

asio::awaitable<core::result<container_lease>> acquire_impl(std::shared_ptr<pool_state> self,
                                                        std::function<void(std::size_t)> on_queued,
                                                        std::shared_ptr<acquire_ticket> ticket) {
  const auto t0 = clock_type::now();
  if (self->stopped) co_return core::make_error(core::errc::sandbox_unavailable, "the container pool is stopped");
  auto w = std::make_shared<waiter_slot>(self->strand);
  w->on_queued = std::move(on_queued);
  const waiter_id id = self->next_waiter++;
  self->waiters.emplace(id, w);
  const auto decided = self->fsm.acquire(t0, id);
  // Queued with no container on its way for it (the pool is at its maximum, or creates are
  // backing off): whoever holds containers it could give back is told (see set_on_starved).
  const bool starved = std::any_of(decided.begin(), decided.end(), [id](const action& a) {
    return a.type == action::kind::queued && a.waiter == id;
  });
  self->apply(decided);
  if (starved && self->on_starved) {
    try {
      self->on_starved();
    } catch (const std::exception& e) {
      self->log->error("[ContainerPool] on_starved hook threw: {}", e.what());
    }
  }
  if (ticket && !w->outcome) {
    // The caller gave up: leave the queue (on the strand) and end the wait.
    ticket->on_cancel([weak = std::weak_ptr<pool_state>(self), id] {
      auto s = weak.lock();
      if (!s) return;
      asio::post(s->strand, [s, id] {
        auto it = s->waiters.find(id);
        if (it == s->waiters.end() || it->second->outcome) return;
        s->apply(s->fsm.cancel(clock_type::now(), id));
        it->second->outcome = core::result<std::string>(
            core::make_error(core::errc::sandbox_unavailable, "the caller stopped waiting for a container"));
        it->second->wake.cancel();
      });
    });
  }
  // The FSM answers within acquire_timeout (ticker); the guard bounds the wait should it not.
  const auto guard = t0 + self->fsm.limits().acquire_timeout + std::chrono::seconds(5);
  while (!w->outcome) {
    if (clock_type::now() >= guard) {
      self->apply(self->fsm.cancel(clock_type::now(), id));
      w->outcome = core::result<std::string>(
          core::make_error(core::errc::pool_exhausted, "no sandbox container became available in time"));
      break;
    }
    w->wake.expires_at(guard);
    co_await w->wake.async_wait(tuple_awaitable);
  }
  self->waiters.erase(id);
  if (ticket) ticket->clear();
  core::result<std::string> out = std::move(*w->outcome);
  if (out) {
    const double ms_taken = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    std::lock_guard lk(self->stats_mu);
    self->acquire_ms.add(ms_taken);
    // The lease exists from here on: a caller that went away meanwhile still releases it.
    co_return container_lease(self, std::move(*out), std::move(w->prepared));
  }
  core::error e = std::move(out.error());
  if (e.code == core::errc::pool_exhausted && (!e.retry_after || w->retry_after.count() > 0)) e.retry_after = w->retry_after;
  co_return e;
}

asio::awaitable<core::result<container_lease>> adopt_impl(std::shared_ptr<pool_state> self, std::string id_in) {
  const std::string id = std::move(id_in);
  if (self->stopped) co_return core::make_error(core::errc::sandbox_unavailable, "the container pool is stopped");
  auto info = co_await self->docker.inspect_container(id);
  if (!info) co_return info.error();
  auto managed = info->labels.find("berth.managed");
  if (managed == info->labels.end() || managed->second != "true") {
    co_return core::make_error(core::errc::sandbox_unavailable, "container " + id.substr(0, 12) + " is not managed by berth");
  }
  if (!info->running) {
    co_return core::make_error(core::errc::sandbox_unavailable,
                               "container " + id.substr(0, 12) + " is not running (" + info->state + ")");
  }
  // Only our own containers are ever handed to another user: one created by another replica (or
  // pool) is still that replica's to the orphan reaper, which could remove it under a new user.
  const auto label = [&](const char* k) {
    auto l = info->labels.find(k);
    return l == info->labels.end() ? std::string() : l->second;
  };
  const bool own = label("berth.replica") == self->cfg.replica_id && label("berth.pool") == self->opts.name;
  self->apply(self->fsm.adopt(clock_type::now(), info->id, std::nullopt, own));
  co_return container_lease(self, info->id);
}

asio::awaitable<void> release_task(std::shared_ptr<pool_state> self, std::string id_in,
                                   std::shared_ptr<prepared_resource> resource) {
  const std::string id = std::move(id_in);
  const bool recyclable = resource && self->recycle;
  if (recyclable) self->returned[id] = resource;
  self->apply(self->fsm.release(clock_type::now(), id, recyclable));
  // Not scrubbed (recycling off, worn out, stopping): the server goes with the container.
  if (recyclable && !self->fsm.is_scrubbing(id)) {
    self->returned.erase(id);
    resource->close();
  }
  co_return;
}

}  // namespace detail

namespace detail {
asio::awaitable<void> forget_task(std::shared_ptr<pool_state> self, std::string id_in) {
  const std::string id = std::move(id_in);
  self->apply(self->fsm.forget(clock_type::now(), id));
  co_return;
}
}  // namespace detail

// ---- acquire_ticket ---------------------------------------------------------------------------

void acquire_ticket::cancel() {
  std::function<void()> f;
  {
    std::lock_guard lk(mutex_);
    cancelled_ = true;
    f = std::move(on_cancel_);
    on_cancel_ = nullptr;
  }
  if (f) f();
}

bool acquire_ticket::cancelled() const {
  std::lock_guard lk(mutex_);
  return cancelled_;
}

void acquire_ticket::on_cancel(std::function<void()> f) {
  {
    std::lock_guard lk(mutex_);
    if (!cancelled_) {
      on_cancel_ = std::move(f);
      return;
    }
  }
  f();
}

void acquire_ticket::clear() {
  std::lock_guard lk(mutex_);
  on_cancel_ = nullptr;
}

// ---- container_lease ------------------------------------------------------------------------

container_lease::container_lease(container_lease&& o) noexcept
    : pool_(std::move(o.pool_)), id_(std::move(o.id_)), prepared_(std::move(o.prepared_)) {
  o.id_.clear();
}

container_lease& container_lease::operator=(container_lease&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = std::move(o.pool_);
    id_ = std::move(o.id_);
    prepared_ = std::move(o.prepared_);
    o.id_.clear();
  }
  return *this;
}

container_lease::~container_lease() { release(); }

void container_lease::close_prepared() noexcept {
  if (auto p = std::move(prepared_)) p->close();
}

void container_lease::release() {
  close_prepared();
  if (id_.empty()) return;
  std::string id = std::move(id_);
  id_.clear();
  if (auto s = pool_.lock()) asio::co_spawn(s->strand, detail::release_task(s, std::move(id), nullptr), asio::detached);
  pool_.reset();
}

void container_lease::recycle(std::shared_ptr<prepared_resource> resource) {
  if (!resource) resource = std::move(prepared_);  // never taken: the server the pool prepared
  close_prepared();
  if (id_.empty()) {
    if (resource) resource->close();
    return;
  }
  std::string id = std::move(id_);
  id_.clear();
  if (auto s = pool_.lock()) {
    asio::co_spawn(s->strand, detail::release_task(s, std::move(id), std::move(resource)), asio::detached);
  } else if (resource) {
    resource->close();
  }
  pool_.reset();
}

// ---- container_pool -------------------------------------------------------------------------

container_pool::container_pool(asio::any_io_executor ex, docker::client& docker, const core::config& cfg,
                               core::metrics& metrics, pool_options opts)
    : state_(std::make_shared<detail::pool_state>(std::move(ex), docker, cfg, metrics, std::move(opts))) {
  std::weak_ptr<detail::pool_state> weak = state_;
  const std::string l = state_->label();
  auto gauge = [&metrics, &l, weak](const char* name, const char* help, std::size_t pool_stats::*field) {
    metrics.add_gauge(name, help, [weak, field] {
      auto s = weak.lock();
      if (!s) return 0.0;
      std::lock_guard lk(s->stats_mu);
      return static_cast<double>(s->snapshot.*field);
    }, l);
  };
  gauge("berth_pool_idle", "Idle warm containers", &pool_stats::idle);
  gauge("berth_pool_active", "Leased containers", &pool_stats::active);
  gauge("berth_pool_creating", "Containers being created", &pool_stats::creating);
  gauge("berth_pool_waiting", "Callers waiting for a container", &pool_stats::waiting);
  gauge("berth_pool_prepared", "Idle containers whose prepared resource (the sandbox MCP exec) is open",
        &pool_stats::prepared);
  gauge("berth_pool_scrubbing", "Released containers being scrubbed for the next user", &pool_stats::scrubbing);
}

container_pool::~container_pool() {
  // stop() should have run; make sure background work ends even if it did not.
  auto s = state_;
  asio::post(s->strand, [s] {
    if (s->stopped) return;
    s->stopped = true;
    if (s->events) s->events->close();
    s->tick_timer.cancel();
    s->check_timer.cancel();
    s->retry_timer.cancel();
    s->warm_timer.cancel();
    for (auto& [_, p] : s->prepared) p->close();
    s->prepared.clear();
  });
}

void container_pool::set_prepare(prepare_hook hook) {
  asio::post(state_->strand, [s = state_, hook = std::move(hook)]() mutable { s->prepare = std::move(hook); });
}

void container_pool::set_recycle(recycle_hook hook) {
  asio::post(state_->strand, [s = state_, hook = std::move(hook)]() mutable { s->recycle = std::move(hook); });
}

void container_pool::set_on_starved(std::function<void()> hook) {
  asio::post(state_->strand, [s = state_, hook = std::move(hook)]() mutable { s->on_starved = std::move(hook); });
}

asio::awaitable<core::result<void>> container_pool::start() {
  co_return co_await asio::co_spawn(state_->strand, detail::start_impl(state_), asio::use_awaitable);
}

asio::awaitable<void> container_pool::stop() {
  co_await asio::co_spawn(state_->strand, detail::stop_impl(state_), asio::use_awaitable);
}

asio::awaitable<core::result<container_lease>> container_pool::acquire(std::function<void(std::size_t)> on_queued,
                                                                        std::shared_ptr<acquire_ticket> ticket) {
  co_return co_await asio::co_spawn(state_->strand, detail::acquire_impl(state_, std::move(on_queued), std::move(ticket)),
                                    asio::use_awaitable);
}

asio::awaitable<core::result<container_lease>> container_pool::adopt(std::string container_id) {
  co_return co_await asio::co_spawn(state_->strand, detail::adopt_impl(state_, std::move(container_id)),
                                    asio::use_awaitable);
}

namespace {
asio::awaitable<std::vector<std::string>> held_on_strand(std::shared_ptr<detail::pool_state> self) {
  co_return self->fsm.held();
}
}  // namespace

asio::awaitable<std::vector<std::string>> container_pool::held_containers() {
  co_return co_await asio::co_spawn(state_->strand, held_on_strand(state_), asio::use_awaitable);
}

pool_stats container_pool::stats() const {
  std::lock_guard lk(state_->stats_mu);
  pool_stats s = state_->snapshot;
  state_->acquire_ms.percentiles(s.acquire_p50_ms, s.acquire_p95_ms, s.acquire_p99_ms);
  state_->scrub_ms.percentiles(s.scrub_p50_ms, s.scrub_p95_ms, s.scrub_p99_ms);
  return s;
}

std::string container_lease::detach() {
  close_prepared();
  std::string id = std::move(id_);
  id_.clear();
  if (auto s = pool_.lock(); s && !id.empty()) asio::co_spawn(s->strand, detail::forget_task(s, id), asio::detached);
  pool_.reset();
  return id;
}

const pool_options& container_pool::options() const noexcept { return state_->opts; }

}  // namespace berth::pool
