#include "berth/http/url.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "berth/core/logging.hpp"

namespace berth::http {

core::result<url> parse_url(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return core::make_error(core::errc::invalid_payload, "invalid URL '" + core::log_prefix(text, 100) + "': " + std::string(why));
  };
  url out;
  std::string_view rest;
  if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 8) == "https://") {
    out.tls = true;
    rest = text.substr(8);
  } else {
    return fail("scheme must be http or https");
  }
  auto slash = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, slash);
  std::string_view target = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
  if (authority.find('@') != std::string_view::npos) return fail("userinfo is not allowed");
  if (target.find('#') != std::string_view::npos) target = target.substr(0, target.find('#'));
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return fail("unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return fail("junk after IPv6 literal");
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return fail("missing host");
  if (std::any_of(host.begin(), host.end(), [](char c) {
        return std::isspace(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) < 0x21 || c == '/' || c == '\\';
      }))
    return fail("invalid host");
  out.host = std::string(host);
  out.port = out.tls ? 443 : 80;
  if (!port.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc{} || p != port.data() + port.size() || v == 0 || v > 65535) return fail("invalid port");
    out.port = static_cast<std::uint16_t>(v);
  }
  out.target = target.empty() ? "/" : std::string(target);
  if (out.target.front() == '?') out.target.insert(out.target.begin(), '/');
  if (std::any_of(out.target.begin(), out.target.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
    return fail("invalid characters in path");
  return out;
}

}  // namespace berth::http
