#pragma once
// Who is the client? The socket peer, unless that peer is a proxy the operator trusts
// (TRUSTED_PROXIES): then the nearest X-Forwarded-For hop that is not itself a trusted proxy.
// Anyone can write an X-Forwarded-For header, so it is believed only from trusted peers.
// Pure: addresses are parsed with inet_pton, no sockets; the header value is untrusted input.
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace berth::core {

struct ip_address {
  std::array<std::uint8_t, 16> bytes{};  // IPv4 as the IPv4-mapped IPv6 form ::ffff:a.b.c.d
  bool v4 = false;

  std::string to_string() const;
  // What per-address limits count by: the address for IPv4; for IPv6 its /64, because one host
  // (or one attacker) normally owns a whole /64 and can pick any address in it.
  std::string limit_key() const;
  bool operator==(const ip_address&) const = default;
};

// "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1" (read as IPv4), "[2001:db8::1]"; nullopt otherwise.
std::optional<ip_address> parse_ip(std::string_view text);

struct cidr {
  ip_address network;
  unsigned prefix = 0;  // 0..32 for IPv4, 0..128 for IPv6
  bool contains(const ip_address& a) const noexcept;
};

// "10.0.0.0/8", "fd00::/8", or one address (a /32 or /128). Host bits must be zero.
std::optional<cidr> parse_cidr(std::string_view text);

class trusted_proxies {
 public:
  trusted_proxies() = default;
  // A comma-separated list (TRUSTED_PROXIES); the error names the entry that does not parse.
  static std::optional<trusted_proxies> parse(std::string_view list, std::string* error = nullptr);
  bool contains(const ip_address& a) const noexcept;
  bool empty() const noexcept { return nets_.empty(); }
  const std::vector<cidr>& networks() const noexcept { return nets_; }

 private:
  std::vector<cidr> nets_;
};

// `forwarded_for`: the values of every X-Forwarded-For field of the request, in order. Walks
// the hops from the right (the one our trusted peer added) and stops at the first hop that is
// not a trusted proxy; a hop that is not an address (garbage, "unknown") ends the walk at the
// last good one. The peer itself is the answer when it is not trusted.
ip_address resolve_client_address(const ip_address& peer, std::span<const std::string_view> forwarded_for,
                                  const trusted_proxies& trusted);

}  // namespace berth::core
