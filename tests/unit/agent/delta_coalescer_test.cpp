// agent:delta pacing: a burst goes out at once, then one event per interval with the text in
// between merged, in order; nothing is lost; interval 0 disables it.
#include <gtest/gtest.h>

#include "berth/agent/delta_coalescer.hpp"

using berth::agent::delta_coalescer;
using namespace std::chrono_literals;

namespace {
const auto t0 = delta_coalescer::clock::time_point{} + 1h;
}

TEST(DeltaCoalescer, BurstThenPacedAndMerged) {
  delta_coalescer c(20ms, 3);
  EXPECT_EQ(c.push("a", t0), "a");
  EXPECT_EQ(c.push("b", t0), "b");
  EXPECT_EQ(c.push("c", t0 + 1ms), "c");
  EXPECT_FALSE(c.push("d", t0 + 2ms));  // bucket empty: held
  EXPECT_FALSE(c.push("e", t0 + 3ms));
  ASSERT_TRUE(c.due());
  EXPECT_EQ(*c.due(), t0 + 20ms);
  EXPECT_EQ(c.held_bytes(), 2u);
  EXPECT_EQ(c.take(t0 + 20ms), "de");
  EXPECT_FALSE(c.holding());
  EXPECT_FALSE(c.push("f", t0 + 21ms));  // the token went to "de"
  EXPECT_EQ(*c.due(), t0 + 40ms);
  EXPECT_EQ(c.take(t0 + 40ms), "f");
}

TEST(DeltaCoalescer, TextArrivingWhileHeldQueuesBehindIt) {
  delta_coalescer c(10ms, 1);
  EXPECT_EQ(c.push("1", t0), "1");
  EXPECT_FALSE(c.push("2", t0));
  // A token is due again, but "3" must not overtake "2".
  EXPECT_FALSE(c.push("3", t0 + 15ms));
  EXPECT_EQ(c.take(t0 + 15ms), "23");
}

TEST(DeltaCoalescer, BucketRefillsAfterQuiet) {
  delta_coalescer c(10ms, 2);
  EXPECT_TRUE(c.push("a", t0));
  EXPECT_TRUE(c.push("b", t0));
  EXPECT_FALSE(c.push("c", t0));
  EXPECT_EQ(c.take(t0 + 10ms), "c");
  // A long pause refills the whole burst, no more.
  EXPECT_TRUE(c.push("d", t0 + 1s));
  EXPECT_TRUE(c.push("e", t0 + 1s));
  EXPECT_FALSE(c.push("f", t0 + 1s));
}

TEST(DeltaCoalescer, EndOfAnswerTakesRegardlessOfTokens) {
  delta_coalescer c(1s, 1);
  c.push("x", t0);
  c.push("y", t0);
  EXPECT_EQ(c.take(t0 + 1ms), "y");  // the answer ended: flushed early
  EXPECT_TRUE(c.take(t0 + 2ms).empty());
}

TEST(DeltaCoalescer, ManyPiecesBoundedEvents) {
  delta_coalescer c(20ms, 8);
  std::size_t events = 0;
  std::string all;
  auto now = t0;
  for (int i = 0; i < 10000; ++i) {  // 10k tokens over 1 s
    now += 100us;
    if (auto out = c.push("t", now)) {
      ++events;
      all += *out;
    }
    if (c.due() && *c.due() <= now) {
      ++events;
      all += c.take(now);
    }
  }
  all += c.take(now);
  EXPECT_EQ(all.size(), 10000u);  // nothing lost
  EXPECT_LE(events, 8u + 51u);    // burst + one per 20 ms
}

TEST(DeltaCoalescer, ZeroIntervalPassesEveryPiece) {
  delta_coalescer c(0ms, 8);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(c.push("p", t0));
  EXPECT_FALSE(c.holding());
  EXPECT_FALSE(c.push("", t0));
}
