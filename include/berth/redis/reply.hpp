#pragma once
// RESP2 replies as plain values, and typed accessors that turn "wrong type" into an error.
// Pure: no sockets, no Asio. A Redis error reply is a value (type error), not a failure of the
// call: accessors map it to an error so callers that expect data never read an error as data.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"

namespace berth::redis {

enum class reply_type { nil, integer, string, status, error, array };

std::string_view to_string(reply_type t) noexcept;

// One reply; arrays own their elements. Copyable value type.
struct reply {
  reply_type type = reply_type::nil;
  std::int64_t integer = 0;
  std::string str;              // string, status and error payloads
  std::vector<reply> elements;  // array elements

  static reply make_nil() { return reply{}; }
  static reply make_integer(std::int64_t v);
  static reply make_string(std::string s);
  static reply make_status(std::string s);
  static reply make_error(std::string s);
  static reply make_array(std::vector<reply> v);

  bool is_nil() const noexcept { return type == reply_type::nil; }
  bool is_error() const noexcept { return type == reply_type::error; }
  // "NOSCRIPT", "ERR", "WRONGTYPE", ...: the first word of an error reply (empty otherwise).
  std::string_view error_prefix() const noexcept;
};

bool operator==(const reply& a, const reply& b) noexcept;

// Typed accessors. Each fails with errc::internal and a message naming what was expected and what
// came (an error reply's text is included: it is Redis's, not the user's). `what` names the
// command for the message ("GET session").
core::result<std::int64_t> as_integer(const reply& r, std::string_view what = {});
// Bulk string or status; nil is an error.
core::result<std::string> as_string(const reply& r, std::string_view what = {});
// Bulk string or nil.
core::result<std::optional<std::string>> as_optional_string(const reply& r, std::string_view what = {});
// Array (an empty array is fine); nil is an error.
core::result<const std::vector<reply>*> as_array(const reply& r, std::string_view what = {});
// Array of bulk strings (e.g. LRANGE, ZRANGE, SCAN keys).
core::result<std::vector<std::string>> as_string_array(const reply& r, std::string_view what = {});
// Status "OK" (SET, SELECT, AUTH, ...).
core::result<void> expect_ok(const reply& r, std::string_view what = {});
// Anything but an error reply.
core::result<void> expect_not_error(const reply& r, std::string_view what = {});

// Human-readable one-liner for logs/tests: `(integer) 3`, `"abc"`, `(nil)`, `(error) ERR x`, `[..]`.
std::string describe(const reply& r, std::size_t max_len = 80);

}  // namespace berth::redis
