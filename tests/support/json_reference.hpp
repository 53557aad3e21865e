#pragma once
// The reference for core::validate_json: nlohmann's own parser, run as SAX so that it builds
// nothing and tells why it refused (a unit test and a fuzz target compare the two).
#include <algorithm>
#include <string>
#include <string_view>

#include "berth/core/text_validation.hpp"

namespace berth::test {

// What nlohmann's parser makes of a text: accepted or not, why not, and how deep it got first.
struct reference_verdict {
  bool ok = true;
  bool number_overflow = false;  // nlohmann's 406: a number past a double's range
  bool has_nul = false;          // the text holds a NUL byte (see validator_agrees)
  std::size_t deepest = 0;
};

class verdict_sax : public nlohmann::json_sax<nlohmann::json> {
 public:
  reference_verdict v;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& ex) override {
    v.ok = false;
    v.number_overflow = ex.id == 406;
    return false;
  }

 private:
  bool open() {
    v.deepest = std::max(v.deepest, ++depth_);
    return true;
  }
  bool close() {
    --depth_;
    return true;
  }
  std::size_t depth_ = 0;
};

inline reference_verdict nlohmann_verdict(std::string_view text) {
  verdict_sax sax;
  nlohmann::json::sax_parse(text, &sax);
  sax.v.has_nul = text.find('\0') != std::string_view::npos;
  return sax.v;
}

// validate_json's contract against the reference: too deep exactly when nlohmann went past the
// limit, otherwise the same verdict, except for numbers out of a double's range (nlohmann only).
// nlohmann's lexer takes a NUL byte for the end of input ("0\0junk" parses as 0); JSON has no
// place for a raw NUL, so the validator refuses any text that holds one.
inline bool validator_agrees(core::json_error mine, const reference_verdict& ref, std::size_t depth) {
  if (ref.has_nul) return mine != core::json_error::none;
  if (ref.deepest > depth) return mine == core::json_error::too_deep;
  if (ref.ok) return mine == core::json_error::none;
  // nlohmann stopped at a number out of a double's range, which the grammar allows: the validator
  // read on, and whatever it found after that point cannot be compared.
  if (ref.number_overflow) return true;
  return mine == core::json_error::invalid;
}

}  // namespace berth::test
