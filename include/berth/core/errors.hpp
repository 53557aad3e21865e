#pragma once
// The client-visible error codes of PROTOCOL.md and the one table that maps them to HTTP status.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>
#include <nlohmann/json_fwd.hpp>

namespace berth::core {

enum class errc {
  too_many_requests,
  invalid_payload,
  no_pending_call,
  no_active_turn,   // agent:cancel with nothing running (or a turn of this session that ended)
  turn_not_found,   // agent:cancel naming a turn id this session never issued
  tool_failed,
  tool_timeout,
  turn_timeout,     // the turn worked longer than TURN_DEADLINE_MS and was stopped
  llm_error,
  llm_unavailable,
  pool_exhausted,
  sandbox_unavailable,
  session_forbidden,
  session_limit,
  unauthorized,
  rate_limited,       // an abuse limit (events per user, LLM tokens per user and minute); retry_after set
  history_not_saved,  // Redis did not take a history entry (agent:error only, the turn goes on)
  too_many_sessions,  // handshake: the address holds MAX_ENGINEIO_SESSIONS_PER_ADDRESS sessions
  server_overloaded,  // handshake: the process buffers more than MAX_PROCESS_BUFFER_BYTES
  internal,
};

// "TOO_MANY_REQUESTS", ... as on the wire.
std::string_view to_string(errc e) noexcept;
// HTTP status for the same condition (429, 400, 409, ..., 503).
unsigned http_status(errc e) noexcept;

// A failure to report to a client: code + human text (never secrets, never whole payloads), and
// when to try again where that is known (sent as retryAfterMs).
struct error {
  errc code = errc::internal;
  std::string message;
  std::optional<std::chrono::milliseconds> retry_after = std::nullopt;
};

// The error as every client-facing answer carries it (acks, agent:error, refused handshakes,
// CONNECT_ERROR's data): {code, message, retryAfterMs?}.
nlohmann::json error_body(const error& e);
// The ack of a refused client event (Socket.IO ack arguments): [{ok:false, code, message, retryAfterMs?}].
nlohmann::json ack_error(const error& e);

// Found by ADL when result<T>::value() is called on an error: a bug, so it throws.
[[noreturn]] void throw_exception_from_error(const error& e, const boost::source_location& loc);

// What fallible peer/environment operations return (STYLE: no exceptions across sessions).
template <class T>
using result = boost::system::result<T, error>;

inline error make_error(errc code, std::string message) { return error{code, std::move(message), std::nullopt}; }

}  // namespace berth::core
