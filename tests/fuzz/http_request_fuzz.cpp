// libFuzzer target: what Berth parses itself out of an HTTP request (Beast parses the message):
// the query string (sessionId, EIO, transport, sid ...), the request target, the Origin check, and
// the client address from X-Forwarded-For behind a trusted proxy. Also TRUSTED_PROXIES parsing.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "berth/core/client_address.hpp"
#include "berth/http/request_info.hpp"
#include "fuzz_input.hpp"

using namespace berth;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto trusted = *core::trusted_proxies::parse("10.0.0.0/8, 127.0.0.1, fd00::/8");
  static const auto peer = *core::parse_ip("10.1.2.3");
  fuzz::input in(data, size);
  const auto target = in.until('\n');
  auto [path, query] = http::split_target(target);
  auto q = http::parse_query(query);
  for (const auto& [k, v] : q)
    if (k.size() > target.size() || v.size() > target.size()) __builtin_trap();  // decoding never grows
  (void)http::percent_decode(path, false);
  const auto origin = in.until('\n');
  http::cors_policy cors{{"https://chat.example", "http://localhost:3000"}};
  (void)cors.allows(origin, "chat.example");
  (void)cors.allow_origin_header(origin);
  std::vector<std::string_view> forwarded;
  for (int i = 0; i < 4 && !in.empty(); ++i) forwarded.push_back(in.until('\n'));
  const auto client = core::resolve_client_address(peer, forwarded, trusted);
  if (core::parse_ip(client.to_string()) != client) __builtin_trap();  // an address round-trips
  (void)client.limit_key();
  for (const auto hop : forwarded) {
    std::string bad;
    (void)core::trusted_proxies::parse(hop, &bad);
  }
  return 0;
}
