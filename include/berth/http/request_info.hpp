#pragma once
// Pure helpers for requests: query-string parsing, percent-decoding, path split, origin checks.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::http {

// A query's parameters in one vector, sorted by key: a request has a handful, so a search
// beats a tree, and a websocket session keeps its handshake's for its whole life (~130 bytes
// less than a std::map of two).
class query_map {
 public:
  using value_type = std::pair<std::string, std::string>;
  using const_iterator = std::vector<value_type>::const_iterator;
  query_map() = default;
  // From the parameters in the order they came: the last of equal keys wins. O(n log n), so a
  // query of thousands of parameters (up to the header limit) costs no quadratic work.
  explicit query_map(std::vector<value_type> params);
  const_iterator find(std::string_view key) const noexcept;
  const_iterator begin() const noexcept { return entries_.begin(); }
  const_iterator end() const noexcept { return entries_.end(); }
  std::size_t size() const noexcept { return entries_.size(); }
  bool empty() const noexcept { return entries_.empty(); }
  // The value of `key`, added empty if missing.
  std::string& operator[](std::string_view key);

 private:
  std::vector<value_type> entries_;
};

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
