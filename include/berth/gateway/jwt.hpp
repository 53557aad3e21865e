#pragma once
// HS256 JSON Web Token verification (RFC 7519) for the optional AUTH_JWT_SECRET mode.
// Pure: the clock is a parameter. Only HS256 is accepted ("alg":"none" and others are refused).
#include <chrono>
#include <string>
#include <string_view>

#include "berth/core/config.hpp"
#include "berth/core/errors.hpp"

namespace berth::gateway {

struct jwt_claims {
  std::string subject;          // "sub": the user id
  std::int64_t expires_at = 0;  // "exp" (seconds since epoch)
};

// What a token must satisfy. The views must outlive the verify_jwt call.
struct jwt_policy {
  std::string_view secret;
  std::string_view audience;  // non-empty: "aud" (a string or an array of strings) must name it
  std::string_view issuer;    // non-empty: "iss" must equal it
  std::int64_t leeway_seconds = 30;  // clock skew allowed on "exp" and "nbf"
};

// AUTH_JWT_SECRET, AUTH_JWT_AUDIENCE and AUTH_JWT_ISSUER of `cfg` (which must outlive the policy).
inline jwt_policy jwt_policy_of(const core::config& cfg) {
  return jwt_policy{cfg.auth_jwt_secret, cfg.auth_jwt_audience, cfg.auth_jwt_issuer};
}

// Verifies signature, "alg", "sub", "exp" (required: a token without expiry would be valid
// forever), "nbf", and "aud"/"iss" when the policy names them. Errors are errc::unauthorized with
// a reason that never contains the token or the secret.
core::result<jwt_claims> verify_jwt(std::string_view token, const jwt_policy& policy, std::int64_t now_seconds);

// Creates an HS256 token (tests, tooling).
std::string sign_jwt(std::string_view payload_json, std::string_view secret);

}  // namespace berth::gateway
