#include <gtest/gtest.h>

#include "berth/core/rate_limit.hpp"

using namespace berth::core;
using namespace std::chrono_literals;

namespace {
const rate_clock::time_point t0 = rate_clock::time_point{} + 1000h;  // any fixed instant
}

TEST(token_bucket, starts_full_then_refills_at_its_rate) {
  token_bucket b(10, 5, t0);  // 10 per second, burst 5
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(b.try_take(t0)) << i;
  EXPECT_FALSE(b.try_take(t0));
  EXPECT_EQ(b.wait_time(t0), 100ms);
  EXPECT_FALSE(b.try_take(t0 + 99ms));
  EXPECT_TRUE(b.try_take(t0 + 100ms));
  EXPECT_FALSE(b.try_take(t0 + 100ms));
  // Never more than the burst, however long it rested.
  EXPECT_DOUBLE_EQ(b.available(t0 + 1h), 5.0);
  EXPECT_TRUE(b.full(t0 + 1h));
}

TEST(token_bucket, a_refused_take_costs_nothing) {
  token_bucket b(1, 2, t0);
  EXPECT_TRUE(b.try_take(t0, 2));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(b.try_take(t0 + 500ms));
  EXPECT_TRUE(b.try_take(t0 + 1s));  // refusals did not push the refill back
}

TEST(token_bucket, clock_going_back_refills_nothing_and_wait_time_is_bounded) {
  token_bucket b(2, 1, t0);
  EXPECT_TRUE(b.try_take(t0));
  EXPECT_FALSE(b.try_take(t0 - 10s));
  EXPECT_EQ(b.wait_time(t0), 500ms);
  EXPECT_EQ(b.wait_time(t0, 10), 500ms);  // more than the burst: the time to fill it
  token_bucket slow(1e-12, 1, t0);
  EXPECT_TRUE(slow.try_take(t0));
  EXPECT_EQ(slow.wait_time(t0), std::chrono::milliseconds(24 * 3600 * 1000));
}

TEST(flood_detector, fires_after_consecutive_flooded_seconds_only) {
  flood_detector d(100, 3);  // >= 100 events in each of 3 consecutive seconds
  auto flood_second = [&](rate_clock::time_point start) {
    bool fired = false;
    for (int i = 0; i < 100; ++i) fired = d.record(start + std::chrono::milliseconds(i * 5)) || fired;
    return fired;
  };
  EXPECT_FALSE(flood_second(t0));
  EXPECT_FALSE(flood_second(t0 + 1s));
  EXPECT_TRUE(flood_second(t0 + 2s));
}

TEST(flood_detector, a_quiet_second_or_a_slow_second_breaks_the_streak) {
  flood_detector d(100, 2);
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(d.record(t0 + std::chrono::milliseconds(i)));
  // 99 events in the next second: not flooded, streak reset.
  for (int i = 0; i < 99; ++i) EXPECT_FALSE(d.record(t0 + 1s + std::chrono::milliseconds(i)));
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(d.record(t0 + 2s + std::chrono::milliseconds(i)));
  // A whole quiet second between two flooded ones: no streak either.
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(d.record(t0 + 4s + std::chrono::milliseconds(i)));
  bool fired = false;
  for (int i = 0; i < 100; ++i) fired = d.record(t0 + 5s + std::chrono::milliseconds(i)) || fired;
  EXPECT_TRUE(fired);
}

TEST(flood_detector, zero_seconds_never_fires) {
  flood_detector d(1, 0);
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(d.record(t0 + std::chrono::milliseconds(i * 10)));
}

TEST(keyed_token_buckets, one_bucket_per_key) {
  keyed_token_buckets k(1, 2, 100);
  EXPECT_TRUE(k.try_take("a", t0));
  EXPECT_TRUE(k.try_take("a", t0));
  EXPECT_FALSE(k.try_take("a", t0));
  EXPECT_EQ(k.wait_time("a", t0), 1000ms);
  EXPECT_TRUE(k.try_take("b", t0));
  EXPECT_EQ(k.wait_time("unknown", t0), 0ms);
  EXPECT_TRUE(k.try_take("a", t0 + 1s));
}

TEST(keyed_token_buckets, map_size_is_bounded_and_the_least_recently_used_key_goes) {
  keyed_token_buckets k(1, 1, 3);
  EXPECT_TRUE(k.try_take("a", t0));
  EXPECT_TRUE(k.try_take("b", t0));
  EXPECT_TRUE(k.try_take("c", t0));
  EXPECT_FALSE(k.try_take("a", t0));  // a is now the most recently used
  EXPECT_TRUE(k.try_take("d", t0));   // evicts b
  EXPECT_EQ(k.size(), 3u);
  EXPECT_EQ(k.evictions(), 1u);
  EXPECT_FALSE(k.try_take("a", t0));  // a kept its state
  EXPECT_FALSE(k.try_take("c", t0));  // c too (and is now recent)
  EXPECT_TRUE(k.try_take("b", t0));   // b was forgotten: a fresh bucket (evicts d)
  EXPECT_TRUE(k.try_take("d", t0));
  for (int i = 0; i < 10000; ++i) k.try_take("k" + std::to_string(i), t0);
  EXPECT_EQ(k.size(), 3u);
}

TEST(log_limiter, passes_a_burst_then_reports_what_it_suppressed) {
  log_limiter l(1, 2);
  std::uint64_t suppressed = 99;
  const auto now = rate_clock::now();
  EXPECT_TRUE(l.allow(suppressed, now));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(l.allow(suppressed, now));
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(l.allow(suppressed, now));
  EXPECT_TRUE(l.allow(suppressed, now + 1s));
  EXPECT_EQ(suppressed, 5u);
}
