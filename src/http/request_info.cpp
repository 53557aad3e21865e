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

namespace {
// Where `key` is, or would go, in entries sorted by key.
std::size_t position_of(const std::vector<query_map::value_type>& entries, std::string_view key) {
  auto it = std::lower_bound(entries.begin(), entries.end(), key,
                             [](const query_map::value_type& e, std::string_view k) { return e.first < k; });
  return static_cast<std::size_t>(it - entries.begin());
}
}  // namespace

query_map::query_map(std::vector<value_type> params) : entries_(std::move(params)) {
  std::stable_sort(entries_.begin(), entries_.end(), [](const value_type& a, const value_type& b) { return a.first < b.first; });
  // Keep the last of each run of equal keys.
  auto out = entries_.begin();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (std::next(it) != entries_.end() && std::next(it)->first == it->first) continue;
    if (out != it) *out = std::move(*it);
    ++out;
  }
  entries_.erase(out, entries_.end());
  entries_.shrink_to_fit();
}

query_map::const_iterator query_map::find(std::string_view key) const noexcept {
  auto it = entries_.begin() + static_cast<std::ptrdiff_t>(position_of(entries_, key));
  return it != entries_.end() && it->first == key ? it : entries_.end();
}

std::string& query_map::operator[](std::string_view key) {
  auto it = entries_.begin() + static_cast<std::ptrdiff_t>(position_of(entries_, key));
  if (it == entries_.end() || it->first != key) it = entries_.emplace(it, std::string(key), std::string());
  return it->second;
}

query_map parse_query(std::string_view query) {
  std::vector<query_map::value_type> params;
  std::size_t start = 0;
  while (start < query.size()) {
    auto end = query.find('&', start);
    if (end == std::string_view::npos) end = query.size();
    auto part = query.substr(start, end - start);
    if (!part.empty()) {
      auto eq = part.find('=');
      if (eq == std::string_view::npos)
        params.emplace_back(percent_decode(part), "");
      else
        params.emplace_back(percent_decode(part.substr(0, eq)), percent_decode(part.substr(eq + 1)));
    }
    start = end + 1;
  }
  return query_map(std::move(params));
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
