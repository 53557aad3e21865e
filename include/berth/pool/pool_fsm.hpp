#pragma once
// Sans-I/O lifecycle state machine of the warm container pool (no Asio, no Docker): events in
// (acquire, create finished, release, container died, clock tick), actions out (create, destroy,
// grant or fail a waiter, report a queue position). Time is injected on every call.
// Invariants: idle + active + scrubbing + creating <= max_total (adopted containers may exceed it);
// at most max_parallel_creates creates in flight; waiters are served FIFO; a container goes to a
// second user only after a scrub that succeeded (release(recyclable) -> scrub -> scrub_done(ok)),
// at most max_uses times and while younger than max_age; anything else destroys it.
// Lifetime: owned by the pool service. Thread-safety: none (the service calls it on its strand).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "berth/core/errors.hpp"

namespace berth::pool {

using clock_type = std::chrono::steady_clock;
using time_point = clock_type::time_point;
using waiter_id = std::uint64_t;
using create_id = std::uint64_t;

struct pool_limits {
  std::size_t min_idle = 10;
  std::size_t max_total = 100;
  std::size_t max_parallel_creates = 4;
  std::size_t max_waiters = 1000;
  std::chrono::milliseconds idle_timeout{900000};
  std::chrono::milliseconds acquire_timeout{30000};
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds retry_after{1000};  // advice to a caller refused with POOL_EXHAUSTED
  bool pooling = true;  // false: no idle containers, every acquire creates (ENABLE_CONTAINER_POOL=false)
  bool recycle = true;  // POOL_RECYCLE: a released container is scrubbed and reused (needs pooling)
  std::size_t max_uses = 100;                 // POOL_MAX_USES: sessions one container serves
  std::chrono::milliseconds max_age{3600000};  // POOL_MAX_AGE_MS: then it is destroyed, even idle
};

// released: its user is done and it was not to be reused; retired: it reached max uses or age;
// scrub_failed: the scrub between two users could not vouch for it (fail closed).
enum class destroy_reason { released, reaped, dead, shutdown, unwanted, retired, scrub_failed };
std::string_view to_string(destroy_reason r) noexcept;

struct action {
  enum class kind { create, destroy, grant, fail, queued, scrub };
  kind type = kind::create;
  create_id create = 0;        // create
  std::string container;       // destroy, grant, scrub
  destroy_reason reason = destroy_reason::released;  // destroy
  waiter_id waiter = 0;        // grant, fail, queued
  std::size_t position = 0;    // queued: 1-based place in the FIFO
  core::error error;           // fail
  std::chrono::milliseconds retry_after{0};  // fail with POOL_EXHAUSTED
};
using actions = std::vector<action>;

struct fsm_stats {
  std::size_t idle = 0, active = 0, creating = 0, waiting = 0, total = 0, scrubbing = 0;
  std::size_t min_size = 0, max_size = 0;
  std::uint64_t created = 0, create_failures = 0, reaped = 0, dead_replaced = 0, exhausted = 0;
  std::uint64_t recycled = 0, scrub_failures = 0, retired = 0;
};

class pool_fsm {
 public:
  explicit pool_fsm(pool_limits limits);

  // Begins warm-up: creates up to min_idle (bounded by parallelism; the rest follow).
  actions start(time_point now);
  // A caller wants a container: grant now, or queue (creating one if under max), or refuse.
  actions acquire(time_point now, waiter_id w);
  // The caller went away before being served.
  actions cancel(time_point now, waiter_id w);
  // Result of a create action (container created and started, or the error).
  actions create_done(time_point now, create_id c, const core::result<std::string>& container);
  // A lease ended. Recyclable (its sandbox server came back with it): scrub it for the next user
  // when recycling is on and it is under its use and age limits; otherwise destroy it. Refill follows.
  actions release(time_point now, const std::string& container, bool recyclable = false);
  // Outcome of a scrub action: the container serves the next waiter or goes idle, or is destroyed.
  actions scrub_done(time_point now, const std::string& container, bool clean);
  // The daemon reports the container gone/stopped (events or periodic check).
  actions container_died(time_point now, const std::string& container);
  // A lease handed its container elsewhere (session kept alive): no longer ours, not destroyed.
  actions forget(time_point now, const std::string& container);
  // A still-running container of a resumed session becomes an active lease; `created` is its
  // creation time (for max_age; unknown: now). Its earlier uses elsewhere are unknown: it counts one.
  // `own`: created by this pool; anything else is destroyed when released, never reused.
  actions adopt(time_point now, const std::string& container, std::optional<time_point> created = std::nullopt,
                bool own = true);
  // Timeouts, idle reaping, end of backoff. Call at next_deadline() (or later).
  actions tick(time_point now);
  // Stop creating, destroy idle containers, fail waiters; later creates are destroyed.
  actions shutdown(time_point now);

  std::optional<time_point> next_deadline() const;
  fsm_stats stats() const;
  const pool_limits& limits() const noexcept { return limits_; }
  std::vector<std::string> idle_containers() const;
  // Idle, leased and being scrubbed: everything that exists and is ours.
  std::vector<std::string> containers() const;
  bool is_idle(const std::string& id) const;
  bool is_active(const std::string& id) const { return active_.count(id) != 0; }
  bool is_scrubbing(const std::string& id) const { return scrubbing_.count(id) != 0; }
  // Every container it holds: idle, leased and being scrubbed.
  std::vector<std::string> held() const;
  // Sessions this container has been handed to (0 for an unknown container).
  std::size_t uses(const std::string& id) const;
  bool stopping() const noexcept { return stopping_; }
  std::size_t consecutive_failures() const noexcept { return consecutive_failures_; }

 private:
  struct idle_entry {
    std::string id;
    time_point since;
  };
  struct waiter_entry {
    waiter_id id;
    time_point deadline;
  };

  struct container_meta {
    time_point created;
    std::size_t uses = 0;
  };
  std::size_t total() const noexcept { return idle_.size() + active_.size() + scrubbing_.size() + creating_.size(); }
  bool reusable(time_point now, const std::string& id) const;
  void hand_out(const std::string& id);
  action retire(std::string id, destroy_reason r);
  void fill(time_point now, actions& out);
  void grant_head(const std::string& container, actions& out);
  void report_positions(std::size_t from, actions& out);
  void fail_waiter_at(std::size_t index, core::error e, std::chrono::milliseconds retry, actions& out);
  std::chrono::milliseconds retry_hint(time_point now) const;

  pool_limits limits_;
  std::deque<idle_entry> idle_;  // oldest first; acquire takes the newest, reaping the oldest
  std::unordered_set<std::string> active_;
  std::unordered_set<std::string> scrubbing_;
  std::unordered_map<std::string, container_meta> meta_;  // every container the pool knows
  std::set<create_id> creating_;
  std::deque<waiter_entry> waiters_;
  create_id next_create_ = 1;
  std::size_t consecutive_failures_ = 0;
  std::optional<time_point> backoff_until_;
  bool stopping_ = false;
  fsm_stats counts_;
};

}  // namespace berth::pool
