#include <gtest/gtest.h>

#include "berth/core/random.hpp"
#include "berth/gateway/jwt.hpp"

using namespace berth;

namespace {
const std::string secret = "0123456789abcdef0123456789abcdef-secret";
gateway::jwt_policy plain(std::string_view s = secret) { return gateway::jwt_policy{s, {}, {}}; }
}  // namespace

TEST(jwt, accepts_a_valid_token) {
  auto t = gateway::sign_jwt(R"({"sub":"alice","exp":2000})", secret);
  auto c = gateway::verify_jwt(t, plain(), 1000);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->subject, "alice");
  EXPECT_EQ(c->expires_at, 2000);
}

TEST(jwt, rejects_and_never_echoes_secrets) {
  auto good = gateway::sign_jwt(R"({"sub":"alice","exp":2000})", secret);
  const std::string none_alg = core::base64_encode(R"({"alg":"none"})", true) + "." +
                               core::base64_encode(R"({"sub":"alice","exp":2000})", true) + ".";
  struct bad_case {
    std::string token;
    std::int64_t now;
    const char* reason;
  } cases[] = {
      {"", 1000, "missing token"},
      {"abc", 1000, "malformed token"},
      {"a.b.c.d", 1000, "malformed token"},
      {good, 5000, "token expired"},
      {good, 2031, "token expired"},  // 30 s of leeway, not more
      {gateway::sign_jwt(R"({"sub":"alice","exp":2000})", "other"), 1000, "invalid token signature"},
      {none_alg, 1000, "unsupported token algorithm"},
      {gateway::sign_jwt(R"({"exp":2000})", secret), 1000, "token has no subject"},
      {gateway::sign_jwt(R"({"sub":"a","exp":9999,"nbf":9000})", secret), 1000, "token not yet valid"},
      {gateway::sign_jwt(R"({"sub":"a","exp":9999,"nbf":"soon"})", secret), 1000, "malformed token"},
      {gateway::sign_jwt(R"([1,2])", secret), 1000, "malformed token payload"},
      {good.substr(0, good.size() - 2) + "!!", 1000, "malformed token"},
      // exp is required: a token without one would be valid forever.
      {gateway::sign_jwt(R"({"sub":"alice"})", secret), 1000, "token has no expiry"},
      {gateway::sign_jwt(R"({"sub":"alice","exp":"2000"})", secret), 1000, "malformed token expiry"},
      // A float too large for 64 bits must not reach an (undefined) conversion.
      {gateway::sign_jwt(R"({"sub":"alice","exp":1e300})", secret), 1000, "malformed token expiry"},
  };
  for (auto& c : cases) {
    auto r = gateway::verify_jwt(c.token, plain(), c.now);
    ASSERT_FALSE(r) << c.token;
    EXPECT_EQ(r.error().code, core::errc::unauthorized);
    EXPECT_EQ(r.error().message, c.reason) << c.token;
    EXPECT_EQ(r.error().message.find(secret), std::string::npos);
  }
}

TEST(jwt, a_header_whose_alg_is_not_a_string_is_refused_not_thrown) {
  // Read before the signature is checked, so any client controls it.
  for (const char* header : {R"({"alg":1})", R"({"alg":["HS256"]})", R"({"alg":null})"}) {
    const std::string token = core::base64_encode(header, true) + "." +
                              core::base64_encode(R"({"sub":"a","exp":2000})", true) + ".c2ln";
    core::result<gateway::jwt_claims> r = core::make_error(core::errc::internal, "not run");
    EXPECT_NO_THROW(r = gateway::verify_jwt(token, plain(), 1000)) << header;
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "unsupported token algorithm") << header;
  }
}

TEST(jwt, nbf_and_exp_honour_the_leeway) {
  auto t = gateway::sign_jwt(R"({"sub":"a","nbf":1000,"exp":2000.5})", secret);
  EXPECT_TRUE(gateway::verify_jwt(t, plain(), 971));   // 29 s early: clock skew
  EXPECT_FALSE(gateway::verify_jwt(t, plain(), 969));
  EXPECT_TRUE(gateway::verify_jwt(t, plain(), 2030));
  EXPECT_FALSE(gateway::verify_jwt(t, plain(), 2031));
}

TEST(jwt, audience_and_issuer_are_checked_when_configured) {
  gateway::jwt_policy p{secret, "berth", "https://idp.example"};
  auto ok = gateway::sign_jwt(R"({"sub":"a","exp":2000,"aud":"berth","iss":"https://idp.example"})", secret);
  EXPECT_TRUE(gateway::verify_jwt(ok, p, 1000));
  auto in_list = gateway::sign_jwt(R"({"sub":"a","exp":2000,"aud":["other","berth"],"iss":"https://idp.example"})", secret);
  EXPECT_TRUE(gateway::verify_jwt(in_list, p, 1000));
  struct bad_case {
    const char* payload;
    const char* reason;
  } cases[] = {
      {R"({"sub":"a","exp":2000,"iss":"https://idp.example"})", "token audience not accepted"},
      {R"({"sub":"a","exp":2000,"aud":"other","iss":"https://idp.example"})", "token audience not accepted"},
      {R"({"sub":"a","exp":2000,"aud":["other"],"iss":"https://idp.example"})", "token audience not accepted"},
      {R"({"sub":"a","exp":2000,"aud":{"berth":1},"iss":"https://idp.example"})", "token audience not accepted"},
      {R"({"sub":"a","exp":2000,"aud":"berth"})", "token issuer not accepted"},
      {R"({"sub":"a","exp":2000,"aud":"berth","iss":"https://evil.example"})", "token issuer not accepted"},
  };
  for (auto& c : cases) {
    auto r = gateway::verify_jwt(gateway::sign_jwt(c.payload, secret), p, 1000);
    ASSERT_FALSE(r) << c.payload;
    EXPECT_EQ(r.error().message, c.reason) << c.payload;
  }
  // Without AUTH_JWT_AUDIENCE / AUTH_JWT_ISSUER, a token's aud and iss are not looked at.
  EXPECT_TRUE(gateway::verify_jwt(gateway::sign_jwt(R"({"sub":"a","exp":2000,"aud":"x","iss":"y"})", secret), plain(), 1000));
}

TEST(jwt, policy_of_config_carries_the_three_settings) {
  core::config cfg;
  cfg.auth_jwt_secret = secret;
  cfg.auth_jwt_audience = "berth";
  cfg.auth_jwt_issuer = "idp";
  auto p = gateway::jwt_policy_of(cfg);
  EXPECT_EQ(p.secret, secret);
  EXPECT_EQ(p.audience, "berth");
  EXPECT_EQ(p.issuer, "idp");
}
