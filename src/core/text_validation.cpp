#include "berth/core/text_validation.hpp"

#include <algorithm>
#include <bit>
#include <bitset>
#include <cstdint>
#include <cstring>

namespace berth::core {
namespace {

using word = std::uint64_t;
constexpr word ones = 0x0101010101010101ULL;
constexpr word highs = 0x8080808080808080ULL;

word load(const char* p) noexcept {
  word w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// Bytes of `w` equal to zero get their high bit set. A borrow can also mark bytes above a true
// zero, never below one, so the lowest marked byte is always a real match.
constexpr word zero_bytes(word w) noexcept { return (w - ones) & ~w & highs; }

// The index of the lowest marked byte of a mask from zero_bytes (little-endian load).
std::size_t first_marked(word mask) noexcept {
  if constexpr (std::endian::native == std::endian::little) return static_cast<std::size_t>(__builtin_ctzll(mask)) / 8;
  else return static_cast<std::size_t>(__builtin_clzll(mask)) / 8;
}

// Length of the UTF-8 sequence starting at s[i] (whose first byte is >= 0x80), 0 if malformed.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len;
  std::uint32_t cp;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
      (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

// A recursive-descent grammar would recurse once per level; this one keeps the open containers
// in a bitset (1 = object) so a hostile nesting costs a bit, not a stack frame.
class json_validator {
 public:
  json_validator(std::string_view text, std::size_t max_depth) noexcept
      : s_(text), max_depth_(std::min(max_depth, max_validated_json_depth)) {}

  json_error run() noexcept {
    skip_ws();
    for (;;) {
      // Expecting a value.
      if (i_ >= s_.size()) return json_error::invalid;
      const char c = s_[i_];
      if (c == '[' || c == '{') {
        if (depth_ == max_depth_) return json_error::too_deep;
        open_[depth_++] = c == '{';
        ++i_;
        skip_ws();
        if (i_ < s_.size() && s_[i_] == (c == '{' ? '}' : ']')) {
          --depth_;
          ++i_;
        } else {
          if (c == '{' && !member_key()) return json_error::invalid;
          continue;
        }
      } else if (!scalar()) {
        return json_error::invalid;
      }
      // After a value: the next element or member, closing brackets, or the end.
      for (;;) {
        skip_ws();
        if (depth_ == 0) return i_ == s_.size() ? json_error::none : json_error::invalid;
        if (i_ >= s_.size()) return json_error::invalid;
        const char d = s_[i_++];
        const bool in_object = open_[depth_ - 1];
        if (d == ',') {
          skip_ws();
          if (in_object && !member_key()) return json_error::invalid;
          break;
        }
        if (d != (in_object ? '}' : ']')) return json_error::invalid;
        --depth_;
      }
    }
  }

 private:
  void skip_ws() noexcept {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }

  // `"key"` then `:`, leaving i_ at the member's value.
  bool member_key() noexcept {
    if (i_ >= s_.size() || s_[i_] != '"' || !string()) return false;
    skip_ws();
    if (i_ >= s_.size() || s_[i_] != ':') return false;
    ++i_;
    skip_ws();
    return true;
  }

  bool scalar() noexcept {
    switch (s_[i_]) {
      case '"': return string();
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: return number();
    }
  }

  bool literal(std::string_view expected) noexcept {
    if (s_.substr(i_, expected.size()) != expected) return false;
    i_ += expected.size();
    return true;
  }

  std::size_t digits() noexcept {
    const auto start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ - start;
  }

  bool number() noexcept {
    if (s_[i_] == '-') ++i_;
    if (i_ < s_.size() && s_[i_] == '0') {
      ++i_;
    } else if (digits() == 0) {
      return false;
    }
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (digits() == 0) return false;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (digits() == 0) return false;
    }
    return true;
  }

  // Four hex digits after "\u"; the code unit, or -1.
  long hex4() noexcept {
    if (s_.size() - i_ < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else return -1;
    }
    return v;
  }

  bool escape() noexcept {  // i_ just past the backslash
    if (i_ >= s_.size()) return false;
    switch (s_[i_++]) {
      case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't': return true;
      case 'u': break;
      default: return false;
    }
    const long unit = hex4();
    if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF)) return false;  // a lone low surrogate
    if (unit < 0xD800 || unit > 0xDBFF) return true;
    // A high surrogate must be followed by an escaped low one.
    if (s_.substr(i_, 2) != "\\u") return false;
    i_ += 2;
    const long low = hex4();
    return low >= 0xDC00 && low <= 0xDFFF;
  }

  bool string() noexcept {  // i_ at the opening quote
    ++i_;
    for (;;) {
      // Eight plain bytes (not '"', '\\', a control or non-ASCII) per step.
      while (s_.size() - i_ >= 8) {
        const word w = load(s_.data() + i_);
        const word special = zero_bytes(w ^ (ones * '"')) | zero_bytes(w ^ (ones * '\\')) |
                             ((w - ones * 0x20) & ~w & highs) | (w & highs);
        if (special != 0) {
          i_ += first_marked(special);
          break;
        }
        i_ += 8;
      }
      if (i_ >= s_.size()) return false;
      const auto c = static_cast<unsigned char>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c == '\\') {
        ++i_;
        if (!escape()) return false;
      } else if (c < 0x20) {
        return false;
      } else if (c >= 0x80) {
        const auto len = utf8_sequence(s_, i_);
        if (len == 0) return false;
        i_ += len;
      } else {
        ++i_;
      }
    }
  }

  std::string_view s_;
  std::size_t max_depth_;
  std::size_t i_ = 0;
  std::size_t depth_ = 0;
  std::bitset<max_validated_json_depth> open_;
};

}  // namespace

bool is_valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    if (s.size() - i >= 8 && (load(s.data() + i) & highs) == 0) {
      i += 8;
      continue;
    }
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const auto len = utf8_sequence(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

json_error validate_json(std::string_view text, std::size_t max_depth) noexcept {
  return json_validator(text, max_depth).run();
}

}  // namespace berth::core
