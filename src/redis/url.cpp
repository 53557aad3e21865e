#include "berth/redis/url.hpp"

#include <algorithm>
#include <charconv>

namespace berth::redis {

namespace {

core::error bad(std::string why) {
  return core::make_error(core::errc::invalid_payload, "REDIS_URL: " + std::move(why));
}

bool parse_uint(std::string_view s, unsigned long max, unsigned long& out) {
  if (s.empty() || s.size() > 10) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size() && out <= max;
}

// %XX decoding for userinfo and paths (passwords may contain '@' or ':' as %40 / %3A).
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    auto hexval = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
    if (h < 0 || l < 0) return false;
    out += static_cast<char>(h * 16 + l);
    i += 2;
  }
  return true;
}

core::result<void> parse_userinfo(std::string_view ui, redis_endpoint& ep) {
  auto colon = ui.find(':');
  std::string_view user = colon == std::string_view::npos ? std::string_view{} : ui.substr(0, colon);
  // "redis://secret@host" (no colon) is the password alone, as redis-cli and most clients read it.
  std::string_view pass = colon == std::string_view::npos ? ui : ui.substr(colon + 1);
  if (!percent_decode(user, ep.username)) return bad("bad %-escape in user name");
  if (!percent_decode(pass, ep.password)) return bad("bad %-escape in password");
  return {};
}

core::result<void> parse_query(std::string_view q, redis_endpoint& ep) {
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    auto eq = kv.find('=');
    std::string_view k = kv.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : kv.substr(eq + 1);
    if (k == "db") {
      unsigned long db = 0;
      if (!parse_uint(v, 1000000, db)) return bad("db must be a non-negative integer");
      ep.db = static_cast<int>(db);
    } else if (k == "password") {
      if (!percent_decode(v, ep.password)) return bad("bad %-escape in password");
    } else if (!k.empty()) {
      return bad("unknown query parameter '" + std::string(k.substr(0, 32)) + "' (allowed: db, password)");
    }
  }
  return {};
}

}  // namespace

std::string redis_endpoint::redacted() const {
  if (transport == kind::unix_socket) return "unix://" + path + "?db=" + std::to_string(db);
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return "redis://" + h + ":" + std::to_string(port) + "/" + std::to_string(db);
}

core::result<redis_endpoint> parse_redis_url(std::string_view url) {
  redis_endpoint ep;
  std::string_view rest;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("unix://") || url.starts_with("redis+unix://")) {
    ep.transport = redis_endpoint::kind::unix_socket;
    rest = url.substr(url.find("://") + 3);
  } else {
    return bad("scheme must be redis://, unix:// or redis+unix:// (rediss:// TLS is not supported)");
  }
  if (rest.size() > 4096) return bad("too long");

  std::string_view query;
  if (auto qm = rest.find('?'); qm != std::string_view::npos) {
    query = rest.substr(qm + 1);
    rest = rest.substr(0, qm);
  }

  if (ep.transport == redis_endpoint::kind::unix_socket) {
    // unix://[:password@]/path: userinfo ends at the last '@' before the path's first '/'.
    if (auto at = rest.find('@'); at != std::string_view::npos && rest.find('/') > at) {
      if (auto r = parse_userinfo(rest.substr(0, at), ep); !r) return r.error();
      rest = rest.substr(at + 1);
    }
    if (rest.empty() || rest.front() != '/') return bad("unix socket path must be absolute (unix:///path)");
    if (!percent_decode(rest, ep.path)) return bad("bad %-escape in path");
    if (ep.path.size() > 107) return bad("unix socket path longer than 107 bytes");
    if (auto r = parse_query(query, ep); !r) return r.error();
    return ep;
  }

  std::string_view authority = rest.substr(0, rest.find('/'));
  std::string_view path = authority.size() < rest.size() ? rest.substr(authority.size() + 1) : std::string_view{};
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    if (auto r = parse_userinfo(authority.substr(0, at), ep); !r) return r.error();
    authority = authority.substr(at + 1);
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated [IPv6] host");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after [IPv6] host");
      port = after.substr(1);
      if (port.empty()) return bad("empty port");
    }
  } else {
    auto colon = authority.find(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port = authority.substr(colon + 1);
      if (port.empty()) return bad("empty port");
    }
  }
  if (ep.host.empty()) return bad("missing host");
  if (!port.empty()) {
    unsigned long p = 0;
    if (!parse_uint(port, 65535, p) || p == 0) return bad("port must be 1..65535");
    ep.port = static_cast<std::uint16_t>(p);
  }
  if (!path.empty()) {
    unsigned long db = 0;
    if (!parse_uint(path, 1000000, db)) return bad("db (the path) must be a non-negative integer");
    ep.db = static_cast<int>(db);
  }
  if (auto r = parse_query(query, ep); !r) return r.error();
  return ep;
}

std::chrono::milliseconds backoff_delay(std::chrono::milliseconds base, std::chrono::milliseconds max,
                                        unsigned attempt) noexcept {
  auto d = base;
  for (unsigned i = 1; i < attempt && d < max; ++i) d *= 2;
  return std::min(d, max);
}

}  // namespace berth::redis
