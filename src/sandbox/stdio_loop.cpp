#include "stdio_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <optional>

#include "berth/mcp/jsonrpc.hpp"

namespace berth::sandbox {

namespace {

using clock = std::chrono::steady_clock;

// After the shell exits, wait this long for background children that still hold the pipes, then
// stop reading (they get SIGPIPE if they keep writing).
constexpr auto exit_grace = std::chrono::milliseconds(200);
constexpr std::size_t read_chunk = 64u * 1024u;

struct job {
  nlohmann::json id;
  pid_t pid = -1;
  int fds[2] = {-1, -1};  // stdout, stderr read ends; -1 once closed
  std::string text[2];
  bool truncated[2] = {false, false};
  std::size_t cap = 0;
  clock::time_point start, deadline;
  std::optional<clock::time_point> exited_at;
  int status = 0;
  bool timed_out = false;
  bool killed = false;

  bool pipes_open() const { return fds[0] >= 0 || fds[1] >= 0; }
  void close_pipes() {
    for (int& fd : fds)
      if (fd >= 0) {
        ::close(fd);
        fd = -1;
      }
  }
  void kill_group() {
    if (!exited_at && pid > 0) ::kill(-pid, SIGKILL);
    killed = true;
  }
};

bool write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t n = ::write(fd, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      ::poll(&p, 1, 1000);
      continue;
    }
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// fork + exec /bin/sh -c. Returns an error text on failure.
std::string spawn(job& j, const command_request& req, const std::string& workdir) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    return std::string("pipe: ") + std::strerror(errno);
  }
  const char* cmd = req.command.c_str();
  const char* dir = workdir.c_str();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    return std::string("fork: ") + std::strerror(e);
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setpgid(0, 0);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    if (::chdir(dir) != 0) _exit(126);
    ::execl("/bin/sh", "sh", "-c", cmd, static_cast<char*>(nullptr));
    _exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so a kill right away reaches the group
  ::close(out[1]);
  ::close(err[1]);
  for (int fd : {out[0], err[0]}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  j.id = req.id;
  j.pid = pid;
  j.fds[0] = out[0];
  j.fds[1] = err[0];
  j.cap = req.output_cap;
  j.start = clock::now();
  j.deadline = j.start + req.timeout;
  return {};
}

void read_pipe(job& j, int which) {
  char buf[read_chunk];
  const ssize_t n = ::read(j.fds[which], buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  if (n <= 0) {
    ::close(j.fds[which]);
    j.fds[which] = -1;
    return;
  }
  auto& t = j.text[which];
  const auto room = j.cap > t.size() ? j.cap - t.size() : 0;
  const auto take = std::min(room, static_cast<std::size_t>(n));
  t.append(buf, take);
  // Keep draining past the cap so the command never blocks on a full pipe.
  if (take < static_cast<std::size_t>(n)) j.truncated[which] = true;
}

command_result to_result(const job& j, clock::time_point now) {
  command_result r;
  r.timed_out = j.timed_out;
  if (WIFEXITED(j.status)) r.exit_code = WEXITSTATUS(j.status);
  if (WIFSIGNALED(j.status)) r.signal = WTERMSIG(j.status);
  r.stdout_text = j.text[0];
  r.stderr_text = j.text[1];
  r.stdout_truncated = j.truncated[0];
  r.stderr_truncated = j.truncated[1];
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now - j.start);
  return r;
}

}  // namespace

int run_stdio_loop(server_fsm& fsm, const std::string& workdir, int in_fd, int out_fd) {
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld;
  ::sigemptyset(&chld);
  ::sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  const int sig_fd = ::signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sig_fd < 0) {
    const std::string msg = std::string("berth-sandbox: signalfd: ") + std::strerror(errno) + "\n";
    write_all(2, msg);
    return 1;
  }

  mcp::line_decoder decoder;
  std::list<job> jobs;
  bool stdin_open = true;
  bool stdout_ok = true;

  auto emit = [&](const std::string& line) {
    if (!line.empty() && stdout_ok) stdout_ok = write_all(out_fd, line);
  };
  auto apply = [&](server_fsm::actions&& a) {
    for (const auto& l : a.lines) emit(l);
    if (a.cancel) {
      for (auto& j : jobs)
        if (j.id == *a.cancel) j.kill_group();
    }
    if (a.start) {
      job j;
      auto err = spawn(j, *a.start, workdir);
      if (!err.empty()) {
        command_result r;
        r.spawn_error = std::move(err);
        emit(fsm.on_command_finished(a.start->id, r));
      } else {
        jobs.push_back(std::move(j));
      }
    }
  };

  std::vector<pollfd> pfds;
  std::vector<std::pair<job*, int>> owners;  // for pfds[2..]
  while (stdout_ok && (stdin_open || !jobs.empty())) {
    const auto now = clock::now();
    // Timers: timeouts and the post-exit grace.
    std::optional<clock::time_point> wake;
    auto at = [&](clock::time_point t) { wake = wake ? std::min(*wake, t) : t; };
    for (auto& j : jobs) {
      if (!j.exited_at && !j.killed) at(j.deadline);
      if (j.exited_at && j.pipes_open()) at(*j.exited_at + exit_grace);
    }
    int timeout_ms = -1;
    if (wake) {
      const auto d = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(d, 0, 60000));
    }
    pfds.clear();
    owners.clear();
    pfds.push_back({stdin_open ? in_fd : -1, POLLIN, 0});
    pfds.push_back({sig_fd, POLLIN, 0});
    for (auto& j : jobs)
      for (int w = 0; w < 2; ++w)
        if (j.fds[w] >= 0) {
          pfds.push_back({j.fds[w], POLLIN, 0});
          owners.emplace_back(&j, w);
        }
    const int rc = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) break;

    if (rc > 0 && (pfds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      char buf[read_chunk];
      const ssize_t n = ::read(in_fd, buf, sizeof buf);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        // End of input (MCP stdio shutdown): answer what is still running (each bounded by its
        // timeout), then exit. A client that is really gone makes the next write fail.
        stdin_open = false;
      } else if (n > 0) {
        decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        while (auto item = decoder.next()) {
          apply(item->too_long ? fsm.on_line_too_long(item->dropped_bytes) : fsm.on_line(item->line));
        }
      }
    }
    for (std::size_t i = 2; i < pfds.size(); ++i)
      if ((pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        auto [j, w] = owners[i - 2];
        if (j->fds[w] >= 0) read_pipe(*j, w);
      }
    if (rc > 0 && (pfds[1].revents & POLLIN) != 0) {
      signalfd_siginfo si;
      while (::read(sig_fd, &si, sizeof si) > 0) {
      }
    }
    // Reap (cheap: a handful of jobs at most). Also covers a SIGCHLD that raced the poll.
    const auto after = clock::now();
    for (auto& j : jobs) {
      if (!j.exited_at) {
        int st = 0;
        if (::waitpid(j.pid, &st, WNOHANG) == j.pid) {
          j.status = st;
          j.exited_at = after;
        } else if (!j.killed && after >= j.deadline) {
          j.timed_out = true;
          j.kill_group();
        }
      }
      if (j.exited_at && j.pipes_open() && after >= *j.exited_at + exit_grace) j.close_pipes();
    }
    for (auto it = jobs.begin(); it != jobs.end();) {
      if (it->exited_at && !it->pipes_open()) {
        emit(fsm.on_command_finished(it->id, to_result(*it, after)));
        it = jobs.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& j : jobs) {
    j.kill_group();
    j.close_pipes();
    if (!j.exited_at) ::waitpid(j.pid, nullptr, 0);
  }
  ::close(sig_fd);
  return stdout_ok ? 0 : 1;
}

}  // namespace berth::sandbox
