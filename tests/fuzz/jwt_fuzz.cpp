// libFuzzer target: AUTH_JWT_SECRET tokens (what any client sends in its CONNECT auth). The input
// is tried as a token as is, and as a payload signed with the secret (so the claim checks, not
// only the signature check, see arbitrary JSON).
#include <cstddef>
#include <cstdint>
#include <string>

#include "berth/gateway/jwt.hpp"
#include "fuzz_input.hpp"

using namespace berth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string secret(32, 'k');
  fuzz::input in(data, size);
  const std::int64_t now = 1'700'000'000 + static_cast<std::int64_t>(in.byte()) * 1000;
  const gateway::jwt_policy strict{secret, "berth", "https://idp.example"};
  const gateway::jwt_policy plain{secret, {}, {}};
  (void)gateway::verify_jwt(in.rest(), strict, now);
  const auto signed_token = gateway::sign_jwt(in.rest(), secret);
  auto a = gateway::verify_jwt(signed_token, plain, now);
  auto b = gateway::verify_jwt(signed_token, strict, now);
  if (b && !a) __builtin_trap();  // the stricter policy never accepts more
  if (a && (a->subject.empty() || a->subject.size() > 256)) __builtin_trap();
  if (a && now - 30 > a->expires_at) __builtin_trap();  // never an expired token
  return 0;
}
