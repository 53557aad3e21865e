#pragma once
// Parsing JSON that comes from outside the process (clients, containers, LLM providers, Redis).
// nlohmann's parser is iterative, but copying, comparing and dumping a value recurse once per
// nesting level: a 600 KB array nested 100,000 deep parses fine and then overflows the stack the
// first time it is copied. So untrusted text is measured before it is parsed, and anything nested
// deeper than the limit is refused as a whole. Header-only: the sandbox binary uses it too.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

namespace berth::core {

// Deep enough for every protocol Berth speaks (Socket.IO arguments, JSON-RPC, provider replies
// carry tool arguments a few levels down), shallow enough that recursion over it is harmless.
inline constexpr std::size_t max_json_depth = 64;

enum class json_error { none, invalid, too_deep };

struct parsed_json {
  nlohmann::json value;  // discarded unless error == none
  json_error error = json_error::none;
  explicit operator bool() const noexcept { return error == json_error::none; }
};

// Deepest nesting of arrays and objects in `text` (brackets inside strings do not count); stops
// counting once it passes `stop_above`. Linear, no allocation, no recursion; for invalid JSON the
// figure is only an upper bound on what a parser would build (the parser rejects such text anyway).
inline std::size_t json_nesting_depth(std::string_view text, std::size_t stop_above) noexcept {
  std::size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    switch (c) {
      case '"': in_string = true; break;
      case '[':
      case '{':
        if (++depth > deepest && (deepest = depth) > stop_above) return deepest;
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default: break;
    }
  }
  return deepest;
}

// Parses without exceptions; refuses text nested deeper than `max_depth` before building anything.
inline parsed_json parse_json_checked(std::string_view text, std::size_t max_depth = max_json_depth) {
  parsed_json out;
  if (json_nesting_depth(text, max_depth) > max_depth) {
    out.value = nlohmann::json(nlohmann::json::value_t::discarded);
    out.error = json_error::too_deep;
    return out;
  }
  out.value = nlohmann::json::parse(text, nullptr, false);
  if (out.value.is_discarded()) out.error = json_error::invalid;
  return out;
}

// The same, for callers that only need "usable or not": a discarded value on any error.
inline nlohmann::json parse_json(std::string_view text, std::size_t max_depth = max_json_depth) {
  return parse_json_checked(text, max_depth).value;
}

// A member of untrusted JSON read without exceptions: nlohmann's value(key, default) throws
// type_error when the member exists with another type, which a peer can arrange at will.
// `obj` may be anything; the fallback is returned unless it is an object with `key` of that type.
inline std::string_view json_string(const nlohmann::json& obj, std::string_view key, std::string_view fallback = {}) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? std::string_view(it->get_ref<const std::string&>()) : fallback;
}
inline bool json_bool(const nlohmann::json& obj, std::string_view key, bool fallback = false) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_boolean() ? it->get<bool>() : fallback;
}
inline std::uint64_t json_uint(const nlohmann::json& obj, std::string_view key, std::uint64_t fallback = 0) {
  if (!obj.is_object()) return fallback;
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : fallback;
}

inline const char* to_string(json_error e) noexcept {
  switch (e) {
    case json_error::none: return "none";
    case json_error::invalid: return "invalid JSON";
    case json_error::too_deep: return "JSON nested too deeply";
  }
  return "unknown";
}

}  // namespace berth::core
