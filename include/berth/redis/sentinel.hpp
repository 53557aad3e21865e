#pragma once
// Redis Sentinel, the pure part (no sockets): REDIS_SENTINELS parsing, the replies Sentinel and
// ROLE give, the +switch-master message, which error replies mean "not a usable master right
// now", and master_discovery, the state machine that finds the master the way Redis's
// "Guidelines for Redis clients with support for Redis Sentinel" describe:
//   1. ask each sentinel in turn `SENTINEL get-master-addr-by-name <name>`; the first that
//      answers with an address wins and moves to the front of the list (it is the one that works);
//   2. connect to that address and check `ROLE`: only "master" counts (a just-demoted master or
//      a stale answer is refused), otherwise start over after a backoff.
// redis_client is the I/O shell that carries out the actions. Thread-safety: plain values; a
// master_discovery belongs to one client's strand.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "berth/core/errors.hpp"
#include "berth/redis/reply.hpp"

namespace berth::redis {

struct host_port {
  std::string host;
  std::uint16_t port = 0;
  // "host:port", "[::1]:26379" for IPv6 literals.
  std::string to_string() const;
  bool operator==(const host_port&) const = default;
};

// "host:port" or "[v6]:port"; a missing port is default_port. errc::invalid_payload naming the
// problem.
core::result<host_port> parse_host_port(std::string_view s, std::uint16_t default_port);
// REDIS_SENTINELS: comma-separated host[:port] (port 26379 by default), at least one, no
// duplicates.
core::result<std::vector<host_port>> parse_sentinel_list(std::string_view s);

// SENTINEL get-master-addr-by-name: [ip, port]; nil when the sentinel does not monitor that
// name (a configuration error worth its own message); an error reply (e.g. NOAUTH) as an error.
core::result<host_port> parse_master_addr(const reply& r, std::string_view master_name);

enum class server_role { master, replica, sentinel };
std::string_view to_string(server_role r) noexcept;

struct role_info {
  server_role role = server_role::master;
  std::int64_t offset = 0;           // master: replication offset; replica: processed offset
  std::vector<host_port> replicas;   // master: replicas attached now
  std::optional<host_port> master;   // replica: the master it follows
  std::string link_state;            // replica: connect | connecting | sync | connected
};
// ROLE: ["master", offset, [[ip, port, offset]...]] | ["slave", ip, port, state, offset] |
// ["sentinel", [names]].
core::result<role_info> parse_role(const reply& r);

// A Pub/Sub message on +switch-master: ["message", "+switch-master",
// "<name> <old-ip> <old-port> <new-ip> <new-port>"].
struct switch_master_event {
  std::string master_name;
  host_port from;
  host_port to;
};
// nullopt for anything else (subscribe confirmations, other channels, garbled text).
std::optional<switch_master_event> parse_switch_master(const reply& r);

// READONLY (we talk to a replica: the master was demoted), MASTERDOWN (a replica that lost its
// master and serves no stale data), LOADING (a restarted node still loading its data set): the
// node we reached is not a usable master now. The connection should be dropped and the master
// found again; the command has not been applied.
bool is_failover_error(const reply& r) noexcept;

// Finds the master. Feed it the outcome of each action it asks for; it never does I/O.
class master_discovery {
 public:
  struct action {
    enum class kind {
      ask_sentinel,    // send SENTINEL get-master-addr-by-name to `target`, call on_sentinel_reply
      check_role,      // connect to `target`, send ROLE, call on_role
      use_master,      // `target` is the master: use the connection
      retry_later,     // nothing worked this round: wait (backoff), then start() again; `reason` says why
    } what = kind::retry_later;
    host_port target;
    std::string reason;
  };

  master_discovery(std::vector<host_port> sentinels, std::string master_name);

  // Starts a round with the first sentinel of the list.
  action start();
  // The reply to SENTINEL get-master-addr-by-name from the sentinel last asked, or the transport
  // error that prevented it.
  action on_sentinel_reply(const core::result<reply>& r);
  // The reply to ROLE from the address check_role named, or the transport error.
  action on_role(const core::result<reply>& r);

  // The order sentinels are tried in (the last one that answered first).
  const std::vector<host_port>& sentinels() const noexcept { return sentinels_; }
  const std::string& master_name() const noexcept { return master_name_; }
  // The address of the last master that passed the ROLE check.
  const std::optional<host_port>& master() const noexcept { return master_; }

 private:
  action ask(std::size_t i);
  action give_up(std::string why);

  std::vector<host_port> sentinels_;
  std::string master_name_;
  std::size_t asking_ = 0;          // index of the sentinel being asked
  std::vector<std::string> errors_; // per sentinel, this round
  std::optional<host_port> candidate_;
  std::optional<host_port> master_;
  enum class state { idle, asking, checking } state_ = state::idle;
};

}  // namespace berth::redis
