#pragma once
// Pure helpers for requests: query-string parsing, percent-decoding, path split, origin checks.
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::http {

using query_map = std::map<std::string, std::string>;

// "a=1&b=x%20y" -> {a:1, b:"x y"}; later duplicates win; bad escapes are kept verbatim.
query_map parse_query(std::string_view query);
std::string percent_decode(std::string_view s, bool plus_as_space = true);

// Splits a request target into path and query ("/a?b=c" -> "/a", "b=c").
std::pair<std::string_view, std::string_view> split_target(std::string_view target);

// CORS decision for one request Origin (empty: no Origin header).
struct cors_policy {
  std::vector<std::string> allowed;  // "*" allows any
  // Allowed when there is no Origin, it is listed (or "*"), or it is the request's own host.
  bool allows(std::string_view origin, std::string_view host) const;
  // Value for Access-Control-Allow-Origin, or nullopt for none.
  std::optional<std::string> allow_origin_header(std::string_view origin) const;
};

}  // namespace berth::http
