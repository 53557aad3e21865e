#include "berth/gateway/jwt.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "berth/core/json.hpp"
#include "berth/core/random.hpp"

namespace berth::gateway {
namespace {

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

core::error unauthorized(std::string reason) { return core::make_error(core::errc::unauthorized, std::move(reason)); }

// A NumericDate ("exp", "nbf"): an integer or a finite number of seconds that fits in 64 bits
// (a huge float must not reach a float-to-integer conversion, which would be undefined).
std::optional<std::int64_t> numeric_date(const nlohmann::json& v) {
  if (v.is_number_integer()) return v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX
                                        ? std::optional<std::int64_t>(INT64_MAX)
                                        : std::optional<std::int64_t>(v.get<std::int64_t>());
  if (!v.is_number_float()) return std::nullopt;
  const double d = v.get<double>();
  if (!(d > -9.2e18 && d < 9.2e18)) return std::nullopt;
  return static_cast<std::int64_t>(d);
}

bool audience_matches(const nlohmann::json& aud, std::string_view wanted) {
  if (aud.is_string()) return aud.get_ref<const std::string&>() == wanted;
  if (!aud.is_array()) return false;
  for (const auto& a : aud)
    if (a.is_string() && a.get_ref<const std::string&>() == wanted) return true;
  return false;
}

}  // namespace

std::string sign_jwt(std::string_view payload_json, std::string_view secret) {
  std::string input = core::base64_encode(R"({"alg":"HS256","typ":"JWT"})", true) + "." +
                      core::base64_encode(payload_json, true);
  return input + "." + core::base64_encode(hmac_sha256(secret, input), true);
}

core::result<jwt_claims> verify_jwt(std::string_view token, const jwt_policy& policy, std::int64_t now_seconds) {
  const auto secret = policy.secret;
  const auto leeway_seconds = policy.leeway_seconds;
  if (token.empty()) return unauthorized("missing token");
  if (token.size() > 8192) return unauthorized("token too long");
  const auto dot1 = token.find('.');
  const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return unauthorized("malformed token");
  std::string header_raw, payload_raw, signature;
  if (!core::base64_decode(token.substr(0, dot1), header_raw) ||
      !core::base64_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), payload_raw) ||
      !core::base64_decode(token.substr(dot2 + 1), signature))
    return unauthorized("malformed token");
  auto header = core::parse_json(header_raw);
  if (!header.is_object() || core::json_string(header, "alg") != "HS256") return unauthorized("unsupported token algorithm");
  const auto expected = hmac_sha256(secret, token.substr(0, dot2));
  if (signature.size() != expected.size() || CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0)
    return unauthorized("invalid token signature");
  auto payload = core::parse_json(payload_raw);
  if (!payload.is_object()) return unauthorized("malformed token payload");
  jwt_claims claims;
  auto sub = payload.find("sub");
  if (sub == payload.end() || !sub->is_string() || sub->get_ref<const std::string&>().empty() ||
      sub->get_ref<const std::string&>().size() > 256)
    return unauthorized("token has no subject");
  claims.subject = sub->get<std::string>();
  auto exp_field = payload.find("exp");
  if (exp_field == payload.end()) return unauthorized("token has no expiry");
  auto exp = numeric_date(*exp_field);
  if (!exp) return unauthorized("malformed token expiry");
  claims.expires_at = *exp;
  if (now_seconds - leeway_seconds > claims.expires_at) return unauthorized("token expired");
  if (auto nbf_field = payload.find("nbf"); nbf_field != payload.end()) {
    auto nbf = numeric_date(*nbf_field);
    if (!nbf) return unauthorized("malformed token");
    if (now_seconds + leeway_seconds < *nbf) return unauthorized("token not yet valid");
  }
  if (!policy.issuer.empty()) {
    auto iss = payload.find("iss");
    if (iss == payload.end() || !iss->is_string() || iss->get_ref<const std::string&>() != policy.issuer)
      return unauthorized("token issuer not accepted");
  }
  if (!policy.audience.empty()) {
    auto aud = payload.find("aud");
    if (aud == payload.end() || !audience_matches(*aud, policy.audience))
      return unauthorized("token audience not accepted");
  }
  return claims;
}

}  // namespace berth::gateway
