#include "berth/pool/pool_fsm.hpp"

#include <map>
#include <set>

#include <gtest/gtest.h>

namespace berth::pool {
namespace {
using namespace std::chrono_literals;

// Executes the FSM's actions like the Asio shell would, with a fake clock and scripted Docker
// results; checks the invariants after every step.
struct harness {
  explicit harness(pool_limits l) : fsm(l), limits(l) {}
  time_point now{};
  pool_fsm fsm;
  pool_limits limits;
  std::deque<create_id> pending;
  std::set<std::string> live;  // containers that exist on the "daemon"
  std::map<waiter_id, std::string> granted;
  std::map<waiter_id, core::error> failed;
  std::map<waiter_id, std::chrono::milliseconds> retry;
  std::map<waiter_id, std::size_t> position;
  std::map<destroy_reason, int> destroyed;
  std::set<std::string> held;      // containers a waiter holds right now
  std::vector<std::string> scrubs;  // scrub actions, in order
  int next_container = 0;
  waiter_id next_waiter = 1;

  void run(const actions& as) {
    for (const auto& a : as) {
      switch (a.type) {
        case action::kind::create: pending.push_back(a.create); break;
        case action::kind::destroy:
          ASSERT_EQ(live.erase(a.container), 1u) << "destroying unknown " << a.container;
          ++destroyed[a.reason];
          break;
        case action::kind::grant:
          ASSERT_TRUE(live.count(a.container)) << a.container;
          ASSERT_TRUE(held.insert(a.container).second) << "container granted to two holders at once";
          ASSERT_FALSE(granted.count(a.waiter) || failed.count(a.waiter));
          granted[a.waiter] = a.container;
          break;
        case action::kind::scrub:
          ASSERT_TRUE(live.count(a.container)) << a.container;
          ASSERT_FALSE(held.count(a.container)) << "scrubbing a held container";
          scrubs.push_back(a.container);
          break;
        case action::kind::fail:
          ASSERT_FALSE(granted.count(a.waiter) || failed.count(a.waiter));
          failed[a.waiter] = a.error;
          retry[a.waiter] = a.retry_after;
          break;
        case action::kind::queued: position[a.waiter] = a.position; break;
      }
    }
    check();
  }
  void check() {
    const auto s = fsm.stats();
    if (!fsm.stopping()) {
      ASSERT_LE(s.idle + s.active + s.scrubbing + s.creating, limits.max_total);
    }
    ASSERT_LE(s.creating, limits.max_parallel_creates);
    ASSERT_EQ(s.creating, pending.size());
    ASSERT_EQ(s.total, s.idle + s.active + s.scrubbing + s.creating);
  }
  void start() { run(fsm.start(now)); }
  waiter_id acquire() {
    const waiter_id w = next_waiter++;
    run(fsm.acquire(now, w));
    return w;
  }
  // Completes the oldest pending create.
  std::string complete(bool ok) {
    EXPECT_FALSE(pending.empty());
    if (pending.empty()) return {};
    const create_id c = pending.front();
    pending.pop_front();
    if (ok) {
      std::string id = "c" + std::to_string(next_container++);
      live.insert(id);
      run(fsm.create_done(now, c, id));
      return id;
    }
    run(fsm.create_done(now, c, core::make_error(core::errc::sandbox_unavailable, "docker: create: boom")));
    return {};
  }
  void complete_all(bool ok, int bound = 1000) {
    for (int i = 0; i < bound && !pending.empty(); ++i) complete(ok);
  }
  void release(waiter_id w, bool recyclable = false) {
    held.erase(granted.at(w));
    run(fsm.release(now, granted.at(w), recyclable));
  }
  void scrubbed(const std::string& id, bool clean) { run(fsm.scrub_done(now, id, clean)); }
  void advance(std::chrono::milliseconds d) {
    now += d;
    run(fsm.tick(now));
  }
};

pool_limits small(std::size_t min, std::size_t max) {
  pool_limits l;
  l.min_idle = min;
  l.max_total = max;
  l.max_parallel_creates = 2;
  l.max_waiters = 3;
  l.idle_timeout = 1000ms;
  l.acquire_timeout = 500ms;
  l.backoff_initial = 100ms;
  l.backoff_max = 400ms;
  l.retry_after = 1000ms;
  return l;
}

TEST(PoolFsm, WarmupIsBoundedByParallelism) {
  harness h(small(3, 10));
  h.start();
  EXPECT_EQ(h.pending.size(), 2u);
  h.complete(true);
  EXPECT_EQ(h.pending.size(), 2u);  // third create starts as soon as a slot frees
  h.complete_all(true);
  EXPECT_EQ(h.fsm.stats().idle, 3u);
  EXPECT_TRUE(h.pending.empty());
  EXPECT_EQ(h.fsm.stats().created, 3u);
}

TEST(PoolFsm, AcquireFromIdleIsImmediateAndRefills) {
  harness h(small(2, 10));
  h.start();
  h.complete_all(true);
  const auto w = h.acquire();
  ASSERT_TRUE(h.granted.count(w));
  EXPECT_EQ(h.fsm.stats().active, 1u);
  EXPECT_EQ(h.pending.size(), 1u);  // refill toward min
  EXPECT_FALSE(h.position.count(w));
  h.release(w);
  EXPECT_EQ(h.destroyed[destroy_reason::released], 1);
  EXPECT_EQ(h.fsm.stats().active, 0u);
}

TEST(PoolFsm, MaxTotalQueuesFifoWithPositions) {
  pool_limits l = small(0, 2);
  l.max_waiters = 10;
  harness h(l);
  h.start();
  EXPECT_TRUE(h.pending.empty());
  const auto a = h.acquire();
  const auto b = h.acquire();
  const auto c = h.acquire();
  const auto d = h.acquire();
  EXPECT_EQ(h.pending.size(), 2u);
  EXPECT_EQ(h.position.at(c), 3u);
  EXPECT_EQ(h.position.at(d), 4u);
  h.complete_all(true);
  EXPECT_TRUE(h.granted.count(a) && h.granted.count(b));
  EXPECT_EQ(h.position.at(c), 1u);
  EXPECT_EQ(h.position.at(d), 2u);
  h.release(b);  // frees a slot: a create for c
  ASSERT_EQ(h.pending.size(), 1u);
  h.complete(true);
  EXPECT_TRUE(h.granted.count(c));
  EXPECT_FALSE(h.granted.count(d));
  EXPECT_EQ(h.position.at(d), 1u);
}

TEST(PoolFsm, WaiterTimesOutWithPoolExhausted) {
  harness h(small(0, 1));
  const auto a = h.acquire();
  h.complete(true);
  ASSERT_TRUE(h.granted.count(a));
  const auto b = h.acquire();
  EXPECT_EQ(h.position.at(b), 1u);
  ASSERT_TRUE(h.fsm.next_deadline());
  EXPECT_EQ(*h.fsm.next_deadline(), h.now + 500ms);
  h.advance(499ms);
  EXPECT_FALSE(h.failed.count(b));
  h.advance(1ms);
  ASSERT_TRUE(h.failed.count(b));
  EXPECT_EQ(h.failed.at(b).code, core::errc::pool_exhausted);
  EXPECT_EQ(h.retry.at(b), 1000ms);
  EXPECT_EQ(h.fsm.stats().exhausted, 1u);
  EXPECT_EQ(h.fsm.stats().waiting, 0u);
}

TEST(PoolFsm, WaitQueueIsBounded) {
  harness h(small(0, 1));
  h.acquire();
  h.acquire();
  h.acquire();
  h.acquire();  // 1 creating + 3 waiting (max_waiters 3) - the first is a waiter too
  const auto e = h.acquire();
  ASSERT_TRUE(h.failed.count(e));
  EXPECT_EQ(h.failed.at(e).code, core::errc::pool_exhausted);
  EXPECT_GT(h.retry.at(e).count(), 0);
}

TEST(PoolFsm, CancelledWaiterLeavesAndOthersMoveUp) {
  harness h(small(0, 1));
  h.acquire();
  const auto b = h.acquire();
  const auto c = h.acquire();
  EXPECT_EQ(h.position.at(c), 3u);
  h.run(h.fsm.cancel(h.now, b));
  EXPECT_EQ(h.position.at(c), 2u);
  EXPECT_EQ(h.fsm.stats().waiting, 2u);
}

TEST(PoolFsm, FailureBacksOffExponentiallyAndRecovers) {
  harness h(small(1, 10));
  h.start();
  ASSERT_EQ(h.pending.size(), 1u);
  h.complete(false);
  EXPECT_TRUE(h.pending.empty());  // backing off
  EXPECT_EQ(*h.fsm.next_deadline(), h.now + 100ms);
  h.advance(99ms);
  EXPECT_TRUE(h.pending.empty());
  h.advance(1ms);
  ASSERT_EQ(h.pending.size(), 1u);
  h.complete(false);
  EXPECT_EQ(*h.fsm.next_deadline(), h.now + 200ms);
  h.advance(200ms);
  h.complete(false);
  EXPECT_EQ(*h.fsm.next_deadline(), h.now + 400ms);
  h.advance(400ms);
  h.complete(false);
  EXPECT_EQ(*h.fsm.next_deadline(), h.now + 400ms);  // capped
  h.advance(400ms);
  h.complete(true);
  EXPECT_EQ(h.fsm.consecutive_failures(), 0u);
  EXPECT_EQ(h.fsm.stats().idle, 1u);
  EXPECT_EQ(h.fsm.stats().create_failures, 4u);
}

TEST(PoolFsm, CreateFailureIsReportedToTheWaitingCaller) {
  harness h(small(0, 4));
  const auto a = h.acquire();
  h.complete(false);
  ASSERT_TRUE(h.failed.count(a));
  EXPECT_EQ(h.failed.at(a).code, core::errc::sandbox_unavailable);
  EXPECT_NE(h.failed.at(a).message.find("boom"), std::string::npos);
}

TEST(PoolFsm, IdleAboveMinReapedAfterTimeout) {
  harness h(small(1, 10));
  h.start();
  h.complete_all(true);
  const auto a = h.acquire();
  const auto b = h.acquire();
  h.complete_all(true);
  h.complete_all(true);
  // give back: b and a are destroyed; fill back to min only
  h.release(a);
  h.release(b);
  h.complete_all(true);
  const auto s0 = h.fsm.stats();
  ASSERT_GE(s0.idle, 1u);
  // Over-fill: acquire three at once then satisfy, release none: idle stays at min.
  // Build surplus: min 1 but 3 idle via waiters that cancel.
  const auto w1 = h.acquire();
  const auto w2 = h.acquire();
  const auto w3 = h.acquire();
  h.run(h.fsm.cancel(h.now, w2));
  h.run(h.fsm.cancel(h.now, w3));
  h.complete_all(true);
  (void)w1;
  const auto s1 = h.fsm.stats();
  ASSERT_GT(s1.idle, 1u);
  h.advance(999ms);
  EXPECT_EQ(h.destroyed[destroy_reason::reaped], 0);
  h.advance(1ms);
  EXPECT_EQ(h.fsm.stats().idle, 1u);
  EXPECT_EQ(h.destroyed[destroy_reason::reaped], static_cast<int>(s1.idle - 1));
  h.advance(5000ms);
  EXPECT_EQ(h.fsm.stats().idle, 1u);  // never below min
}

TEST(PoolFsm, DeadIdleIsReplacedDeadActiveIgnored) {
  harness h(small(2, 10));
  h.start();
  h.complete_all(true);
  const auto idle = h.fsm.idle_containers();
  ASSERT_EQ(idle.size(), 2u);
  h.run(h.fsm.container_died(h.now, idle[0]));
  EXPECT_EQ(h.destroyed[destroy_reason::dead], 1);
  EXPECT_EQ(h.pending.size(), 1u);
  h.complete_all(true);
  EXPECT_EQ(h.fsm.stats().idle, 2u);
  EXPECT_EQ(h.fsm.stats().dead_replaced, 1u);
  const auto w = h.acquire();
  h.run(h.fsm.container_died(h.now, h.granted.at(w)));
  EXPECT_EQ(h.fsm.stats().active, 1u);
  h.run(h.fsm.container_died(h.now, "unknown"));
}

TEST(PoolFsm, PoolingDisabledCreatesPerAcquire) {
  pool_limits l = small(5, 3);
  l.pooling = false;
  harness h(l);
  h.start();
  EXPECT_TRUE(h.pending.empty());
  const auto a = h.acquire();
  ASSERT_EQ(h.pending.size(), 1u);
  h.complete(true);
  ASSERT_TRUE(h.granted.count(a));
  h.release(a);
  EXPECT_EQ(h.fsm.stats().idle, 0u);
  EXPECT_TRUE(h.pending.empty());
  const auto b = h.acquire();
  h.run(h.fsm.cancel(h.now, b));
  h.complete(true);  // nobody wants it any more
  EXPECT_EQ(h.destroyed[destroy_reason::unwanted], 1);
  EXPECT_TRUE(h.live.empty());
}

TEST(PoolFsm, ShutdownDestroysIdleFailsWaitersAndLateCreates) {
  harness h(small(1, 2));
  h.start();
  h.complete_all(true);
  const auto a = h.acquire();  // takes the idle, refill create pending
  const auto b = h.acquire();  // waits (max 2: a + refill)
  ASSERT_EQ(h.pending.size(), 1u);
  h.run(h.fsm.shutdown(h.now));
  ASSERT_TRUE(h.failed.count(b));
  h.complete(true);
  EXPECT_EQ(h.destroyed[destroy_reason::shutdown], 1);
  const auto c = h.acquire();
  EXPECT_TRUE(h.failed.count(c));
  h.release(a);
  EXPECT_TRUE(h.live.empty());
  EXPECT_FALSE(h.fsm.next_deadline());
}

TEST(PoolFsm, AdoptCountsAsActive) {
  harness h(small(0, 2));
  h.live.insert("old");
  h.run(h.fsm.adopt(h.now, "old"));
  EXPECT_EQ(h.fsm.stats().active, 1u);
  h.run(h.fsm.release(h.now, "old"));
  EXPECT_TRUE(h.live.empty());
}

// Scripted run of a busy scenario with the k-th Docker create failing, for every k: every caller
// gets exactly one answer, nothing leaks, invariants hold at each step.
TEST(PoolFsm, FailureInjectedAtEveryStep) {
  for (int fail_at = 0; fail_at < 16; ++fail_at) {
    for (int fail_len = 1; fail_len <= 3; ++fail_len) {
      SCOPED_TRACE("fail_at=" + std::to_string(fail_at) + " len=" + std::to_string(fail_len));
      harness h(small(2, 4));
      int step = 0;
      auto next_ok = [&] {
        const bool ok = step < fail_at || step >= fail_at + fail_len;
        ++step;
        return ok;
      };
      h.start();
      std::vector<waiter_id> ws;
      for (int round = 0; round < 40 && !HasFatalFailure(); ++round) {
        if (round % 3 == 0 && ws.size() < 8) ws.push_back(h.acquire());
        if (!h.pending.empty()) h.complete(next_ok());
        if (round % 5 == 4) {
          for (auto w : ws) {
            if (h.granted.count(w) && h.live.count(h.granted.at(w)) && h.fsm.is_active(h.granted.at(w))) {
              h.release(w);
              break;
            }
          }
        }
        h.advance(150ms);
      }
      // Drain: all creates finish successfully, time passes beyond every deadline.
      for (int i = 0; i < 50 && (!h.pending.empty() || h.fsm.stats().waiting > 0); ++i) {
        h.complete_all(true);
        h.advance(600ms);
      }
      for (auto w : ws) EXPECT_TRUE(h.granted.count(w) || h.failed.count(w)) << "waiter " << w << " unanswered";
      const auto s = h.fsm.stats();
      EXPECT_EQ(s.waiting, 0u);
      EXPECT_EQ(s.creating, 0u);
      // Every live container is accounted for as idle or active.
      EXPECT_EQ(h.live.size(), s.idle + s.active);
      EXPECT_GE(s.idle, 2u);
      h.run(h.fsm.shutdown(h.now));
      for (auto w : ws) {
        if (h.granted.count(w) && h.fsm.is_active(h.granted.at(w))) h.release(w);
      }
      EXPECT_TRUE(h.live.empty());
    }
  }
}

}  // namespace
}  // namespace berth::pool

namespace berth::pool {
namespace {
TEST(PoolFsm, ForgetDropsActiveWithoutDestroy) {
  harness h(small(0, 1));
  const auto a = h.acquire();
  h.complete(true);
  const auto b = h.acquire();  // waits: at max
  EXPECT_FALSE(h.granted.count(b));
  h.run(h.fsm.forget(h.now, h.granted.at(a)));
  EXPECT_EQ(h.fsm.stats().active, 0u);
  EXPECT_EQ(h.destroyed[destroy_reason::released], 0);
  EXPECT_EQ(h.pending.size(), 1u);  // the freed slot serves b
}

// ---- recycling

pool_limits recycling(std::size_t min, std::size_t max, std::size_t max_uses = 3,
                      std::chrono::milliseconds max_age = 10000ms) {
  auto l = small(min, max);
  l.recycle = true;
  l.max_uses = max_uses;
  l.max_age = max_age;
  return l;
}

TEST(PoolFsmRecycle, AReleasedContainerIsScrubbedThenServesTheNextUserWithoutACreate) {
  harness h(recycling(1, 2));
  h.start();
  const auto first = h.complete(true);
  const auto a = h.acquire();
  h.complete_all(true);  // refill to min idle
  const auto creates_before = h.fsm.stats().created;
  h.release(a, true);
  ASSERT_EQ(h.scrubs, std::vector<std::string>{first});
  EXPECT_EQ(h.fsm.stats().scrubbing, 1u);
  EXPECT_EQ(h.destroyed[destroy_reason::released], 0);
  EXPECT_TRUE(h.pending.empty()) << "a container being scrubbed still counts: no create for it";
  h.scrubbed(first, true);
  EXPECT_EQ(h.fsm.stats().recycled, 1u);
  EXPECT_TRUE(h.fsm.is_idle(first));
  // Newest idle first: the scrubbed one.
  const auto b = h.acquire();
  EXPECT_EQ(h.granted.at(b), first);
  EXPECT_EQ(h.fsm.uses(first), 2u);
  EXPECT_EQ(h.fsm.stats().created, creates_before);
}

TEST(PoolFsmRecycle, AFailedScrubDestroysTheContainerAndRefills) {
  harness h(recycling(1, 2));
  h.start();
  const auto c = h.complete(true);
  const auto a = h.acquire();
  h.complete_all(true);
  h.release(a, true);
  h.scrubbed(c, false);
  EXPECT_EQ(h.destroyed[destroy_reason::scrub_failed], 1);
  EXPECT_FALSE(h.live.count(c));
  EXPECT_EQ(h.fsm.stats().scrub_failures, 1u);
  EXPECT_EQ(h.fsm.stats().scrubbing, 0u);
  h.scrubbed(c, true);  // a late or repeated outcome changes nothing
  EXPECT_EQ(h.fsm.stats().recycled, 0u);
}

TEST(PoolFsmRecycle, WithoutItsServerOrWithRecyclingOffAReleaseDestroys) {
  harness h(recycling(0, 2));
  const auto a = h.acquire();
  h.complete(true);
  h.release(a, false);  // no sandbox server came back: nothing to scrub with
  EXPECT_EQ(h.destroyed[destroy_reason::released], 1);
  auto off = recycling(0, 2);
  off.recycle = false;
  harness g(off);
  const auto b = g.acquire();
  g.complete(true);
  g.release(b, true);
  EXPECT_TRUE(g.scrubs.empty());
  EXPECT_EQ(g.destroyed[destroy_reason::released], 1);
  auto no_pool = recycling(0, 2);
  no_pool.pooling = false;  // ENABLE_CONTAINER_POOL=false: nowhere to keep a clean container
  harness n(no_pool);
  const auto c = n.acquire();
  n.complete(true);
  n.release(c, true);
  EXPECT_TRUE(n.scrubs.empty());
}

TEST(PoolFsmRecycle, AContainerServesAtMostMaxUsesSessions) {
  harness h(recycling(0, 2, /*max_uses=*/2));
  auto a = h.acquire();
  const auto c = h.complete(true);
  h.release(a, true);
  h.scrubbed(c, true);
  a = h.acquire();
  ASSERT_EQ(h.granted.at(a), c);
  h.release(a, true);  // its second session ends: worn out
  EXPECT_TRUE(h.scrubs.size() == 1u);
  EXPECT_EQ(h.destroyed[destroy_reason::retired], 1);
  EXPECT_EQ(h.fsm.stats().retired, 1u);
}

TEST(PoolFsmRecycle, IdleContainersPastMaxAgeAreRetiredAndReplaced) {
  harness h(recycling(1, 2, 100, 5000ms));
  h.start();
  const auto c = h.complete(true);
  h.advance(4999ms);
  EXPECT_TRUE(h.fsm.is_idle(c));
  ASSERT_TRUE(h.fsm.next_deadline());
  EXPECT_EQ(*h.fsm.next_deadline(), time_point{} + 5000ms);
  h.advance(1ms);
  EXPECT_EQ(h.destroyed[destroy_reason::retired], 1);
  EXPECT_EQ(h.pending.size(), 1u) << "a replacement is created";
  // An active container past its age is not reused either.
  const auto fresh = h.complete(true);
  const auto a = h.acquire();
  ASSERT_EQ(h.granted.at(a), fresh);
  h.now += 6000ms;
  h.release(a, true);
  EXPECT_TRUE(h.scrubs.empty());
  EXPECT_EQ(h.destroyed[destroy_reason::retired], 2);
}

TEST(PoolFsmRecycle, AWaiterGetsTheScrubbedContainerFirst) {
  harness h(recycling(0, 1));
  const auto a = h.acquire();
  const auto c = h.complete(true);
  const auto b = h.acquire();  // pool at max: b waits
  EXPECT_EQ(h.position[b], 1u);
  h.release(a, true);
  EXPECT_FALSE(h.granted.count(b)) << "not before the scrub";
  h.scrubbed(c, true);
  EXPECT_EQ(h.granted.at(b), c);
}

TEST(PoolFsmRecycle, ShutdownDuringAScrubDestroysTheContainerWhenTheScrubEnds) {
  harness h(recycling(0, 2));
  const auto a = h.acquire();
  const auto c = h.complete(true);
  h.release(a, true);
  h.run(h.fsm.shutdown(h.now));
  h.scrubbed(c, true);
  EXPECT_EQ(h.destroyed[destroy_reason::shutdown], 1);
  EXPECT_FALSE(h.live.count(c));
}

TEST(PoolFsmRecycle, AnAdoptedContainerOfAnotherPoolIsNeverReused) {
  harness h(recycling(0, 4));
  h.live.insert("foreign");
  h.run(h.fsm.adopt(h.now, "foreign", std::nullopt, /*own=*/false));
  h.held.insert("foreign");
  h.run(h.fsm.release(h.now, "foreign", true));
  h.held.erase("foreign");
  EXPECT_TRUE(h.scrubs.empty());
  EXPECT_FALSE(h.live.count("foreign"));
  h.live.insert("mine");  // ours (same replica, restarted): reusable
  h.run(h.fsm.adopt(h.now, "mine", std::nullopt, /*own=*/true));
  h.run(h.fsm.release(h.now, "mine", true));
  EXPECT_EQ(h.scrubs, std::vector<std::string>{"mine"});
}

}  // namespace
}  // namespace berth::pool
