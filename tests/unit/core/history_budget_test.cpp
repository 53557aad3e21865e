#include <gtest/gtest.h>

#include <vector>

#include "berth/core/history_budget.hpp"

using berth::core::budget_item;
using berth::core::turns_to_drop;

namespace {

// "U" a user message (a turn starts), "A" assistant text, "C" an assistant tool call, "T" its
// result; every item costs 10 tokens unless given.
std::vector<budget_item> shape(std::string_view s, std::size_t tokens = 10) {
  std::vector<budget_item> v;
  for (char c : s) v.push_back({tokens, c == 'U'});
  return v;
}

// What a provider would be sent after the cut: must start with a user message, and every tool
// result must follow its call.
void expect_acceptable(std::string_view s, std::size_t drop) {
  const auto rest = s.substr(drop);
  if (rest.find('U') == std::string_view::npos) return;  // no turn start anywhere: nothing better
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front(), 'U') << s << " cut at " << drop;
}

}  // namespace

TEST(TurnsToDrop, FitsDropsNothing) {
  EXPECT_EQ(turns_to_drop(shape("UAUA"), 40), 0u);
  EXPECT_EQ(turns_to_drop(shape(""), 0), 0u);
}

TEST(TurnsToDrop, CutsOnlyBeforeAUserMessage) {
  // 6 items of 10, budget 35: the plain cut would be 3 (an assistant message first).
  EXPECT_EQ(turns_to_drop(shape("UAUAUA"), 35), 4u);
  // A tool round: the plain cut (2) would leave the result "T" without its call.
  EXPECT_EQ(turns_to_drop(shape("UCTAUA"), 40), 4u);
  EXPECT_EQ(turns_to_drop(shape("UCTAUCTCTA"), 70), 4u);
}

TEST(TurnsToDrop, TheNewestTurnIsKeptWholeEvenOverTheBudget) {
  // The last turn alone is 50 tokens, budget 25: keep it whole, drop everything before it.
  EXPECT_EQ(turns_to_drop(shape("UAUCTCTA"), 25), 2u);
  // A single huge user message.
  std::vector<budget_item> big{{10, true}, {10, false}, {1000, true}};
  EXPECT_EQ(turns_to_drop(big, 100), 2u);
}

TEST(TurnsToDrop, ADamagedHeadIsAlwaysDropped) {
  // Starts with orphan results (an old trim cut mid-turn): they go, fitting or not.
  EXPECT_EQ(turns_to_drop(shape("TTAUAUA"), 40), 3u);  // "UAUA" fits
  EXPECT_EQ(turns_to_drop(shape("TTAUA"), 45), 3u);
  EXPECT_EQ(turns_to_drop(shape("TTAUA"), 1000), 3u);
}

TEST(TurnsToDrop, NoTurnStartAtAllFallsBackToThePlainCut) {
  EXPECT_EQ(turns_to_drop(shape("ATAT"), 25), 2u);
  EXPECT_EQ(turns_to_drop(shape("AT", 100), 5), 1u);  // the newest is always kept
}

TEST(TurnsToDrop, AdversarialShapesNeverStartWithAnythingButAUser) {
  const char* shapes[] = {"UCTCTCTCTA", "UAUAUAUAUA", "TCTUCTUA", "UUUUUU", "UCCTTAUCTA", "ACTUAUCTCTCTA",
                          "UCTUCTUCTUCT", "U", "UA", "CT", "UTTTTTTTTT", "AAAAAU"};
  for (std::string_view s : shapes)
    for (std::size_t budget = 0; budget <= 10 * s.size() + 10; budget += 5) {
      const auto drop = turns_to_drop(shape(s), budget);
      ASSERT_LT(drop, s.size()) << s << " budget " << budget;  // never everything
      expect_acceptable(s, drop);
      // Minimal: no later user message could have been cut at with the same fit, and the cut
      // keeps the budget whenever a turn start allows it.
      std::size_t kept = 10 * (s.size() - drop);
      const auto last_user = s.rfind('U');
      if (kept > budget && last_user != std::string_view::npos) {
        EXPECT_EQ(drop, last_user) << s << " budget " << budget;
      }
    }
}
