#include "supervise.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>

#include "berth/mcp/jsonrpc.hpp"
#include "stdio_loop.hpp"

namespace berth::sandbox {

namespace {

volatile sig_atomic_t child_pid = 0;
volatile sig_atomic_t stop_signal = 0;

// docker stop (SIGTERM to the container's PID 1, this process) ends the server, then the supervisor.
void forward(int sig) {
  stop_signal = sig;
  if (child_pid > 0) ::kill(child_pid, sig);
}

// More exits than this within the window: the server cannot run here; let the container die.
constexpr std::size_t max_exits = 5;
constexpr long window_ms = 10000;
constexpr long restart_delay_ms = 100;

long now_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

int supervise(char** argv) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no core dumps, no /proc access by other uids
  struct sigaction sa {};
  sa.sa_handler = forward;
  ::sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) ::sigaction(sig, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  std::deque<long> exits;
  for (;;) {
    const pid_t pid = ::fork();
    if (pid < 0) {
      std::fprintf(stderr, "berth-sandbox supervise: fork: %s\n", std::strerror(errno));
      return 1;
    }
    if (pid == 0) {
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGPIPE}) ::sigaction(sig, &dfl, nullptr);
      ::execv(argv[0], argv);
      std::fprintf(stderr, "berth-sandbox supervise: %s: %s\n", argv[0], std::strerror(errno));
      _exit(127);
    }
    child_pid = pid;
    if (stop_signal != 0) ::kill(pid, stop_signal);  // it came before child_pid was set
    // As the container's PID 1 it also reaps the orphans the user leaves (a double-forked daemon,
    // the scrub's victims): wait for any child until the server is the one that exited.
    int status = 0;
    for (;;) {
      const pid_t done = ::waitpid(-1, &status, 0);
      if (done == pid || (done < 0 && errno == ECHILD)) break;
    }
    child_pid = 0;
    if (stop_signal != 0) return 0;
    const long t = now_ms();
    exits.push_back(t);
    while (!exits.empty() && exits.front() < t - window_ms) exits.pop_front();
    if (exits.size() > max_exits) {
      std::fprintf(stderr, "berth-sandbox supervise: the server exited %zu times in %ld ms; giving up\n", exits.size(),
                   window_ms);
      return 1;
    }
    // The leading newline ends whatever line the server was writing when it died.
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    const int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    // Nobody may be attached to read it: the notice is only a courtesy, its failure is ignored.
    (void)write_all(STDOUT_FILENO, "\n" + mcp::make_notification(mcp::server_restarted_method,
                                                                   nlohmann::json{{"exitCode", code}, {"signal", sig}}));
    const timespec delay{0, restart_delay_ms * 1000000};
    ::nanosleep(&delay, nullptr);
  }
}

}  // namespace berth::sandbox
