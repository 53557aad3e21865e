#include <gtest/gtest.h>

#include "berth/session/orphans.hpp"

using namespace berth::session;

namespace {

labelled_container managed(std::string id, std::string replica) {
  return {std::move(id), {{"berth.managed", "true"}, {"berth.replica", std::move(replica)}, {"berth.pool", "default"}}};
}

orphan_view view() {
  orphan_view v;
  v.self_replica = "me";
  v.live_replicas = {"me", "alive"};
  v.known_replicas = {"me", "alive", "dead", "gone"};
  return v;
}

}  // namespace

TEST(orphans, only_a_dead_known_replicas_unreferenced_container_is_an_orphan) {
  auto v = view();
  EXPECT_EQ(classify_container(managed("c1", "dead"), v), orphan_verdict::orphan);
  EXPECT_EQ(classify_container(managed("c2", "alive"), v), orphan_verdict::live_replica);
  EXPECT_EQ(classify_container(managed("c3", "me"), v), orphan_verdict::own_replica);
  EXPECT_EQ(classify_container(managed("c4", "stranger"), v), orphan_verdict::foreign_replica);
  EXPECT_EQ(classify_container(managed("c5", ""), v), orphan_verdict::no_replica);
  EXPECT_EQ(classify_container({"c6", {{"berth.managed", "true"}}}, v), orphan_verdict::no_replica);
  EXPECT_EQ(classify_container({"c7", {{"berth.replica", "dead"}}}, v), orphan_verdict::not_managed);
  EXPECT_EQ(classify_container({"c8", {{"berth.managed", "false"}, {"berth.replica", "dead"}}}, v),
            orphan_verdict::not_managed);
}

TEST(orphans, our_replica_is_alive_even_without_a_heartbeat) {
  auto v = view();
  v.live_replicas.clear();  // our own heartbeat write failed: still never reap our containers
  EXPECT_EQ(classify_container(managed("c1", "me"), v), orphan_verdict::own_replica);
  EXPECT_EQ(classify_container(managed("c2", "alive"), v), orphan_verdict::orphan);
}

TEST(orphans, our_own_container_that_nobody_holds_is_an_orphan_once_old_enough) {
  auto v = view();
  v.now_s = 10'000;
  auto held = managed("held", "me");
  auto untracked = managed("untracked", "me");
  auto young = managed("young", "me");
  auto undated = managed("undated", "me");
  held.created = untracked.created = 10'000 - 61;
  young.created = 10'000 - 30;  // its create may still be answering
  // Without the pool's word, never.
  EXPECT_EQ(classify_container(untracked, v), orphan_verdict::own_replica);
  v.own_held = std::set<std::string>{"held"};
  EXPECT_EQ(classify_container(held, v), orphan_verdict::own_replica);
  EXPECT_EQ(classify_container(untracked, v), orphan_verdict::orphan);
  EXPECT_EQ(classify_container(young, v), orphan_verdict::own_replica);
  EXPECT_EQ(classify_container(undated, v), orphan_verdict::own_replica);
  // A session's container (parked or hibernating) is not the pool's but is referenced: kept.
  v.referenced = {"untracked"};
  EXPECT_EQ(classify_container(untracked, v), orphan_verdict::referenced);
}

TEST(orphans, a_referenced_container_is_kept_whatever_its_replica) {
  auto v = view();
  v.referenced = {"c1", "0123456789abcdef"};
  EXPECT_EQ(classify_container(managed("c1", "dead"), v), orphan_verdict::referenced);
  EXPECT_EQ(classify_container(managed("c1", "stranger"), v), orphan_verdict::referenced);
  // Short (12-char) and full forms of one id match each other; shorter prefixes do not.
  EXPECT_EQ(classify_container(managed("0123456789abcdef00112233", "dead"), v), orphan_verdict::referenced);
  EXPECT_EQ(classify_container(managed("0123456789ab", "dead"), v), orphan_verdict::referenced);
  EXPECT_EQ(classify_container(managed("0123456789a", "dead"), v), orphan_verdict::orphan);
  EXPECT_EQ(classify_container(managed("0123456789abcdeX", "dead"), v), orphan_verdict::orphan);
  EXPECT_FALSE(is_referenced("", {""}));
  EXPECT_TRUE(is_referenced("c1", {"c1"}));
  EXPECT_FALSE(is_referenced("c", {"c1"}));
}

TEST(orphans, plan_removes_orphans_counts_the_kept_and_bounds_the_round) {
  auto v = view();
  v.referenced = {"r1"};
  std::vector<labelled_container> list = {managed("o1", "dead"), managed("a1", "alive"), managed("r1", "dead"),
                                          managed("m1", "me"),   managed("o2", "dead"),  managed("o3", "dead"),
                                          managed("f1", "stranger")};
  auto plan = plan_orphan_reaping(list, v, 2);
  EXPECT_EQ(plan.remove, (std::vector<std::string>{"o1", "o2"}));
  EXPECT_EQ(plan.deferred, 1u);
  EXPECT_EQ(plan.kept[orphan_verdict::live_replica], 1u);
  EXPECT_EQ(plan.kept[orphan_verdict::referenced], 1u);
  EXPECT_EQ(plan.kept[orphan_verdict::own_replica], 1u);
  EXPECT_EQ(plan.kept[orphan_verdict::foreign_replica], 1u);
  EXPECT_EQ(plan.kept.count(orphan_verdict::orphan), 0u);
  // "dead" still has containers listed; "gone" has none: only "gone" is forgotten.
  EXPECT_EQ(plan.forget_replicas, (std::vector<std::string>{"gone"}));
}

TEST(orphans, nothing_listed_nothing_removed) {
  auto v = view();
  auto plan = plan_orphan_reaping({}, v, 100);
  EXPECT_TRUE(plan.remove.empty());
  EXPECT_EQ(plan.deferred, 0u);
  EXPECT_TRUE(plan.kept.empty());
  EXPECT_EQ(plan.forget_replicas, (std::vector<std::string>{"dead", "gone"}));  // never self or live ones
}

TEST(orphans, verdict_names) {
  EXPECT_EQ(to_string(orphan_verdict::orphan), "orphan");
  EXPECT_EQ(to_string(orphan_verdict::referenced), "referenced");
  EXPECT_EQ(to_string(orphan_verdict::foreign_replica), "foreign_replica");
}
