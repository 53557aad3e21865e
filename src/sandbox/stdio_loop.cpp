#include "stdio_loop.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <grp.h>
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
  int stdin_fd = -1;      // write end while stdin_data is being fed
  std::string stdin_data;
  std::size_t stdin_written = 0;
  std::string text[2];
  std::size_t total[2] = {0, 0};
  bool truncated[2] = {false, false};
  std::size_t cap = 0;
  clock::time_point start, deadline;
  std::optional<clock::time_point> exited_at;
  int status = 0;
  bool timed_out = false;
  bool killed = false;

  bool pipes_open() const { return fds[0] >= 0 || fds[1] >= 0; }
  void close_pipes() {
    for (int* fd : {&fds[0], &fds[1], &stdin_fd})
      if (*fd >= 0) {
        ::close(*fd);
        *fd = -1;
      }
  }
  void kill_group() {
    if (!exited_at && pid > 0) ::kill(-pid, SIGKILL);
    killed = true;
  }
};

}  // namespace

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

namespace {

// fork + exec /bin/sh -c, as the user when there is one. Returns an error text on failure.
std::string spawn(job& j, const command_request& req, const loop_options& opts) {
  int out[2], err[2], in[2] = {-1, -1};
  if (::pipe2(out, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  if (::pipe2(err, O_CLOEXEC) != 0 || (!req.stdin_data.empty() && ::pipe2(in, O_CLOEXEC) != 0)) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], in[0], in[1]})
      if (fd >= 0) ::close(fd);
    return std::string("pipe: ") + std::strerror(e);
  }
  const char* cmd = req.command.c_str();
  const char* dir = opts.workdir.c_str();
  const bool as_user = opts.user.has_value();
  const uid_t uid = as_user ? opts.user->uid : 0;
  const gid_t gid = as_user ? opts.user->gid : 0;
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], in[0], in[1]})
      if (fd >= 0) ::close(fd);
    return std::string("fork: ") + std::strerror(e);
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only.
    ::setpgid(0, 0);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int input = in[0] >= 0 ? in[0] : ::open("/dev/null", O_RDONLY);
    if (input >= 0) ::dup2(input, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    // Every id at once, groups first: a non-root uid has no capabilities left, so nothing of the
    // server's is reachable from here (no signals, no ptrace, no /proc/<server>/fd).
    // (Root's effective id first: where the server acts as the user through its effective ids,
    // main.cpp's act_as, setgroups needs it back.)
    if (as_user && (::seteuid(0) != 0 || ::setgroups(1, &gid) != 0 || ::setresgid(gid, gid, gid) != 0 ||
                    ::setresuid(uid, uid, uid) != 0)) {
      static constexpr char msg[] = "berth-sandbox: cannot switch to the sandbox user\n";
      (void)!::write(2, msg, sizeof msg - 1);
      _exit(126);
    }
    if (::chdir(dir) != 0) _exit(126);
    ::execl("/bin/sh", "sh", "-c", cmd, static_cast<char*>(nullptr));
    _exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so a kill right away reaches the group
  ::close(out[1]);
  ::close(err[1]);
  if (in[0] >= 0) ::close(in[0]);
  for (int fd : {out[0], err[0], in[1]})
    if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  j.id = req.id;
  j.pid = pid;
  j.fds[0] = out[0];
  j.fds[1] = err[0];
  j.stdin_fd = in[1];
  j.stdin_data = req.stdin_data;
  j.cap = req.output_cap;
  j.start = clock::now();
  j.deadline = j.start + req.timeout;
  return {};
}

// Feeds stdin_data as the pipe takes it; closes the pipe when all is written or the reader left.
void feed_stdin(job& j) {
  while (j.stdin_fd >= 0 && j.stdin_written < j.stdin_data.size()) {
    const ssize_t n = ::write(j.stdin_fd, j.stdin_data.data() + j.stdin_written, j.stdin_data.size() - j.stdin_written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;
    j.stdin_written += static_cast<std::size_t>(n);
  }
  if (j.stdin_fd >= 0) ::close(j.stdin_fd);
  j.stdin_fd = -1;
  j.stdin_data = std::string();
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
  j.total[which] += static_cast<std::size_t>(n);
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
  r.stdout_total = j.total[0];
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(now - j.start);
  return r;
}

// berth/reset: every command is killed with its group and dropped (the fsm answers for them), then
// the user's traces are scrubbed. Without a user to scrub for, the reset reports a problem.
scrub_report reset_sandbox(std::list<job>& jobs, const loop_options& opts) {
  for (auto& j : jobs) j.kill_group();
  scrub_report report;
  if (opts.user) {
    report = scrub_user(*opts.user);
  } else {
    report.problems.push_back("berth-sandbox runs without --user: commands share its uid, so no scrub can vouch for it");
  }
  for (auto& j : jobs) {
    j.close_pipes();
    if (!j.exited_at) ::waitpid(j.pid, nullptr, 0);  // SIGKILLed above: returns at once
  }
  jobs.clear();
  return report;
}

}  // namespace

int run_stdio_loop(server_fsm& fsm, const loop_options& opts, int in_fd, int out_fd) {
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
  std::uint64_t resets = 0;  // a reset drops every job: the pollfds of this round point at none of them

  auto emit = [&](const std::string& line) {
    if (!line.empty() && stdout_ok) stdout_ok = write_all(out_fd, line);
  };
  auto apply = [&](server_fsm::actions&& a) {
    for (const auto& l : a.lines) emit(l);
    if (a.cancel) {
      for (auto& j : jobs)
        if (j.id == *a.cancel) j.kill_group();
    }
    if (a.reset) {
      ++resets;
      const auto report = reset_sandbox(jobs, opts);
      for (const auto& l : fsm.on_reset_done(*a.reset, report)) emit(l);
    }
    if (a.start) {
      job j;
      auto err = spawn(j, *a.start, opts);
      if (!err.empty()) {
        command_result r;
        r.spawn_error = std::move(err);
        emit(fsm.on_command_finished(a.start->id, r));
      } else {
        jobs.push_back(std::move(j));
        feed_stdin(jobs.back());
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
    for (auto& j : jobs) {
      for (int w = 0; w < 2; ++w)
        if (j.fds[w] >= 0) {
          pfds.push_back({j.fds[w], POLLIN, 0});
          owners.emplace_back(&j, w);
        }
      if (j.stdin_fd >= 0) {
        pfds.push_back({j.stdin_fd, POLLOUT, 0});
        owners.emplace_back(&j, 2);
      }
    }
    const int rc = ::poll(pfds.data(), pfds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) break;
    const auto resets_before = resets;

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
    if (resets != resets_before) continue;
    for (std::size_t i = 2; i < pfds.size(); ++i)
      if ((pfds[i].revents & (POLLIN | POLLOUT | POLLHUP | POLLERR)) != 0) {
        auto [j, w] = owners[i - 2];
        if (w == 2) feed_stdin(*j);
        else if (j->fds[w] >= 0) read_pipe(*j, w);
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
