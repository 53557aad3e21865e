// berth-sio-load: a raw Engine.IO v4 (websocket) + Socket.IO v5 load client for bench/socketio.
//
// One run against one server (given by port and pid) measures:
//   idle: N websocket clients connected to namespace "/", held while they answer Engine.IO pings;
//         server VmRSS and open fds before/after -> bytes per connection; server CPU while idle.
//   echo: C clients in a closed loop (next message when the previous ack/reply arrives) for T
//         seconds after a warm-up: msgs/s, latency percentiles, server CPU (utime+stime of the
//         whole process) -> msgs per server CPU-second.
// Results go to stdout as key=value lines; progress goes to stderr.
//
// Design: the parent forks W worker processes (a process may hold only RLIMIT_NOFILE sockets),
// each a single-threaded epoll loop owning its share of the connections; phases and counters
// live in a MAP_SHARED page. Loopback targets only; every wait is bounded in time.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <functional>
#include <new>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// ------------------------------------------------------------------ options

struct options {
  std::string host = "127.0.0.1";
  int port = 0;
  int server_pid = 0;
  std::string label = "server";
  int idle = 20000;          // idle clients (0 skips the phase)
  int workers = 0;           // 0: enough processes for the idle clients under RLIMIT_NOFILE
  double settle_s = 3;       // after the last idle client connected, before the RSS reading
  double hold_s = 5;         // then held this long (pings answered), second RSS reading
  double connect_timeout_s = 30;  // per connection handshake (a busy server accepts slowly)
  double stall_s = 20;            // idle connect phase ends when no handshake finished for this long
  double min_connect_rate = 200;  // ... or after connect_timeout_s + idle / min_connect_rate seconds
  int connect_inflight = 256;     // handshakes in flight per worker
  int echo_clients = 64;
  int echo_workers = 1;
  double warmup_s = 2;
  double echo_s = 10;
  int payload = 32;           // bytes of the string argument
  bool ack_mode = true;       // "message-with-ack" (ack) or "message" -> "message-back"
  int src_addrs = 8;          // bind to 127.0.0.2 .. 127.0.0.(1+src_addrs) before connect; 0: no bind
  std::string path = "/socket.io/";
};

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: berth-sio-load --port P --pid SERVER_PID [--label NAME] [--idle N] [--workers W]\n"
               "  [--settle S] [--hold S] [--connect-timeout S] [--stall S] [--min-connect-rate R] [--inflight K] [--echo-clients C]\n"
               "  [--echo-workers E] [--warmup S] [--echo-seconds T] [--payload BYTES]\n"
               "  [--event ack|message] [--src-addrs K] [--path /socket.io/]\n");
  std::exit(2);
}

options parse_args(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--host") o.host = next();
    else if (a == "--port") o.port = std::atoi(next().c_str());
    else if (a == "--pid") o.server_pid = std::atoi(next().c_str());
    else if (a == "--label") o.label = next();
    else if (a == "--idle") o.idle = std::atoi(next().c_str());
    else if (a == "--workers") o.workers = std::atoi(next().c_str());
    else if (a == "--settle") o.settle_s = std::atof(next().c_str());
    else if (a == "--hold") o.hold_s = std::atof(next().c_str());
    else if (a == "--connect-timeout") o.connect_timeout_s = std::atof(next().c_str());
    else if (a == "--stall") o.stall_s = std::atof(next().c_str());
    else if (a == "--min-connect-rate") o.min_connect_rate = std::atof(next().c_str());
    else if (a == "--inflight") o.connect_inflight = std::atoi(next().c_str());
    else if (a == "--echo-clients") o.echo_clients = std::atoi(next().c_str());
    else if (a == "--echo-workers") o.echo_workers = std::atoi(next().c_str());
    else if (a == "--warmup") o.warmup_s = std::atof(next().c_str());
    else if (a == "--echo-seconds") o.echo_s = std::atof(next().c_str());
    else if (a == "--payload") o.payload = std::atoi(next().c_str());
    else if (a == "--event") {
      auto e = next();
      if (e != "ack" && e != "message") usage();
      o.ack_mode = e == "ack";
    } else if (a == "--src-addrs") o.src_addrs = std::atoi(next().c_str());
    else if (a == "--path") o.path = next();
    else usage();
  }
  if (o.port <= 0 || o.port > 65535 || o.server_pid <= 0 || o.idle < 0 || o.echo_clients < 0 || o.payload < 0 ||
      o.src_addrs < 0 || o.src_addrs > 200 || o.connect_inflight <= 0 || o.echo_workers <= 0 || o.min_connect_rate <= 0)
    usage();
  // Loopback targets only.
  in_addr a{};
  if (inet_pton(AF_INET, o.host.c_str(), &a) != 1 || (ntohl(a.s_addr) >> 24) != 127) {
    std::fprintf(stderr, "berth-sio-load: --host must be a 127.x.y.z address\n");
    std::exit(2);
  }
  return o;
}

// ------------------------------------------------------------------ latency histogram
// Exact below 4096 us, then 256 sub-buckets per power of two (< 0.4 % error).
constexpr std::size_t kExact = 4096;
constexpr std::size_t kSub = 256;
constexpr std::size_t kBuckets = kExact + 52 * kSub;

std::size_t bucket_of(std::uint64_t us) {
  if (us < kExact) return static_cast<std::size_t>(us);
  const int e = 63 - __builtin_clzll(us);  // >= 12
  const auto sub = static_cast<std::size_t>((us >> (e - 8)) & (kSub - 1));
  return std::min(kBuckets - 1, kExact + static_cast<std::size_t>(e - 12) * kSub + sub);
}

std::uint64_t value_of(std::size_t b) {
  if (b < kExact) return b;
  const std::size_t e = (b - kExact) / kSub + 12;
  const std::size_t sub = (b - kExact) % kSub;
  return (std::uint64_t{1} << e) + (static_cast<std::uint64_t>(sub) << (e - 8));
}

// ------------------------------------------------------------------ shared state

enum phase : int { p_init = 0, p_idle_connect, p_idle_close, p_echo_connect, p_echo_stop, p_exit };

constexpr int kMaxWorkers = 16;

struct worker_stats {
  std::atomic<std::uint64_t> ready{0};    // reached Socket.IO CONNECT ("40{sid}")
  std::atomic<std::uint64_t> failed{0};   // handshake failed or timed out
  std::atomic<std::uint64_t> dropped{0};  // closed by the server after being ready
  std::atomic<std::uint64_t> pings{0};    // Engine.IO pings answered
  std::atomic<std::uint64_t> msgs{0};     // replies counted in the measuring window
  std::atomic<std::uint64_t> bad{0};      // unexpected frames/packets
  std::atomic<int> phase_done{0};         // last phase this worker finished
  std::atomic<long> ping_interval_ms{-1};  // from the first open packet
  std::atomic<long> ping_timeout_ms{-1};
  std::uint64_t hist[kBuckets];           // written by the worker before it marks echo done
};

struct shared_state {
  std::atomic<int> phase{p_init};
  std::atomic<int> measuring{0};
  worker_stats w[kMaxWorkers];
};

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// ------------------------------------------------------------------ worker

// The integer after `key` in a flat JSON text, or -1 (enough for the open packet's numbers).
long json_number(std::string_view text, std::string_view key) {
  const auto at = text.find(key);
  if (at == std::string_view::npos) return -1;
  long v = 0;
  bool any = false;
  for (std::size_t i = at + key.size(); i < text.size() && text[i] >= '0' && text[i] <= '9'; ++i) {
    v = v * 10 + (text[i] - '0');
    any = true;
  }
  return any ? v : -1;
}

enum class cstate : std::uint8_t { connecting, http, open_wait, connect_wait, ready, closed };

struct conn {
  int fd = -1;
  cstate st = cstate::closed;
  bool echo = false;
  bool want_out = false;
  bool outstanding = false;
  std::uint32_t mask = 0;
  std::uint64_t ack_id = 0;
  std::int64_t started_ns = 0;
  std::int64_t sent_ns = 0;
  std::string in;
  std::string out;
};

class worker {
 public:
  worker(const options& o, shared_state& sh, int index, int idle_share, int echo_share)
      : o_(o), sh_(sh), st_(sh.w[index]), index_(index), idle_share_(idle_share), echo_share_(echo_share) {
    std::fill(std::begin(st_.hist), std::end(st_.hist), 0);
    inet_pton(AF_INET, o.host.c_str(), &dst_.sin_addr);
    dst_.sin_family = AF_INET;
    dst_.sin_port = htons(static_cast<std::uint16_t>(o.port));
    request_ = "GET " + o.path + "?EIO=4&transport=websocket HTTP/1.1\r\nHost: " + o.host + ":" + std::to_string(o.port) +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: YmVydGgtYmVuY2gtbG9hZA==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n";
    payload_ = "\"" + std::string(static_cast<std::size_t>(o.payload), 'x') + "\"";
    rng_ = 0x9e3779b9u * static_cast<std::uint32_t>(index + 1);
  }

  int run() {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    if (ep_ < 0) return 1;
    int current = p_init;
    epoll_event events[512];
    const auto deadline = steady::now() + std::chrono::hours(2);  // a hard bound for the whole worker
    while (steady::now() < deadline) {
      const int ph = sh_.phase.load();
      if (ph != current) {
        current = ph;
        if (ph == p_exit) break;
        enter(ph);
      }
      start_connections();
      const int n = epoll_wait(ep_, events, 512, 5);
      for (int i = 0; i < n; ++i) on_event(static_cast<std::size_t>(events[i].data.u64), events[i].events);
      expire_handshakes();
    }
    close_all();
    ::close(ep_);
    return 0;
  }

 private:
  void enter(int ph) {
    switch (ph) {
      case p_idle_connect:
        to_open_ = idle_share_;
        echo_phase_ = false;
        break;
      case p_idle_close:
      case p_echo_stop:
        if (ph == p_echo_stop) {
          for (std::size_t b = 0; b < kBuckets; ++b) st_.hist[b] = hist_[b];
        }
        close_all();
        to_open_ = 0;
        st_.phase_done.store(ph);
        break;
      case p_echo_connect:
        to_open_ = echo_share_;
        echo_phase_ = true;
        hist_.assign(kBuckets, 0);
        break;
      default:
        break;
    }
  }

  std::uint32_t next_rand() {
    rng_ ^= rng_ << 13;
    rng_ ^= rng_ >> 17;
    rng_ ^= rng_ << 5;
    return rng_;
  }

  void start_connections() {
    while (to_open_ > 0 && inflight_ < o_.connect_inflight) {
      --to_open_;
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        st_.failed.fetch_add(1);
        if (!reported_socket_error_) {
          std::fprintf(stderr, "[worker %d] socket(): %s\n", index_, std::strerror(errno));
          reported_socket_error_ = true;
        }
        continue;
      }
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (o_.src_addrs > 0) {
        // Spread source addresses so 20k+ connections never exhaust ephemeral ports.
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in src{};
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(0x7f000002u + (next_src_++ % static_cast<std::uint32_t>(o_.src_addrs)));
        if (::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
          ::close(fd);
          st_.failed.fetch_add(1);
          continue;
        }
      }
      const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&dst_), sizeof dst_);
      if (rc != 0 && errno != EINPROGRESS) {
        ::close(fd);
        st_.failed.fetch_add(1);
        continue;
      }
      const std::size_t idx = alloc_slot();
      conn& c = conns_[idx];
      c.fd = fd;
      c.st = cstate::connecting;
      c.echo = echo_phase_;
      c.want_out = true;
      c.outstanding = false;
      c.mask = next_rand() | 1u;
      c.ack_id = 0;
      c.started_ns = now_ns();
      c.in.clear();
      c.out.clear();
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT;
      ev.data.u64 = idx;
      epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev);
      ++inflight_;
      handshaking_.push_back(idx);
    }
  }

  std::size_t alloc_slot() {
    if (!free_.empty()) {
      auto i = free_.back();
      free_.pop_back();
      return i;
    }
    conns_.emplace_back();
    return conns_.size() - 1;
  }

  void finish(std::size_t idx, bool by_server) {
    conn& c = conns_[idx];
    if (c.st == cstate::closed) return;
    if (c.st == cstate::ready) {
      if (by_server) st_.dropped.fetch_add(1);
    } else {
      st_.failed.fetch_add(1);
      --inflight_;
    }
    ::close(c.fd);
    c.fd = -1;
    c.st = cstate::closed;
    c.in = std::string();
    c.out = std::string();
    free_.push_back(idx);
  }

  void close_all() {
    for (std::size_t i = 0; i < conns_.size(); ++i) {
      conn& c = conns_[i];
      if (c.st == cstate::closed) continue;
      if (c.st != cstate::ready) --inflight_;
      ::close(c.fd);
      c.fd = -1;
      c.st = cstate::closed;
      c.in = std::string();
      c.out = std::string();
    }
    conns_.clear();
    free_.clear();
    handshaking_.clear();
    inflight_ = 0;
  }

  void expire_handshakes() {
    if (handshaking_.empty()) return;
    const auto limit = static_cast<std::int64_t>(o_.connect_timeout_s * 1e9);
    const auto t = now_ns();
    std::size_t keep = 0;
    for (std::size_t k = 0; k < handshaking_.size(); ++k) {
      const auto idx = handshaking_[k];
      conn& c = conns_[idx];
      if (c.st == cstate::closed || c.st == cstate::ready) continue;
      if (t - c.started_ns > limit) {
        finish(idx, false);
        continue;
      }
      handshaking_[keep++] = idx;
    }
    handshaking_.resize(keep);
  }

  void set_out_interest(std::size_t idx, bool want) {
    conn& c = conns_[idx];
    if (c.want_out == want) return;
    c.want_out = want;
    epoll_event ev{};
    ev.events = EPOLLIN | (want ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
    ev.data.u64 = idx;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c.fd, &ev);
  }

  bool flush(std::size_t idx) {
    conn& c = conns_[idx];
    while (!c.out.empty()) {
      const auto n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        finish(idx, true);
        return false;
      }
      c.out.erase(0, static_cast<std::size_t>(n));
    }
    set_out_interest(idx, !c.out.empty());
    return true;
  }

  // Appends a masked client text frame.
  void frame(conn& c, std::string_view text, std::uint8_t opcode = 0x1) {
    const std::size_t n = text.size();
    c.out.push_back(static_cast<char>(0x80 | opcode));
    if (n < 126) {
      c.out.push_back(static_cast<char>(0x80 | n));
    } else if (n < 65536) {
      c.out.push_back(static_cast<char>(0x80 | 126));
      c.out.push_back(static_cast<char>((n >> 8) & 0xff));
      c.out.push_back(static_cast<char>(n & 0xff));
    } else {
      c.out.push_back(static_cast<char>(0x80 | 127));
      for (int s = 56; s >= 0; s -= 8) c.out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> s) & 0xff));
    }
    unsigned char key[4];
    std::memcpy(key, &c.mask, 4);
    c.out.append(reinterpret_cast<const char*>(key), 4);
    const std::size_t base = c.out.size();
    c.out.append(text);
    for (std::size_t i = 0; i < n; ++i) c.out[base + i] = static_cast<char>(c.out[base + i] ^ static_cast<char>(key[i & 3]));
  }

  void send_echo(conn& c) {
    msg_.clear();
    if (o_.ack_mode) {
      msg_ = "42";
      msg_ += std::to_string(++c.ack_id);
      msg_ += "[\"message-with-ack\",";
    } else {
      msg_ = "42[\"message\",";
    }
    msg_ += payload_;
    msg_ += "]";
    frame(c, msg_);
    c.outstanding = true;
    c.sent_ns = now_ns();
  }

  void on_reply(conn& c) {
    if (!c.outstanding) {
      st_.bad.fetch_add(1);
      return;
    }
    c.outstanding = false;
    if (sh_.measuring.load(std::memory_order_relaxed)) {
      const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, (now_ns() - c.sent_ns) / 1000));
      ++hist_[bucket_of(us)];
      st_.msgs.fetch_add(1, std::memory_order_relaxed);
    }
    if (sh_.phase.load(std::memory_order_relaxed) == p_echo_connect) send_echo(c);
  }

  // One Engine.IO text packet. Returns false when the connection must end.
  bool on_eio(std::size_t idx, std::string_view m) {
    conn& c = conns_[idx];
    if (m.empty()) {
      st_.bad.fetch_add(1);
      return true;
    }
    switch (m[0]) {
      case '0':  // open
        if (st_.ping_interval_ms.load(std::memory_order_relaxed) < 0) {
          st_.ping_interval_ms = json_number(m, "\"pingInterval\":");
          st_.ping_timeout_ms = json_number(m, "\"pingTimeout\":");
        }
        if (c.st == cstate::open_wait) {
          frame(c, "40");
          c.st = cstate::connect_wait;
        }
        return true;
      case '2':  // ping
        frame(c, "3");
        st_.pings.fetch_add(1, std::memory_order_relaxed);
        return true;
      case '1':  // close
        return false;
      case '6':  // noop
        return true;
      case '4':
        break;
      default:
        st_.bad.fetch_add(1);
        return true;
    }
    if (m.size() < 2) {
      st_.bad.fetch_add(1);
      return true;
    }
    switch (m[1]) {
      case '0':
        if (c.st == cstate::connect_wait) {
          c.st = cstate::ready;
          --inflight_;
          st_.ready.fetch_add(1);
          if (c.echo && sh_.phase.load() == p_echo_connect) send_echo(c);
        }
        return true;
      case '1':  // server DISCONNECT
      case '4':  // CONNECT_ERROR
        return false;
      case '3': {  // ACK "43<id>[...]"
        std::uint64_t id = 0;
        std::size_t i = 2;
        while (i < m.size() && m[i] >= '0' && m[i] <= '9') id = id * 10 + static_cast<std::uint64_t>(m[i++] - '0');
        if (o_.ack_mode && c.echo && id == c.ack_id) on_reply(c);
        else st_.bad.fetch_add(1);
        return true;
      }
      case '2':  // EVENT
        if (!o_.ack_mode && c.echo && m.substr(2).starts_with("[\"message-back\"")) on_reply(c);
        // other events (the "auth" echo on connect) are ignored
        return true;
      default:
        return true;
    }
  }

  // Parses complete server frames from c.in. Returns false when the connection must end.
  bool on_frames(std::size_t idx) {
    conn& c = conns_[idx];
    std::size_t pos = 0;
    bool alive = true;
    while (alive) {
      const std::size_t avail = c.in.size() - pos;
      if (avail < 2) break;
      const auto* p = reinterpret_cast<const unsigned char*>(c.in.data() + pos);
      const unsigned op = p[0] & 0x0f;
      if ((p[1] & 0x80) != 0) {  // servers never mask
        st_.bad.fetch_add(1);
        return false;
      }
      std::uint64_t len = p[1] & 0x7f;
      std::size_t hdr = 2;
      if (len == 126) {
        if (avail < 4) break;
        len = (static_cast<std::uint64_t>(p[2]) << 8) | p[3];
        hdr = 4;
      } else if (len == 127) {
        if (avail < 10) break;
        len = 0;
        for (int k = 0; k < 8; ++k) len = (len << 8) | p[2 + k];
        hdr = 10;
      }
      if (len > (1u << 24)) {
        st_.bad.fetch_add(1);
        return false;
      }
      if (avail < hdr + len) break;
      std::string_view payload(c.in.data() + pos + hdr, static_cast<std::size_t>(len));
      pos += hdr + static_cast<std::size_t>(len);
      switch (op) {
        case 0x1:
          alive = on_eio(idx, payload);
          break;
        case 0x8:
          alive = false;
          break;
        case 0x9:
          frame(c, payload, 0xA);
          break;
        case 0xA:
          break;
        default:  // binary or fragmented: not used by these servers for our traffic
          st_.bad.fetch_add(1);
          break;
      }
    }
    c.in.erase(0, pos);
    return alive;
  }

  void on_event(std::size_t idx, std::uint32_t ev) {
    if (idx >= conns_.size()) return;
    conn& c = conns_[idx];
    if (c.st == cstate::closed) return;
    if (c.st == cstate::connecting) {
      if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0 || (ev & EPOLLERR) != 0) {
        finish(idx, false);
        return;
      }
      c.st = cstate::http;
      c.out = request_;
      flush(idx);
      return;
    }
    if ((ev & EPOLLOUT) != 0 && !flush(idx)) return;
    if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) return;
    const auto n = ::recv(c.fd, rbuf_, sizeof rbuf_, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      finish(idx, true);
      return;
    }
    if (n < 0) return;
    c.in.append(rbuf_, static_cast<std::size_t>(n));
    if (c.st == cstate::http) {
      const auto end = c.in.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (c.in.size() > 8192) finish(idx, false);
        return;
      }
      if (!c.in.starts_with("HTTP/1.1 101")) {
        finish(idx, false);
        return;
      }
      c.in.erase(0, end + 4);
      c.st = cstate::open_wait;
    }
    if (!on_frames(idx)) {
      finish(idx, true);
      return;
    }
    if (c.in.capacity() > 4096 && c.in.empty()) c.in = std::string();
    if (!c.out.empty()) flush(idx);
  }

  const options& o_;
  shared_state& sh_;
  worker_stats& st_;
  int index_;
  int idle_share_;
  int echo_share_;
  int ep_ = -1;
  sockaddr_in dst_{};
  std::string request_;
  std::string payload_;
  std::string msg_;
  std::uint32_t rng_;
  std::uint32_t next_src_ = 0;
  int to_open_ = 0;
  int inflight_ = 0;
  bool echo_phase_ = false;
  bool reported_socket_error_ = false;
  std::vector<conn> conns_;
  std::vector<std::size_t> free_;
  std::vector<std::size_t> handshaking_;
  std::vector<std::uint64_t> hist_ = std::vector<std::uint64_t>(kBuckets, 0);
  char rbuf_[64 * 1024];
};

// ------------------------------------------------------------------ server probes (/proc)

long read_status_kb(int pid, const char* key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line))
    if (line.rfind(k, 0) == 0) return std::atol(line.c_str() + k.size());
  return -1;
}

// utime + stime of the whole thread group, in seconds (which = 1: utime only, 2: stime only).
double read_cpu_s(int pid, int which = 0) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto rp = s.rfind(')');
  if (rp == std::string::npos) return -1;
  std::istringstream in(s.substr(rp + 2));
  std::string field;
  unsigned long long ut = 0, st = 0;
  for (int i = 3; i <= 15 && (in >> field); ++i) {
    if (i == 14) ut = std::strtoull(field.c_str(), nullptr, 10);
    if (i == 15) st = std::strtoull(field.c_str(), nullptr, 10);
  }
  const auto ticks = which == 1 ? ut : which == 2 ? st : ut + st;
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long count_fds(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  long n = 0;
  while (auto* e = readdir(d))
    if (e->d_name[0] != '.') ++n;
  closedir(d);
  return n;
}

// Soft "Max open files" of the server: it bounds how many connections it can hold.
long long read_nofile_limit(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/limits");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Max open files", 0) == 0) return std::atoll(line.c_str() + 14);
  return -1;
}

bool alive(int pid) { return ::kill(pid, 0) == 0; }

// ------------------------------------------------------------------ parent

struct totals {
  std::uint64_t ready = 0, failed = 0, dropped = 0, pings = 0, msgs = 0, bad = 0;
};

totals sum(const shared_state& sh, int workers) {
  totals t;
  for (int i = 0; i < workers; ++i) {
    t.ready += sh.w[i].ready.load();
    t.failed += sh.w[i].failed.load();
    t.dropped += sh.w[i].dropped.load();
    t.pings += sh.w[i].pings.load();
    t.msgs += sh.w[i].msgs.load();
    t.bad += sh.w[i].bad.load();
  }
  return t;
}

void reset_counters(shared_state& sh, int workers) {
  for (int i = 0; i < workers; ++i) {
    sh.w[i].ready = 0;
    sh.w[i].failed = 0;
    sh.w[i].dropped = 0;
    sh.w[i].pings = 0;
    sh.w[i].msgs = 0;
    sh.w[i].bad = 0;
  }
}

// Polls `done` every 20 ms until it holds or `limit` passes; returns whether it held.
bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds limit) {
  const auto end = steady::now() + limit;
  while (steady::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return done();
}

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(s * 1000))); }

void out(const char* key, double v) { std::printf("%s=%.6g\n", key, v); }
void out(const char* key, long long v) { std::printf("%s=%lld\n", key, v); }
void out(const char* key, const std::string& v) { std::printf("%s=%s\n", key, v.c_str()); }

}  // namespace

int main(int argc, char** argv) {
  const options o = parse_args(argc, argv);
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  const long per_proc = std::max<long>(100, static_cast<long>(rl.rlim_cur) - 64);
  int workers = o.workers > 0 ? o.workers : static_cast<int>((o.idle + per_proc - 1) / per_proc);
  workers = std::clamp(std::max(workers, o.echo_workers), 1, kMaxWorkers);
  const int echo_workers = std::min(o.echo_workers, workers);

  void* mem = mmap(nullptr, sizeof(shared_state), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* sh = new (mem) shared_state();
  std::fprintf(stderr, "[%s] %d worker process(es), nofile limit %ld per process\n", o.label.c_str(), workers,
               static_cast<long>(rl.rlim_cur));

  std::vector<pid_t> kids;
  for (int i = 0; i < workers; ++i) {
    const int idle_share = o.idle / workers + (i < o.idle % workers ? 1 : 0);
    const int echo_share = i < echo_workers ? o.echo_clients / echo_workers + (i < o.echo_clients % echo_workers ? 1 : 0) : 0;
    const pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the parent
      signal(SIGPIPE, SIG_IGN);
      auto* w = new worker(o, *sh, i, idle_share, echo_share);
      const int rc = w->run();
      std::_Exit(rc);
    }
    if (pid < 0) {
      std::perror("fork");
      sh->phase = p_exit;
      return 1;
    }
    kids.push_back(pid);
  }
  auto stop_workers = [&] {
    sh->phase = p_exit;
    for (auto k : kids) {
      int status = 0;
      for (int i = 0; i < 500 && waitpid(k, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(10ms);
      if (waitpid(k, &status, WNOHANG) == 0) {
        ::kill(k, SIGKILL);
        waitpid(k, &status, 0);
      }
    }
  };

  const int spid = o.server_pid;
  if (!alive(spid)) {
    std::fprintf(stderr, "server pid %d is not running\n", spid);
    stop_workers();
    return 1;
  }
  out("label", o.label);
  out("server_pid", static_cast<long long>(spid));
  out("server_nofile_limit", read_nofile_limit(spid));

  // ---------------- idle phase
  if (o.idle > 0) {
    const long rss0 = read_status_kb(spid, "VmRSS");
    const long fds0 = count_fds(spid);
    const double cpu0 = read_cpu_s(spid);
    std::fprintf(stderr, "[%s] idle: baseline VmRSS %ld kB, %ld fds; connecting %d clients\n", o.label.c_str(), rss0, fds0,
                 o.idle);
    const auto t0 = steady::now();
    sh->phase = p_idle_connect;
    // Until every client is ready or failed, or no handshake finished for stall_s, or the server
    // averaged under min_rate handshakes/s (it then "did not take N clients").
    const auto connect_limit =
        std::chrono::milliseconds(static_cast<long>(1000 * (o.connect_timeout_s + o.idle / o.min_connect_rate)));
    std::uint64_t last_done = 0;
    auto last_progress = steady::now();
    bool stalled = false;
    bool progress_ok = wait_for(
        [&] {
          auto t = sum(*sh, workers);
          const auto done = t.ready + t.failed;
          if (done != last_done) {
            last_done = done;
            last_progress = steady::now();
          } else if (steady::now() - last_progress > std::chrono::duration<double>(o.stall_s)) {
            stalled = true;
            return true;
          }
          return done >= static_cast<std::uint64_t>(o.idle) || !alive(spid);
        },
        connect_limit) && !stalled;
    const double connect_s = std::chrono::duration<double>(steady::now() - t0).count();
    auto t = sum(*sh, workers);
    std::fprintf(stderr, "[%s] idle: %" PRIu64 " ready, %" PRIu64 " failed in %.1f s%s\n", o.label.c_str(), t.ready, t.failed,
                 connect_s, progress_ok ? "" : " (connect phase timed out)");
    sleep_s(o.settle_s);
    const long rss1 = read_status_kb(spid, "VmRSS");
    const long fds1 = count_fds(spid);
    const double cpu1 = read_cpu_s(spid);
    const auto pings1 = sum(*sh, workers).pings;
    sleep_s(o.hold_s);
    const long rss2 = read_status_kb(spid, "VmRSS");
    const long fds2 = count_fds(spid);
    const double cpu2 = read_cpu_s(spid);
    t = sum(*sh, workers);
    const auto held = static_cast<long long>(t.ready - t.dropped);
    const double per_conn = held > 0 ? static_cast<double>(rss2 - rss0) * 1024.0 / static_cast<double>(held) : 0;
    const double per_conn_settle =
        t.ready > 0 ? static_cast<double>(rss1 - rss0) * 1024.0 / static_cast<double>(t.ready) : 0;
    out("idle_target", static_cast<long long>(o.idle));
    out("idle_connected", static_cast<long long>(t.ready));
    out("idle_failed", static_cast<long long>(t.failed));
    out("idle_dropped", static_cast<long long>(t.dropped));
    out("idle_held", held);
    out("idle_connect_s", connect_s);
    out("idle_rss0_kb", static_cast<long long>(rss0));
    out("idle_rss_settled_kb", static_cast<long long>(rss1));
    out("idle_rss_held_kb", static_cast<long long>(rss2));
    out("idle_fds0", static_cast<long long>(fds0));
    out("idle_fds_held", static_cast<long long>(fds2));
    out("idle_fds_settled", static_cast<long long>(fds1));
    out("idle_bytes_per_conn_settled", per_conn_settle);
    out("idle_bytes_per_conn", per_conn);
    out("idle_hold_s", o.hold_s);
    out("idle_hold_pings_per_s", static_cast<double>(t.pings - pings1) / o.hold_s);
    out("idle_hold_server_cpu_pct", 100.0 * (cpu2 - cpu1) / o.hold_s);
    out("idle_server_cpu_connect_s", cpu1 - cpu0);
    out("idle_bad_packets", static_cast<long long>(t.bad));
    std::fprintf(stderr, "[%s] idle: held %lld, VmRSS %ld -> %ld kB = %.0f B/conn, server CPU %.0f%% while holding\n",
                 o.label.c_str(), held, rss0, rss2, per_conn, 100.0 * (cpu2 - cpu1) / o.hold_s);
    sh->phase = p_idle_close;
    wait_for(
        [&] {
          for (int i = 0; i < workers; ++i)
            if (sh->w[i].phase_done.load() != p_idle_close) return false;
          return true;
        },
        30s);
    // Let the server notice the closes and free its sessions before the echo phase.
    wait_for([&] { return count_fds(spid) <= fds0 + 2 || !alive(spid); }, 30s);
    std::this_thread::sleep_for(1s);
  }
  if (!alive(spid)) {
    std::fprintf(stderr, "[%s] server died\n", o.label.c_str());
    out("server_died", 1LL);
    stop_workers();
    return 1;
  }
  reset_counters(*sh, workers);

  // ---------------- echo phase
  if (o.echo_clients > 0) {
    sh->phase = p_echo_connect;
    const bool ok = wait_for(
        [&] {
          auto t = sum(*sh, workers);
          return t.ready + t.failed >= static_cast<std::uint64_t>(o.echo_clients);
        },
        std::chrono::milliseconds(static_cast<long>(1000 * (o.connect_timeout_s + 30))));
    auto t = sum(*sh, workers);
    std::fprintf(stderr, "[%s] echo: %" PRIu64 " clients ready, %" PRIu64 " failed%s; warm-up %.1f s, measuring %.1f s\n",
                 o.label.c_str(), t.ready, t.failed, ok ? "" : " (timed out)", o.warmup_s, o.echo_s);
    sleep_s(o.warmup_s);
    auto client_cpu = [&] {
      double c = 0;
      for (auto k : kids) c += read_cpu_s(k);
      return c;
    };
    const double ccpu0 = client_cpu();
    const double cpu0 = read_cpu_s(spid);
    const double sys0 = read_cpu_s(spid, 2);
    const long rss0 = read_status_kb(spid, "VmRSS");
    const auto t0 = steady::now();
    sh->measuring = 1;
    sleep_s(o.echo_s);
    sh->measuring = 0;
    const double wall = std::chrono::duration<double>(steady::now() - t0).count();
    const double cpu1 = read_cpu_s(spid);
    const double sys1 = read_cpu_s(spid, 2);
    const double ccpu1 = client_cpu();
    const long rss1 = read_status_kb(spid, "VmRSS");
    sh->phase = p_echo_stop;
    wait_for(
        [&] {
          for (int i = 0; i < workers; ++i)
            if (sh->w[i].phase_done.load() != p_echo_stop) return false;
          return true;
        },
        30s);
    t = sum(*sh, workers);
    std::vector<std::uint64_t> hist(kBuckets, 0);
    for (int i = 0; i < workers; ++i)
      for (std::size_t b = 0; b < kBuckets; ++b) hist[b] += sh->w[i].hist[b];
    std::uint64_t total = 0;
    for (auto h : hist) total += h;
    auto pct = [&](double q) -> double {
      if (total == 0) return 0;
      const auto target = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
      std::uint64_t acc = 0;
      for (std::size_t b = 0; b < kBuckets; ++b) {
        acc += hist[b];
        if (acc >= target) return static_cast<double>(value_of(b));
      }
      return static_cast<double>(value_of(kBuckets - 1));
    };
    const double cpu = cpu1 - cpu0;
    const double rate = static_cast<double>(t.msgs) / wall;
    out("echo_event", std::string(o.ack_mode ? "message-with-ack" : "message"));
    out("echo_clients", static_cast<long long>(o.echo_clients));
    out("echo_clients_ready", static_cast<long long>(t.ready));
    out("echo_dropped", static_cast<long long>(t.dropped));
    out("echo_payload_bytes", static_cast<long long>(o.payload));
    out("echo_seconds", wall);
    out("echo_msgs", static_cast<long long>(t.msgs));
    out("echo_msgs_per_s", rate);
    out("echo_p50_us", pct(0.50));
    out("echo_p90_us", pct(0.90));
    out("echo_p99_us", pct(0.99));
    out("echo_p999_us", pct(0.999));
    out("echo_max_us", pct(1.0));
    out("echo_server_cpu_s", cpu);
    out("echo_server_cpu_pct", 100.0 * cpu / wall);
    out("echo_server_sys_share_pct", cpu > 0 ? 100.0 * (sys1 - sys0) / cpu : 0);
    out("echo_server_cpu_us_per_msg", t.msgs > 0 ? 1e6 * cpu / static_cast<double>(t.msgs) : 0);
    out("echo_msgs_per_server_cpu_s", cpu > 0 ? static_cast<double>(t.msgs) / cpu : 0);
    out("echo_client_cpu_pct", 100.0 * (ccpu1 - ccpu0) / wall);
    out("echo_server_rss_kb", static_cast<long long>(std::max(rss0, rss1)));
    out("echo_bad_packets", static_cast<long long>(t.bad));
    std::fprintf(stderr, "[%s] echo: %.0f msgs/s, p50 %.0f us, p99 %.0f us, server CPU %.2f s -> %.0f msgs/CPU-s\n",
                 o.label.c_str(), rate, pct(0.5), pct(0.99), cpu, cpu > 0 ? static_cast<double>(t.msgs) / cpu : 0);
  }
  long ping_interval = -1, ping_timeout = -1;
  for (int i = 0; i < workers; ++i) {
    ping_interval = std::max(ping_interval, sh->w[i].ping_interval_ms.load());
    ping_timeout = std::max(ping_timeout, sh->w[i].ping_timeout_ms.load());
  }
  out("ping_interval_ms", static_cast<long long>(ping_interval));
  out("ping_timeout_ms", static_cast<long long>(ping_timeout));
  stop_workers();
  std::fflush(stdout);
  return 0;
}
