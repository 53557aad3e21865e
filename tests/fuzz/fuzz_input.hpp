#pragma once
// Small helpers shared by the libFuzzer targets: take bytes from the front of the input as
// choices (a split point, a status code) and the rest as the data under test.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace berth::fuzz {

class input {
 public:
  input(const std::uint8_t* data, std::size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  // One byte as a choice (0 when the input is used up).
  std::uint8_t byte() {
    if (rest_.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(rest_.front());
    rest_.remove_prefix(1);
    return b;
  }
  // The next `n` bytes (fewer at the end).
  std::string_view take(std::size_t n) {
    const auto part = rest_.substr(0, n);
    rest_.remove_prefix(part.size());
    return part;
  }
  // Up to the next `sep` (not included; the separator is consumed), or the rest.
  std::string_view until(char sep) {
    const auto at = rest_.find(sep);
    const auto part = rest_.substr(0, at);
    rest_.remove_prefix(at == std::string_view::npos ? rest_.size() : at + 1);
    return part;
  }
  std::string_view rest() const { return rest_; }
  bool empty() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace berth::fuzz
