#include "berth/core/client_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace berth::core {
namespace {

constexpr std::array<std::uint8_t, 12> v4_mapped_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// One X-Forwarded-For hop: an address, maybe with a port ("192.0.2.1:4711", "[2001:db8::1]:443").
std::optional<ip_address> parse_hop(std::string_view hop) {
  hop = trim(hop);
  if (!hop.empty() && hop.front() == '[') {
    const auto close = hop.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    return parse_ip(hop.substr(1, close - 1));
  }
  if (const auto colon = hop.find(':'); colon != std::string_view::npos && hop.find(':', colon + 1) == std::string_view::npos)
    hop = hop.substr(0, colon);  // IPv4 with a port
  return parse_ip(hop);
}

}  // namespace

std::optional<ip_address> parse_ip(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() > 45) return std::nullopt;  // INET6_ADDRSTRLEN - 1
  char buf[46];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address a;
  in_addr v4{};
  if (::inet_pton(AF_INET, buf, &v4) == 1) {
    std::memcpy(a.bytes.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size());
    std::memcpy(a.bytes.data() + 12, &v4, 4);
    a.v4 = true;
    return a;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, buf, &v6) != 1) return std::nullopt;
  std::memcpy(a.bytes.data(), &v6, 16);
  // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d: the same client as a.b.c.d.
  a.v4 = std::memcmp(a.bytes.data(), v4_mapped_prefix.data(), v4_mapped_prefix.size()) == 0;
  return a;
}

std::string ip_address::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (v4) return ::inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf) ? buf : "";
  return ::inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf) ? buf : "";
}

std::string ip_address::limit_key() const {
  if (v4) return to_string();
  ip_address net = *this;
  std::memset(net.bytes.data() + 8, 0, 8);
  return net.to_string() + "/64";
}

bool cidr::contains(const ip_address& a) const noexcept {
  if (a.v4 != network.v4) return false;
  const unsigned offset = network.v4 ? 96 : 0;  // IPv4 prefixes count from the mapped part
  const unsigned bits = offset + prefix;
  for (unsigned i = 0; i < 16; ++i) {
    const unsigned first_bit = i * 8;
    if (first_bit >= bits) break;
    const unsigned take = bits - first_bit >= 8 ? 8 : bits - first_bit;
    const auto mask = static_cast<std::uint8_t>(0xff << (8 - take));
    if ((a.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

std::optional<cidr> parse_cidr(std::string_view text) {
  text = trim(text);
  const auto slash = text.find('/');
  auto addr = parse_ip(text.substr(0, slash));
  if (!addr) return std::nullopt;
  cidr c{*addr, addr->v4 ? 32u : 128u};
  if (slash != std::string_view::npos) {
    const auto digits = text.substr(slash + 1);
    unsigned p = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), p);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || p > c.prefix) return std::nullopt;
    c.prefix = p;
  }
  // Host bits set ("10.0.0.1/8") is almost always a typo for something else: refuse it.
  const unsigned bits = (addr->v4 ? 96 : 0) + c.prefix;
  for (unsigned bit = bits; bit < 128; ++bit)
    if (addr->bytes[bit / 8] & (0x80 >> (bit % 8))) return std::nullopt;
  return c;
}

std::optional<trusted_proxies> trusted_proxies::parse(std::string_view list, std::string* error) {
  trusted_proxies out;
  std::size_t start = 0;
  while (start <= list.size()) {
    auto end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    const auto item = trim(list.substr(start, end - start));
    if (!item.empty()) {
      auto c = parse_cidr(item);
      if (!c) {
        if (error) *error = std::string(item);
        return std::nullopt;
      }
      out.nets_.push_back(*c);
    }
    start = end + 1;
  }
  return out;
}

bool trusted_proxies::contains(const ip_address& a) const noexcept {
  for (const auto& n : nets_)
    if (n.contains(a)) return true;
  return false;
}

ip_address resolve_client_address(const ip_address& peer, std::span<const std::string_view> forwarded_for,
                                  const trusted_proxies& trusted) {
  ip_address client = peer;
  if (!trusted.contains(peer)) return client;
  // Right to left over all fields and their comma-separated hops (a bounded walk: at most 64
  // hops are looked at, whatever the header holds).
  int budget = 64;
  for (auto field = forwarded_for.rbegin(); field != forwarded_for.rend(); ++field) {
    std::string_view rest = *field;
    while (!rest.empty()) {
      if (--budget < 0) return client;
      const auto comma = rest.rfind(',');
      const auto hop = comma == std::string_view::npos ? rest : rest.substr(comma + 1);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
      if (trim(hop).empty()) continue;
      auto a = parse_hop(hop);
      if (!a) return client;
      client = *a;
      if (!trusted.contains(client)) return client;
    }
  }
  return client;
}

}  // namespace berth::core
