#include "berth/core/errors.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

namespace berth::core {
namespace {
struct row {
  errc code;
  std::string_view name;
  unsigned status;
};
constexpr row table[] = {
    {errc::too_many_requests, "TOO_MANY_REQUESTS", 429}, {errc::invalid_payload, "INVALID_PAYLOAD", 400},
    {errc::no_pending_call, "NO_PENDING_CALL", 409},     {errc::tool_failed, "TOOL_FAILED", 502},
    {errc::tool_timeout, "TOOL_TIMEOUT", 504},           {errc::llm_error, "LLM_ERROR", 502},
    {errc::llm_unavailable, "LLM_UNAVAILABLE", 503},     {errc::pool_exhausted, "POOL_EXHAUSTED", 503},
    {errc::sandbox_unavailable, "SANDBOX_UNAVAILABLE", 503}, {errc::session_forbidden, "SESSION_FORBIDDEN", 403},
    {errc::session_limit, "SESSION_LIMIT", 429},          {errc::unauthorized, "UNAUTHORIZED", 401},
    {errc::no_active_turn, "NO_ACTIVE_TURN", 409},        {errc::turn_not_found, "TURN_NOT_FOUND", 404},
    {errc::turn_timeout, "TURN_TIMEOUT", 504},           {errc::rate_limited, "RATE_LIMITED", 429},
    {errc::history_not_saved, "HISTORY_NOT_SAVED", 503},  {errc::too_many_sessions, "TOO_MANY_SESSIONS", 429},
    {errc::server_overloaded, "SERVER_OVERLOADED", 503},  {errc::internal, "INTERNAL", 500},
};
}  // namespace

std::string_view to_string(errc e) noexcept {
  for (const auto& r : table)
    if (r.code == e) return r.name;
  return "INTERNAL";
}

unsigned http_status(errc e) noexcept {
  for (const auto& r : table)
    if (r.code == e) return r.status;
  return 500;
}

nlohmann::json error_body(const error& e) {
  nlohmann::json j{{"code", to_string(e.code)}, {"message", e.message}};
  if (e.retry_after) j["retryAfterMs"] = e.retry_after->count();
  return j;
}

nlohmann::json ack_error(const error& e) {
  auto body = error_body(e);
  body["ok"] = false;
  return nlohmann::json::array({std::move(body)});
}

void throw_exception_from_error(const error& e, const boost::source_location&) {
  throw std::runtime_error(std::string(to_string(e.code)) + ": " + e.message);
}

}  // namespace berth::core
