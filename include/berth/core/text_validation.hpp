#pragma once
// Checking untrusted text without building anything: UTF-8 (websocket text frames) and JSON
// (Socket.IO event arguments that a handler may pass on as they came). Both take eight ASCII
// bytes per step, since almost everything a client sends is ASCII.
#include <cstddef>
#include <string_view>

#include "berth/core/json.hpp"

namespace berth::core {

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s) noexcept;

// Upper bound accepted for validate_json's max_depth (it keeps its stack on the C++ stack).
inline constexpr std::size_t max_validated_json_depth = 1024;

// True when `text` is exactly one JSON value (RFC 8259, whitespace around it allowed) whose
// strings are valid UTF-8 with paired \u surrogates, nested at most `max_depth` deep (capped at
// max_validated_json_depth): the text nlohmann::json::parse accepts, except that numbers too
// large for a double pass here and fail there. Stops at the first error; `too_deep` as soon as
// the nesting passes the limit, before anything after it is looked at.
json_error validate_json(std::string_view text, std::size_t max_depth = max_json_depth) noexcept;

}  // namespace berth::core
