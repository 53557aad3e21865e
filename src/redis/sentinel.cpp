#include "berth/redis/sentinel.hpp"

#include <algorithm>
#include <charconv>

namespace berth::redis {

namespace {

core::error bad(std::string why) { return core::make_error(core::errc::invalid_payload, std::move(why)); }

bool parse_port(std::string_view s, std::uint16_t& out) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc{} || p != s.data() + s.size() || v == 0 || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

std::string trim(std::string_view s) {
  const auto* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

// A reply element that must be a string (bulk or status): its text.
std::optional<std::string> text_of(const reply& r) {
  if (r.type == reply_type::string || r.type == reply_type::status) return r.str;
  return std::nullopt;
}

core::error bad_reply(std::string_view what, const reply& r) {
  return core::make_error(core::errc::internal, std::string(what) + ": unexpected reply " + describe(r, 80));
}

}  // namespace

std::string host_port::to_string() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

core::result<host_port> parse_host_port(std::string_view s, std::uint16_t default_port) {
  host_port out;
  out.port = default_port;
  if (s.empty()) return bad("empty address");
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close == 1) return bad("'" + std::string(s.substr(0, 64)) + "': bad [IPv6] address");
    out.host = std::string(s.substr(1, close - 1));
    auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':' || !parse_port(rest.substr(1), out.port))
        return bad("'" + std::string(s.substr(0, 64)) + "': the port must be 1..65535");
    }
    return out;
  }
  auto colon = s.rfind(':');
  if (colon != std::string_view::npos && s.find(':') != colon)
    return bad("'" + std::string(s.substr(0, 64)) + "': write IPv6 addresses as [addr]:port");
  out.host = std::string(s.substr(0, colon));
  if (out.host.empty()) return bad("'" + std::string(s.substr(0, 64)) + "': the host is empty");
  if (colon != std::string_view::npos && !parse_port(s.substr(colon + 1), out.port))
    return bad("'" + std::string(s.substr(0, 64)) + "': the port must be 1..65535");
  for (char c : out.host)
    if (static_cast<unsigned char>(c) <= 0x20 || c == '/' || c == '@')
      return bad("'" + std::string(s.substr(0, 64)) + "': not a host name");
  return out;
}

core::result<std::vector<host_port>> parse_sentinel_list(std::string_view s) {
  std::vector<host_port> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string_view::npos) end = s.size();
    auto item = trim(s.substr(start, end - start));
    start = end + 1;
    if (item.empty()) continue;
    auto hp = parse_host_port(item, 26379);
    if (!hp) return hp.error();
    if (std::find(out.begin(), out.end(), *hp) != out.end()) return bad(hp->to_string() + " is listed twice");
    out.push_back(std::move(*hp));
  }
  if (out.empty()) return bad("no sentinel address (expected host:port[,host:port...])");
  return out;
}

core::result<host_port> parse_master_addr(const reply& r, std::string_view master_name) {
  if (r.is_nil())
    return core::make_error(core::errc::internal,
                            "sentinel does not know a master named '" + std::string(master_name.substr(0, 64)) +
                                "' (check REDIS_SENTINEL_MASTER)");
  if (r.is_error()) return core::make_error(core::errc::internal, "sentinel answered " + r.str.substr(0, 120));
  if (r.type != reply_type::array || r.elements.size() != 2) return bad_reply("SENTINEL get-master-addr-by-name", r);
  auto host = text_of(r.elements[0]);
  auto port = text_of(r.elements[1]);
  host_port out;
  if (!host || host->empty() || !port || !parse_port(*port, out.port))
    return bad_reply("SENTINEL get-master-addr-by-name", r);
  out.host = *host;
  return out;
}

std::string_view to_string(server_role r) noexcept {
  switch (r) {
    case server_role::master: return "master";
    case server_role::replica: return "replica";
    case server_role::sentinel: return "sentinel";
  }
  return "?";
}

core::result<role_info> parse_role(const reply& r) {
  if (r.is_error()) return core::make_error(core::errc::internal, "ROLE failed: " + r.str.substr(0, 120));
  if (r.type != reply_type::array || r.elements.empty()) return bad_reply("ROLE", r);
  auto name = text_of(r.elements[0]);
  if (!name) return bad_reply("ROLE", r);
  role_info out;
  const auto& e = r.elements;
  if (*name == "master") {
    out.role = server_role::master;
    if (e.size() != 3 || e[1].type != reply_type::integer || e[2].type != reply_type::array) return bad_reply("ROLE", r);
    out.offset = e[1].integer;
    for (const auto& rep : e[2].elements) {
      if (rep.type != reply_type::array || rep.elements.size() < 2) return bad_reply("ROLE", r);
      auto h = text_of(rep.elements[0]);
      auto p = text_of(rep.elements[1]);
      host_port hp;
      if (!h || !p || !parse_port(*p, hp.port)) return bad_reply("ROLE", r);
      hp.host = *h;
      out.replicas.push_back(std::move(hp));
    }
    return out;
  }
  if (*name == "slave" || *name == "replica") {
    out.role = server_role::replica;
    if (e.size() != 5 || e[2].type != reply_type::integer) return bad_reply("ROLE", r);
    auto h = text_of(e[1]);
    auto state = text_of(e[3]);
    if (!h || !state || e[2].integer < 0 || e[2].integer > 65535) return bad_reply("ROLE", r);
    out.master = host_port{*h, static_cast<std::uint16_t>(e[2].integer)};
    out.link_state = *state;
    if (e[4].type == reply_type::integer) out.offset = e[4].integer;
    return out;
  }
  if (*name == "sentinel") {
    out.role = server_role::sentinel;
    return out;
  }
  return bad_reply("ROLE", r);
}

std::optional<switch_master_event> parse_switch_master(const reply& r) {
  if (r.type != reply_type::array || r.elements.size() != 3) return std::nullopt;
  auto kind = text_of(r.elements[0]);
  auto channel = text_of(r.elements[1]);
  auto body = text_of(r.elements[2]);
  if (!kind || !channel || !body || *kind != "message" || *channel != "+switch-master") return std::nullopt;
  std::vector<std::string_view> words;
  std::string_view rest = *body;
  while (!rest.empty() && words.size() < 6) {
    auto sp = rest.find(' ');
    auto w = rest.substr(0, sp);
    if (!w.empty()) words.push_back(w);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
  }
  if (words.size() != 5) return std::nullopt;
  switch_master_event ev;
  ev.master_name = std::string(words[0]);
  ev.from.host = std::string(words[1]);
  ev.to.host = std::string(words[3]);
  if (!parse_port(words[2], ev.from.port) || !parse_port(words[4], ev.to.port)) return std::nullopt;
  return ev;
}

bool is_failover_error(const reply& r) noexcept {
  if (!r.is_error()) return false;
  auto p = r.error_prefix();
  return p == "READONLY" || p == "MASTERDOWN" || p == "LOADING";
}

// ---- master_discovery -------------------------------------------------------------------------

master_discovery::master_discovery(std::vector<host_port> sentinels, std::string master_name)
    : sentinels_(std::move(sentinels)), master_name_(std::move(master_name)) {}

master_discovery::action master_discovery::ask(std::size_t i) {
  asking_ = i;
  state_ = state::asking;
  return action{action::kind::ask_sentinel, sentinels_[i], {}};
}

master_discovery::action master_discovery::give_up(std::string why) {
  state_ = state::idle;
  candidate_.reset();
  return action{action::kind::retry_later, {}, std::move(why)};
}

master_discovery::action master_discovery::start() {
  errors_.clear();
  candidate_.reset();
  if (sentinels_.empty()) return give_up("no sentinel configured");
  return ask(0);
}

master_discovery::action master_discovery::on_sentinel_reply(const core::result<reply>& r) {
  if (state_ != state::asking) return give_up("discovery: sentinel reply out of order");
  core::result<host_port> addr = r ? parse_master_addr(*r, master_name_) : core::result<host_port>(r.error());
  if (addr) {
    // The guidelines' rule: the sentinel that answered goes first next time.
    std::rotate(sentinels_.begin(), sentinels_.begin() + static_cast<std::ptrdiff_t>(asking_),
                sentinels_.begin() + static_cast<std::ptrdiff_t>(asking_) + 1);
    candidate_ = *addr;
    state_ = state::checking;
    return action{action::kind::check_role, *addr, {}};
  }
  errors_.push_back(sentinels_[asking_].to_string() + ": " + addr.error().message);
  if (asking_ + 1 < sentinels_.size()) return ask(asking_ + 1);
  std::string why = "no sentinel gave the address of master '" + master_name_ + "' (";
  for (std::size_t i = 0; i < errors_.size(); ++i) why += (i ? "; " : "") + errors_[i];
  return give_up(why + ")");
}

master_discovery::action master_discovery::on_role(const core::result<reply>& r) {
  if (state_ != state::checking || !candidate_) return give_up("discovery: ROLE reply out of order");
  const auto target = *candidate_;
  if (!r) return give_up("master " + target.to_string() + " from sentinel: " + r.error().message);
  auto role = parse_role(*r);
  if (!role) return give_up("master " + target.to_string() + ": " + role.error().message);
  if (role->role != server_role::master)
    return give_up("sentinel named " + target.to_string() + " as master but it is a " +
                   std::string(to_string(role->role)) + " (failover in progress?)");
  state_ = state::idle;
  master_ = target;
  candidate_.reset();
  return action{action::kind::use_master, target, {}};
}

}  // namespace berth::redis
