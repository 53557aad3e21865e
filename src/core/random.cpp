#include "berth/core/random.hpp"

#include <sys/random.h>

#include <array>
#include <stdexcept>
#include <string_view>

namespace berth::core {

std::string random_token(std::size_t bytes) {
  std::string raw(bytes, '\0');
  std::size_t got = 0;
  while (got < bytes) {
    auto n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) throw std::runtime_error("getrandom failed");  // a broken kernel: a bug, not a peer error
    got += static_cast<std::size_t>(n);
  }
  return base64_encode(raw, true);
}

}  // namespace berth::core
