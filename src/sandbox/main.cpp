// berth-sandbox: the MCP stdio server that runs inside each sandbox container.
// Usage: berth-sandbox mcp [--root DIR] [--output-cap BYTES] [--max-timeout-ms MS] [--user UID:GID [--scrub DIR]...]
//        berth-sandbox supervise CMD [ARG...]   (the container's main process; supervise.hpp)
#include <grp.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <utility>
#include <vector>
#include <cstdio>
#include <string>
#include <string_view>

#include "berth/sandbox/server.hpp"
#include "stdio_loop.hpp"
#include "supervise.hpp"

namespace {

constexpr std::string_view usage =
    "usage: berth-sandbox mcp [--root DIR] [--output-cap BYTES] [--max-timeout-ms MS] [--user UID:GID [--scrub DIR]...]\n"
    "  Serves the Model Context Protocol over stdin/stdout (newline-delimited JSON-RPC 2.0).\n"
    "  Tools: list_files, read_file, write_file, run_command. Default root: /workspace.\n"
    "  --user: run as root in the container, commands and file tools as UID:GID; berth/reset then\n"
    "  scrubs that user's processes, IPC objects and the --scrub directories (default: the root,\n"
    "  /tmp, /dev/shm, /dev/mqueue).\n"
    "usage: berth-sandbox supervise CMD [ARG...]\n"
    "  Runs CMD on this process's stdin/stdout and starts it again when it exits, after a\n"
    "  notifications/berth/server_restarted line (the sandbox container's main process).\n";

bool parse_size(std::string_view s, std::size_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out > 0;
}

// "1000:1000" -> {1000, 1000}; uid 0 is refused (it would make the scrub meaningless).
std::optional<std::pair<uid_t, gid_t>> parse_user(std::string_view s) {
  const auto colon = s.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::size_t uid = 0, gid = 0;
  if (!parse_size(s.substr(0, colon), uid) || !parse_size(s.substr(colon + 1), gid)) return std::nullopt;
  return std::make_pair(static_cast<uid_t>(uid), static_cast<gid_t>(gid));
}

// The server's file system identity becomes the user's, its other ids stay root's (so the
// user's processes still cannot signal or trace it). The fsuid where the kernel has it; gVisor
// (runsc) does not implement setfsuid, so there the effective ids become the user's, the saved
// ones stay root: a command's child takes root's effective id back before it drops every id
// (stdio_loop), and nothing else here needs a capability the user lacks.
bool act_as(uid_t uid, gid_t gid) {
  ::setfsgid(gid);
  ::setfsuid(uid);
  if (static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) == uid) return true;
  if (::setgroups(1, &gid) != 0 || ::setresgid(static_cast<gid_t>(-1), gid, static_cast<gid_t>(-1)) != 0 ||
      ::setresuid(static_cast<uid_t>(-1), uid, static_cast<uid_t>(-1)) != 0)
    return false;
  return ::geteuid() == uid && ::getegid() == gid;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "berth-sandbox: %s\n%.*s", msg.c_str(), static_cast<int>(usage.size()), usage.data());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fwrite(usage.data(), 1, usage.size(), stdout);
    return 0;
  }
  if (argc >= 2 && std::string_view(argv[1]) == "--version") {
    std::puts("berth-sandbox 0.1.0");
    return 0;
  }
  if (argc >= 2 && std::string_view(argv[1]) == "supervise") {
    if (argc < 3) return fail("supervise: expected the command to run");
    return berth::sandbox::supervise(argv + 2);
  }
  if (argc < 2 || std::string_view(argv[1]) != "mcp") return fail("expected the subcommand \"mcp\" or \"supervise\"");
  std::string root = "/workspace";
  std::string user_arg;
  std::vector<std::string> extra_scrub;
  berth::sandbox::server_options opts;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) return fail("missing value after " + std::string(a));
    const std::string_view v = argv[++i];
    std::size_t n = 0;
    if (a == "--root") {
      root = std::string(v);
    } else if (a == "--output-cap") {
      if (!parse_size(v, n)) return fail("--output-cap: expected a positive integer, got " + std::string(v));
      opts.output_cap = n;
    } else if (a == "--user") {
      user_arg = std::string(v);
    } else if (a == "--scrub") {
      extra_scrub.emplace_back(v);
    } else if (a == "--max-timeout-ms") {
      if (!parse_size(v, n)) return fail("--max-timeout-ms: expected a positive integer, got " + std::string(v));
      opts.max_timeout = std::chrono::milliseconds(static_cast<long long>(n));
      opts.default_timeout = std::min(opts.default_timeout, opts.max_timeout);
    } else {
      return fail("unknown option " + std::string(a));
    }
  }
  std::optional<berth::sandbox::scrub_options> user;
  if (!user_arg.empty()) {
    auto parsed = parse_user(user_arg);
    if (!parsed) return fail("--user: expected UID:GID with non-zero numbers, got " + user_arg);
    // Root in the container, with CAP_SETUID, CAP_SETGID and CAP_KILL only (the pool's container
    // spec): the user's commands then run under another uid and cannot reach this process.
    if (::geteuid() != 0) return fail("--user needs the server to start as root in the container");
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    // File tools create and read as the user (owner of /workspace), never as root.
    if (!act_as(parsed->first, parsed->second))
      return fail("cannot act as uid " + std::to_string(parsed->first) + " (CAP_SETUID missing?)");
    user.emplace();
    user->uid = parsed->first;
    user->gid = parsed->second;
    user->paths = extra_scrub.empty() ? std::vector<std::string>{root, "/tmp", "/dev/shm", "/dev/mqueue"} : extra_scrub;
    user->workspace = root;
  }
  auto ws = berth::sandbox::workspace::open(root);
  if (auto* err = std::get_if<std::string>(&ws)) return fail(*err);
  const std::string workdir = std::get<berth::sandbox::workspace>(ws).root();
  berth::sandbox::server_fsm fsm(std::move(std::get<berth::sandbox::workspace>(ws)), opts);
  return berth::sandbox::run_stdio_loop(fsm, berth::sandbox::loop_options{workdir, std::move(user)}, STDIN_FILENO,
                                        STDOUT_FILENO);
}
