#include <gtest/gtest.h>

#include "berth/llm/provider.hpp"

namespace berth::llm {
namespace {

TEST(Backoff, DoublesAndCaps) {
  retry_policy p;
  p.base_backoff = std::chrono::milliseconds(100);
  p.max_backoff = std::chrono::milliseconds(350);
  EXPECT_EQ(backoff_delay(p, 1).count(), 100);
  EXPECT_EQ(backoff_delay(p, 2).count(), 200);
  EXPECT_EQ(backoff_delay(p, 3).count(), 350);
  EXPECT_EQ(backoff_delay(p, 100).count(), 350);
}

}  // namespace
}  // namespace berth::llm
