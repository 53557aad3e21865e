#pragma once
// Absolute http(s) URL split for the outgoing HTTP client. Pure.
#include <cstdint>
#include <string>
#include <string_view>

#include "berth/core/errors.hpp"

namespace berth::http {

struct url {
  bool tls = false;        // https
  std::string host;        // without brackets for IPv6 literals
  std::uint16_t port = 0;  // defaulted from the scheme
  std::string target;      // path + query, at least "/"
};

// Accepts http://host[:port][/path][?query] and https://...; no userinfo, no fragment.
core::result<url> parse_url(std::string_view text);

}  // namespace berth::http
