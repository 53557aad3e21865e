// libFuzzer target: core::validate_json against nlohmann's parser (the reference), differentially.
// Input: one byte for the depth limit (0-15, so nesting refusals are reached), then the text.
// Traps when the two disagree beyond validate_json's documented difference (numbers out of a
// double's range), or when is_valid_utf8 disagrees with what the validator accepts in a string.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_input.hpp"
#include "tests/support/json_reference.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  berth::fuzz::input in(data, size);
  const std::size_t depth = in.byte() % 16;
  const auto text = in.rest();
  const auto mine = berth::core::validate_json(text, depth);
  if (!berth::test::validator_agrees(mine, berth::test::nlohmann_verdict(text), depth)) __builtin_trap();
  // A string is accepted only if its bytes are UTF-8 (escapes aside, which are ASCII).
  const bool plain_string = text.find_first_of("\\\"") == std::string_view::npos;
  if (plain_string && berth::core::validate_json("\"" + std::string(text) + "\"") == berth::core::json_error::none &&
      !berth::core::is_valid_utf8(text))
    __builtin_trap();
  return 0;
}
