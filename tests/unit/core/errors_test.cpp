// The one table of client-visible error codes, and the body every answer carries.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "berth/core/errors.hpp"

using namespace berth::core;
using json = nlohmann::json;

TEST(errors, every_code_has_its_wire_name_and_http_status) {
  EXPECT_EQ(to_string(errc::too_many_requests), "TOO_MANY_REQUESTS");
  EXPECT_EQ(http_status(errc::too_many_requests), 429u);
  EXPECT_EQ(to_string(errc::too_many_sessions), "TOO_MANY_SESSIONS");
  EXPECT_EQ(http_status(errc::too_many_sessions), 429u);
  EXPECT_EQ(to_string(errc::server_overloaded), "SERVER_OVERLOADED");
  EXPECT_EQ(http_status(errc::server_overloaded), 503u);
  EXPECT_EQ(to_string(errc::unauthorized), "UNAUTHORIZED");
  EXPECT_EQ(http_status(errc::unauthorized), 401u);
  // No code falls through to the table's default: each has a row of its own.
  for (int c = 0; c < static_cast<int>(errc::internal); ++c)
    EXPECT_NE(to_string(static_cast<errc>(c)), "INTERNAL") << "errc " << c << " has no row";
}

TEST(errors, the_body_carries_the_retry_hint_only_when_known) {
  EXPECT_EQ(error_body(make_error(errc::tool_failed, "exit 1")), (json{{"code", "TOOL_FAILED"}, {"message", "exit 1"}}));
  const error limited{errc::rate_limited, "slow down", std::chrono::milliseconds(1500)};
  EXPECT_EQ(error_body(limited), (json{{"code", "RATE_LIMITED"}, {"message", "slow down"}, {"retryAfterMs", 1500}}));
}

TEST(errors, a_refused_events_ack_is_one_object_with_ok_false) {
  const error limited{errc::rate_limited, "slow down", std::chrono::milliseconds(250)};
  EXPECT_EQ(ack_error(limited),
            json::array({json{{"ok", false}, {"code", "RATE_LIMITED"}, {"message", "slow down"}, {"retryAfterMs", 250}}}));
}

