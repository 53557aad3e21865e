#include "berth/http/request_info.hpp"

#include <algorithm>

namespace berth::http {

std::string percent_decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_as_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

query_map parse_query(std::string_view query) {
  query_map out;
  std::size_t start = 0;
  while (start < query.size()) {
    auto end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    auto part = query.substr(start, end - start);
    if (!part.empty()) {
      auto eq = part.find('=');
      if (eq == std::string_view::npos)
        out[percent_decode(part)] = "";
      else
        out[percent_decode(part.substr(0, eq))] = percent_decode(part.substr(eq + 1));
    }
    start = end + 1;
  }
  out.shrink_to_fit();
  return out;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

bool cors_policy::allows(std::string_view origin, std::string_view host) const {
  if (origin.empty()) return true;
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return true;
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) return true;
  // Same origin: "scheme://host[:port]" whose authority equals the Host header.
  auto sep = origin.find("://");
  return sep != std::string_view::npos && !host.empty() && origin.substr(sep + 3) == host;
}

std::optional<std::string> cors_policy::allow_origin_header(std::string_view origin) const {
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) return std::string("*");
  if (!origin.empty() && std::find(allowed.begin(), allowed.end(), origin) != allowed.end())
    return std::string(origin);
  return std::nullopt;
}

}  // namespace berth::http
