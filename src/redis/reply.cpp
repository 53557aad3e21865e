#include "berth/redis/reply.hpp"

#include <utility>

namespace berth::redis {

std::string_view to_string(reply_type t) noexcept {
  switch (t) {
    case reply_type::nil: return "nil";
    case reply_type::integer: return "integer";
    case reply_type::string: return "string";
    case reply_type::status: return "status";
    case reply_type::error: return "error";
    case reply_type::array: return "array";
  }
  return "unknown";
}

reply reply::make_integer(std::int64_t v) {
  reply r;
  r.type = reply_type::integer;
  r.integer = v;
  return r;
}
reply reply::make_string(std::string s) {
  reply r;
  r.type = reply_type::string;
  r.str = std::move(s);
  return r;
}
reply reply::make_status(std::string s) {
  reply r;
  r.type = reply_type::status;
  r.str = std::move(s);
  return r;
}
reply reply::make_error(std::string s) {
  reply r;
  r.type = reply_type::error;
  r.str = std::move(s);
  return r;
}
reply reply::make_array(std::vector<reply> v) {
  reply r;
  r.type = reply_type::array;
  r.elements = std::move(v);
  return r;
}

std::string_view reply::error_prefix() const noexcept {
  if (type != reply_type::error) return {};
  std::string_view s = str;
  return s.substr(0, s.find(' '));
}

bool operator==(const reply& a, const reply& b) noexcept {
  return a.type == b.type && a.integer == b.integer && a.str == b.str && a.elements == b.elements;
}

namespace {

core::error unexpected(const reply& r, std::string_view expected, std::string_view what) {
  std::string m = "redis";
  if (!what.empty()) {
    m += ' ';
    m += what;
  }
  if (r.is_error()) {
    // Redis's own error text (bounded): it names the problem (WRONGTYPE, NOSCRIPT, OOM, ...).
    m += ": error reply: ";
    m += r.str.substr(0, 200);
  } else {
    m += ": expected ";
    m += expected;
    m += ", got ";
    m += to_string(r.type);
  }
  return core::make_error(core::errc::internal, std::move(m));
}

}  // namespace

core::result<std::int64_t> as_integer(const reply& r, std::string_view what) {
  if (r.type == reply_type::integer) return r.integer;
  return unexpected(r, "integer", what);
}

core::result<std::string> as_string(const reply& r, std::string_view what) {
  if (r.type == reply_type::string || r.type == reply_type::status) return r.str;
  return unexpected(r, "string", what);
}

core::result<std::optional<std::string>> as_optional_string(const reply& r, std::string_view what) {
  if (r.type == reply_type::nil) return std::optional<std::string>{};
  if (r.type == reply_type::string) return std::optional<std::string>{r.str};
  return unexpected(r, "string or nil", what);
}

core::result<const std::vector<reply>*> as_array(const reply& r, std::string_view what) {
  if (r.type == reply_type::array) return &r.elements;
  return unexpected(r, "array", what);
}

core::result<std::vector<std::string>> as_string_array(const reply& r, std::string_view what) {
  if (r.type != reply_type::array) return unexpected(r, "array", what);
  std::vector<std::string> out;
  out.reserve(r.elements.size());
  for (const auto& e : r.elements) {
    if (e.type != reply_type::string && e.type != reply_type::status) return unexpected(e, "array of strings", what);
    out.push_back(e.str);
  }
  return out;
}

core::result<void> expect_ok(const reply& r, std::string_view what) {
  if (r.type == reply_type::status && r.str == "OK") return {};
  return unexpected(r, "status OK", what);
}

core::result<void> expect_not_error(const reply& r, std::string_view what) {
  if (!r.is_error()) return {};
  return unexpected(r, "no error", what);
}

std::string describe(const reply& r, std::size_t max_len) {
  std::string out;
  switch (r.type) {
    case reply_type::nil: out = "(nil)"; break;
    // append() rather than "lit" + str: GCC 12 -O3 reports a bogus -Wrestrict on the latter.
    case reply_type::integer:
      out.append("(integer) ").append(std::to_string(r.integer));
      break;
    case reply_type::string:
      out.append("\"").append(r.str).append("\"");
      break;
    case reply_type::status: out = r.str; break;
    case reply_type::error:
      out.append("(error) ").append(r.str);
      break;
    case reply_type::array:
      out.push_back('[');
      for (std::size_t i = 0; i < r.elements.size() && out.size() < max_len; ++i) {
        if (i) out += ", ";
        out += describe(r.elements[i], max_len);
      }
      out += "]";
      break;
  }
  if (out.size() > max_len) {
    out.resize(max_len);
    out += "...";
  }
  return out;
}

}  // namespace berth::redis
