#include "berth/http/message.hpp"

namespace berth::http {

std::string_view reply::header(std::string_view lower_name) const noexcept {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

}  // namespace berth::http
