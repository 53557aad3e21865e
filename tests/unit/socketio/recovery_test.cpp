// Connection state recovery's pure core: offsets, the capped outbox and which offsets recover.
#include <gtest/gtest.h>

#include "berth/socketio/recovery.hpp"

using namespace berth::socketio;
using json = nlohmann::json;

namespace {
json event(const std::string& name, int n) { return json::array({name, json{{"n", n}}}); }
}  // namespace

TEST(RecoveryOffset, RoundTripsAndRefusesAnythingElse) {
  EXPECT_EQ(parse_offset(format_offset(1)), 1u);
  EXPECT_EQ(parse_offset("18446744073709551615"), UINT64_MAX);
  for (const char* bad : {"", "0", "01", "-1", "1a", " 1", "18446744073709551616", "abc", "1.5"})
    EXPECT_FALSE(parse_offset(bad)) << bad;
}

TEST(RecoveryReason, OnlyTransportLossIsRecoverable) {
  EXPECT_TRUE(is_recoverable_reason("transport close"));
  EXPECT_TRUE(is_recoverable_reason("transport error"));
  EXPECT_TRUE(is_recoverable_reason("ping timeout"));
  EXPECT_TRUE(is_recoverable_reason("forced close"));
  EXPECT_TRUE(is_recoverable_reason("server shutting down"));
  EXPECT_FALSE(is_recoverable_reason("client namespace disconnect"));
  EXPECT_FALSE(is_recoverable_reason("server namespace disconnect"));
  EXPECT_FALSE(is_recoverable_reason("parse error"));
}

TEST(RecoveryOutbox, StampsIncreasingOffsetsAsTheLastArgument) {
  outbox box(10);
  auto a = event("a", 1);
  auto b = event("b", 2);
  box.stamp(a);
  box.stamp(b);
  EXPECT_EQ(a.back(), "1");
  EXPECT_EQ(b.back(), "2");
  ASSERT_EQ(box.events().size(), 2u);
  EXPECT_EQ(box.events()[1].args, b);
  EXPECT_EQ(box.last_offset(), 2u);
}

TEST(RecoveryOutbox, ReplaysEverythingAfterTheOffsetInOrder) {
  outbox box(10);
  for (int i = 0; i < 5; ++i) {
    auto e = event("e", i);
    box.stamp(e);
  }
  auto missed = box.after(2);
  ASSERT_TRUE(missed);
  ASSERT_EQ(missed->size(), 3u);
  EXPECT_EQ((*missed)[0].offset, 3u);
  EXPECT_EQ((*missed)[2].offset, 5u);
  EXPECT_EQ((*missed)[2].args[1]["n"], 4);
  auto none = box.after(5);  // saw everything: recovered, nothing to send
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(RecoveryOutbox, AnOffsetNeverIssuedOrDroppedByTheCapDoesNotRecover) {
  outbox box(3);
  for (int i = 0; i < 6; ++i) {
    auto e = event("e", i);
    box.stamp(e);
  }
  // Holds 4, 5, 6: offset 3 still recovers (4 is next), 2 does not (3 was dropped).
  EXPECT_EQ(box.events().front().offset, 4u);
  EXPECT_TRUE(box.after(3));
  EXPECT_FALSE(box.after(2));
  EXPECT_FALSE(box.after(7));
}

TEST(RecoveryOutbox, ZeroCapacityRecoversOnlyAClientThatSawEverything) {
  outbox box(0);
  auto e = event("e", 1);
  box.stamp(e);
  EXPECT_EQ(e.back(), "1");
  EXPECT_TRUE(box.after(1));
  EXPECT_FALSE(box.after(0));
}

TEST(RecoveryState, SerializesAndRefusesForeignText) {
  outbox box(5);
  for (int i = 0; i < 3; ++i) {
    auto e = event("e", i);
    box.stamp(e);
  }
  detached_state s{"abc", "/", json{{"sessionId", "s1"}}, box.last_offset(), {box.events().begin(), box.events().end()}};
  auto back = deserialize_detached(serialize(s));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->sid, "abc");
  EXPECT_EQ(back->data["sessionId"], "s1");
  EXPECT_EQ(back->last_offset, 3u);
  ASSERT_EQ(back->events.size(), 3u);
  EXPECT_EQ(back->events[2].args, s.events[2].args);
  for (const char* bad : {"", "null", "{}", R"({"v":1,"sid":"a","nsp":"/","last":1,"events":[[2,[]]]})",
                          R"({"v":1,"sid":"a","nsp":"/","last":3,"events":[[2,[]],[1,[]]]})",
                          R"({"v":2,"sid":"a","nsp":"/","last":0,"events":[]})"})
    EXPECT_FALSE(deserialize_detached(bad)) << bad;
  // A restored outbox continues the numbering and keeps the cap.
  outbox again(2, back->last_offset);
  for (auto& e : back->events) again.restore(e);
  auto next = event("n", 9);
  again.stamp(next);
  EXPECT_EQ(next.back(), "4");
  EXPECT_FALSE(again.after(1));
  EXPECT_TRUE(again.after(2));
}
