#include <gtest/gtest.h>

#include "berth/core/random.hpp"
#include "berth/gateway/jwt.hpp"

using namespace berth;

TEST(jwt, accepts_a_valid_token) {
  auto t = gateway::sign_jwt(R"({"sub":"alice","exp":2000})", "s3cret");
  auto c = gateway::verify_jwt(t, "s3cret", 1000);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->subject, "alice");
  EXPECT_EQ(c->expires_at, 2000);
}

TEST(jwt, rejects_and_never_echoes_secrets) {
  const std::string secret = "very-secret-key";
  auto good = gateway::sign_jwt(R"({"sub":"alice","exp":2000})", secret);
  const std::string none_alg = core::base64_encode(R"({"alg":"none"})", true) + "." +
                               core::base64_encode(R"({"sub":"alice"})", true) + ".";
  struct bad_case {
    std::string token;
    std::int64_t now;
    const char* reason;
  } cases[] = {
      {"", 1000, "missing token"},
      {"abc", 1000, "malformed token"},
      {"a.b.c.d", 1000, "malformed token"},
      {good, 5000, "token expired"},
      {gateway::sign_jwt(R"({"sub":"alice"})", "other"), 1000, "invalid token signature"},
      {none_alg, 1000, "unsupported token algorithm"},
      {gateway::sign_jwt(R"({"exp":2000})", secret), 1000, "token has no subject"},
      {gateway::sign_jwt(R"({"sub":"a","nbf":9000})", secret), 1000, "token not yet valid"},
      {gateway::sign_jwt(R"([1,2])", secret), 1000, "malformed token payload"},
      {good.substr(0, good.size() - 2) + "!!", 1000, "malformed token"},
  };
  for (auto& c : cases) {
    auto r = gateway::verify_jwt(c.token, secret, c.now);
    ASSERT_FALSE(r) << c.token;
    EXPECT_EQ(r.error().code, core::errc::unauthorized);
    EXPECT_EQ(r.error().message, c.reason) << c.token;
    EXPECT_EQ(r.error().message.find(secret), std::string::npos);
  }
}
