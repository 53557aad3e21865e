#pragma once
// Test helper: a real `redis-server` on 127.0.0.1 (free port) in a private temp dir, with
// persistence off (--save '' --appendonly no). start() waits until it answers PING; stop() /
// start() restart it on the same port (and unix socket) so reconnect paths can be tested.
// Header-only, no Asio (plain POSIX), usable from any test or bench.
// Also runs replicas (extra_args {"--replicaof", "127.0.0.1", port}) and sentinels
// (sentinel_conf: the `sentinel ...` lines; port, bind and dir are added).
// Lifetime: the destructor stops the server and removes the temp dir. Not thread-safe.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace berth::test {

struct redis_server_options {
  std::string password;        // --requirepass when set
  bool unix_socket = false;    // also listen on <dir>/redis.sock
  int databases = 16;
  std::string binary = "redis-server";
  std::chrono::milliseconds start_timeout{10000};
  std::vector<std::string> extra_args{};  // appended to the command line
  std::string sentinel_conf{};          // non-empty: run `<binary> <conf>` as a sentinel (binary
                                        // redis-sentinel, or redis-server with --sentinel added)
};

class redis_server {
 public:
  explicit redis_server(redis_server_options opts = {}) : opts_(std::move(opts)) {
    char tmpl[] = "/tmp/berth-redis-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("redis_server: mkdtemp failed");
    dir_ = tmpl;
    start();
  }
  ~redis_server() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  redis_server(const redis_server&) = delete;
  redis_server& operator=(const redis_server&) = delete;

  std::uint16_t port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::string unix_path() const { return dir_ + "/redis.sock"; }
  bool running() const { return pid_ > 0; }
  // redis://[:password@]127.0.0.1:port[/db]
  std::string url(int db = 0) const {
    std::string u = "redis://";
    if (!opts_.password.empty()) u += ":" + opts_.password + "@";
    u += "127.0.0.1:" + std::to_string(port_);
    if (db) u += "/" + std::to_string(db);
    return u;
  }
  std::string unix_url(int db = 0) const {
    std::string u = "unix://";
    if (!opts_.password.empty()) u += ":" + opts_.password + "@";
    return u + unix_path() + "?db=" + std::to_string(db);
  }

  // Starts (or restarts on the same port) and waits for PING. Throws on failure (a test bug or
  // a broken machine, not a condition under test).
  void start() {
    if (pid_ > 0) return;
    for (int attempt = 0; attempt < 5; ++attempt) {
      if (port_ == 0 || attempt > 0) {
        if (fixed_port_) {
          if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));  // port in TIME_WAIT/releasing
        } else {
          port_ = free_port();
        }
      }
      spawn();
      if (wait_ready()) {
        fixed_port_ = true;  // restarts reuse this port
        return;
      }
      kill_child();
    }
    throw std::runtime_error("redis_server: could not start redis-server; see " + dir_ + "/redis.log");
  }

  // SIGTERM, wait for exit (SIGKILL after 5 s).
  void stop() { kill_child(); }
  // SIGKILL at once (a crash: no shutdown, no goodbye to replicas or clients), then reap.
  void crash() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  void restart() {
    stop();
    start();
  }

  // One raw command over a fresh blocking socket, for test set-up/inspection ("DBSIZE").
  // Returns the raw RESP reply text.
  std::string raw_command(const std::vector<std::string>& args) const {
    int fd = connect_tcp();
    if (fd < 0) throw std::runtime_error("redis_server: connect failed");
    std::string req;
    if (!opts_.password.empty()) req += encode({"AUTH", opts_.password});
    req += encode(args);
    send_all(fd, req);
    std::string out = read_some(fd, opts_.password.empty() ? 1 : 2);
    ::close(fd);
    if (!opts_.password.empty()) out = out.substr(out.find("\r\n") + 2);
    return out;
  }

 private:
  static std::string encode(const std::vector<std::string>& args) {
    // append(), not "lit" + str: GCC 12 -O3 warns falsely (-Wstringop-overflow) on the latter.
    std::string s;
    s.append("*").append(std::to_string(args.size())).append("\r\n");
    for (const auto& a : args) s.append("$").append(std::to_string(a.size())).append("\r\n").append(a).append("\r\n");
    return s;
  }
  static void send_all(int fd, const std::string& s) {
    std::size_t off = 0;
    while (off < s.size()) {
      auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<std::size_t>(n);
    }
  }
  // Reads until `lines` CRLF-terminated top-level lines arrived or 2 s passed (simple replies only).
  static std::string read_some(int fd, int lines) {
    std::string out;
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4096];
    for (int i = 0; i < 1000; ++i) {
      int seen = 0;
      for (std::size_t p = 0; (p = out.find("\r\n", p)) != std::string::npos; p += 2) ++seen;
      if (seen >= lines) break;
      auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

  static std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("redis_server: no free port");
    }
    ::close(fd);
    return ntohs(a.sin_port);
  }

  int connect_tcp() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  void spawn() {
    if (!opts_.sentinel_conf.empty()) return spawn_args(sentinel_args());
    std::vector<std::string> args = {opts_.binary,  "--port",       std::to_string(port_), "--bind", "127.0.0.1",
                                     "--save",      "",             "--appendonly",        "no",     "--dir",
                                     dir_,          "--logfile",    dir_ + "/redis.log",   "--daemonize", "no",
                                     "--databases", std::to_string(opts_.databases), "--protected-mode", "no"};
    if (!opts_.password.empty()) {
      args.push_back("--requirepass");
      args.push_back(opts_.password);
    }
    if (opts_.unix_socket) {
      args.push_back("--unixsocket");
      args.push_back(unix_path());
      args.push_back("--unixsocketperm");
      args.push_back("700");
    }
    for (const auto& a : opts_.extra_args) args.push_back(a);
    spawn_args(std::move(args));
  }

  // A sentinel needs a writable config file (it records what it learns there). Written once:
  // a restarted sentinel keeps what it knew, as a real one does.
  std::vector<std::string> sentinel_args() {
    const auto conf = dir_ + "/sentinel.conf";
    if (!fixed_port_ || !std::filesystem::exists(conf)) {  // (re)written until it first started
      std::ofstream f(conf);
      f << "port " << port_ << "\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir " << dir_ << "\nlogfile "
        << dir_ << "/redis.log\n"
        << opts_.sentinel_conf << "\n";
    }
    if (opts_.binary == "redis-sentinel") return {opts_.binary, conf};  // Debian's redis-sentinel package
    return {opts_.binary, conf, "--sentinel"};
  }

  void spawn_args(std::vector<std::string> args) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("redis_server: fork failed");
    if (pid == 0) {
      ::execvp(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;
  }

  // Polls PING (any answer counts, NOAUTH included) every 10 ms until start_timeout.
  bool wait_ready() {
    const auto deadline = std::chrono::steady_clock::now() + opts_.start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;  // exited (port taken?)
      }
      int fd = connect_tcp();
      if (fd >= 0) {
        send_all(fd, encode({"PING"}));
        std::string r = read_some(fd, 1);
        ::close(fd);
        if (r.starts_with("+PONG") || r.starts_with("-NOAUTH")) {
          if (!opts_.unix_socket || std::filesystem::exists(unix_path())) return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  void kill_child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
  }

  redis_server_options opts_;
  std::string dir_;
  std::uint16_t port_ = 0;
  bool fixed_port_ = false;
  pid_t pid_ = -1;
};

}  // namespace berth::test
