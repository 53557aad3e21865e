#pragma once
// HS256 JSON Web Token verification (RFC 7519) for the optional AUTH_JWT_SECRET mode.
// Pure: the clock is a parameter. Only HS256 is accepted ("alg":"none" and others are refused).
#include <chrono>
#include <string>
#include <string_view>

#include "berth/core/errors.hpp"

namespace berth::gateway {

struct jwt_claims {
  std::string subject;  // "sub": the user id
  std::int64_t expires_at = 0;  // "exp" (seconds since epoch), 0 when absent
};

// Verifies signature, "alg", "exp" and "nbf" (with `leeway`); errors are errc::unauthorized with a
// reason that never contains the token or the secret.
core::result<jwt_claims> verify_jwt(std::string_view token, std::string_view secret, std::int64_t now_seconds,
                                    std::int64_t leeway_seconds = 30);

// Creates an HS256 token (tests, tooling).
std::string sign_jwt(std::string_view payload_json, std::string_view secret);

}  // namespace berth::gateway
