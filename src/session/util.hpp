#pragma once
// Private helpers for the session module's coroutines.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "berth/core/logging.hpp"

namespace berth::session::detail {

// Builds an argument vector without a braced list: GCC 12 miscompiles std::initializer_list
// temporaries inside coroutine bodies ("array used as initializer").
template <class... A>
std::vector<std::string> argv(A&&... a) {
  std::vector<std::string> v;
  v.reserve(sizeof...(a));
  (v.emplace_back(std::forward<A>(a)), ...);
  return v;
}

// The module's logger, looked up once.
inline std::shared_ptr<spdlog::logger> log() {
  static auto l = core::logger("session");
  return l;
}

}  // namespace berth::session::detail
