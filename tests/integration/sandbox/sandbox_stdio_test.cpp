// berth-sandbox as a child process, spoken to with the MCP client core: every exchange is bounded
// by a deadline and waits on the child's output (poll), never on a sleep.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "berth/mcp/client_fsm.hpp"

using namespace berth::mcp;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr auto io_deadline = 15s;  // generous bound per exchange; never reached when things work

std::string make_temp_dir() {
  std::string tmpl = "/tmp/berth-sandbox-it-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

// The child process and its pipes.
class sandbox_child {
 public:
  // supervised: under `berth-sandbox supervise`, as the sandbox container runs it.
  explicit sandbox_child(const std::vector<std::string>& extra_args, bool supervised = false) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) std::abort();
    std::vector<std::string> args{BERTH_SANDBOX_BIN, "mcp"};
    if (supervised) args.insert(args.begin(), {BERTH_SANDBOX_BIN, "supervise"});
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_child_ = in[1];
    from_child_ = out[0];
  }
  ~sandbox_child() {
    close_stdin();
    if (from_child_ >= 0) ::close(from_child_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  void write(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::write(to_child_, s.data(), s.size());
      if (n < 0 && errno == EINTR) continue;
      ASSERT_GT(n, 0) << std::strerror(errno);
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // Reads what is available within `wait`; "" on timeout, nullopt on EOF.
  std::optional<std::string> read_some(std::chrono::milliseconds wait) {
    pollfd p{from_child_, POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(wait.count()));
    if (rc <= 0) return std::string();
    char buf[65536];
    const ssize_t n = ::read(from_child_, buf, sizeof buf);
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }
  void close_stdin() {
    if (to_child_ >= 0) ::close(to_child_);
    to_child_ = -1;
  }
  pid_t pid() const noexcept { return pid_; }
  // Waits (bounded) for exit; returns the exit status or -1.
  int wait_exit(std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      // Draining stdout until EOF is the event that precedes exit.
      auto r = read_some(100ms);
      if (!r) break;
    }
    for (int i = 0; i < 1000; ++i) {
      int st = 0;
      const pid_t p = ::waitpid(pid_, &st, WNOHANG);
      if (p == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      }
      pollfd none{-1, 0, 0};
      ::poll(&none, 0, 5);  // bounded reap wait after EOF (the exit itself is the event)
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int to_child_ = -1, from_child_ = -1;
  bool reaped_ = false;
};

struct sandbox_fixture : ::testing::Test {
  bool supervised = false;
  std::string root;
  std::string outside;
  std::unique_ptr<sandbox_child> child;
  client_fsm client;
  std::vector<client_event> backlog;

  void SetUp() override {
    root = make_temp_dir();
    outside = make_temp_dir();
    std::ofstream(outside + "/secret.txt") << "TOP SECRET";
    child = std::make_unique<sandbox_child>(std::vector<std::string>{"--root", root, "--output-cap", "1000"}, supervised);
    initialize();
  }
  void initialize() {
    client.start(std::chrono::steady_clock::now());
    flush();
    auto init = wait_for<ev_initialized>([](const ev_initialized&) { return true; });
    ASSERT_TRUE(init);
    EXPECT_EQ(init->server_name, "berth-sandbox");
    EXPECT_EQ(init->protocol_version, "2025-06-18");
    flush();  // notifications/initialized
  }
  void TearDown() override {
    child.reset();
    std::error_code ec;
    fs::remove_all(root, ec);
    fs::remove_all(outside, ec);
  }
  void flush() { child->write(client.take_output()); }

  // Pumps the child's output into the client until an event of type T matches (bounded).
  template <class T, class Pred>
  std::optional<T> wait_for(Pred pred) {
    const auto end = std::chrono::steady_clock::now() + io_deadline;
    for (int rounds = 0; rounds < 100000; ++rounds) {
      for (auto it = backlog.begin(); it != backlog.end(); ++it)
        if (auto* e = std::get_if<T>(&*it); e != nullptr && pred(*e)) {
          T found = *e;
          backlog.erase(it);
          return found;
        }
      if (std::chrono::steady_clock::now() >= end) break;
      auto bytes = child->read_some(100ms);
      if (!bytes) {
        ADD_FAILURE() << "berth-sandbox closed its stdout";
        return std::nullopt;
      }
      client.on_bytes(*bytes);
      client.on_timer(std::chrono::steady_clock::now());
      flush();  // e.g. answers to server pings
      for (auto& e : client.take_events()) backlog.push_back(std::move(e));
    }
    ADD_FAILURE() << "no matching event before the deadline";
    return std::nullopt;
  }

  tool_call_outcome call(const std::string& name, const json& args) {
    auto id = client.call_tool(name, args, std::chrono::steady_clock::now() + io_deadline);
    EXPECT_TRUE(id);
    flush();
    auto r = wait_for<ev_tool_result>([&](const ev_tool_result& e) { return e.request_id == *id; });
    return r ? r->outcome : tool_call_outcome{"<no result>", true, nullptr};
  }
};

bool process_gone(pid_t pid) {
  // Gone, or a zombie waiting for its new parent to reap it.
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(stat)), {});
  auto close = s.rfind(')');
  return close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z';
}

bool wait_gone(pid_t pid) {
  for (int i = 0; i < 500; ++i) {  // up to ~5 s, polled
    if (process_gone(pid)) return true;
    pollfd none{-1, 0, 0};
    ::poll(&none, 0, 10);
  }
  return false;
}

pid_t read_pid(const std::string& file) {
  std::ifstream in(file);
  long v = 0;
  in >> v;
  return static_cast<pid_t>(v);
}

}  // namespace

TEST_F(sandbox_fixture, ToolsListHasTheFourTools) {
  auto id = client.list_tools(std::chrono::steady_clock::now() + io_deadline);
  ASSERT_TRUE(id);
  flush();
  auto listed = wait_for<ev_tools_listed>([&](const ev_tools_listed& e) { return e.request_id == *id; });
  ASSERT_TRUE(listed);
  std::vector<std::string> names;
  for (const auto& t : listed->tools) {
    names.push_back(t.name);
    EXPECT_EQ(t.input_schema["type"], "object");
  }
  EXPECT_EQ(names, (std::vector<std::string>{"list_files", "read_file", "write_file", "run_command"}));
}

TEST_F(sandbox_fixture, WriteThenListThenRead) {
  auto w = call("write_file", {{"path", "/workspace-relative/../notes/todo.txt"}, {"content", "buy milk\n"}});
  // An absolute path outside the configured root is refused...
  EXPECT_TRUE(w.is_error);
  w = call("write_file", {{"path", "notes/todo.txt"}, {"content", "buy milk\n"}});
  EXPECT_FALSE(w.is_error) << w.text;
  w = call("write_file", {{"path", root + "/top.txt"}, {"content", "abs"}});
  EXPECT_FALSE(w.is_error) << w.text;
  auto l = call("list_files", {{"path", "."}, {"recursive", true}});
  EXPECT_FALSE(l.is_error);
  EXPECT_EQ(l.text, "notes/\nnotes/todo.txt\ntop.txt\n");
  auto r = call("read_file", {{"path", "notes/todo.txt"}});
  EXPECT_EQ(r.text, "buy milk\n");
  // The file really is on disk under the root.
  std::ifstream in(root + "/notes/todo.txt");
  std::string disk((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(disk, "buy milk\n");
  // ...and a command sees it in its working directory.
  auto c = call("run_command", {{"command", "cat notes/todo.txt && pwd"}});
  EXPECT_FALSE(c.is_error) << c.text;
  EXPECT_NE(c.text.find("buy milk"), std::string::npos);
  EXPECT_NE(c.text.find(root), std::string::npos);
}

TEST_F(sandbox_fixture, RunCommandReportsExitCodeAndBothStreams) {
  auto c = call("run_command", {{"command", "echo out; echo err >&2; exit 7"}});
  EXPECT_TRUE(c.is_error);
  EXPECT_EQ(c.text, "exit code: 7\n--- stdout ---\nout\n--- stderr ---\nerr\n");
  EXPECT_EQ(c.structured["exitCode"], 7);
  EXPECT_EQ(c.structured["stdout"], "out\n");
  auto ok = call("run_command", {{"command", "true"}});
  EXPECT_FALSE(ok.is_error);
  EXPECT_EQ(ok.text, "exit code: 0\n");
  auto stdin_null = call("run_command", {{"command", "cat; echo done"}});  // stdin is /dev/null
  EXPECT_NE(stdin_null.text.find("done"), std::string::npos);
}

TEST_F(sandbox_fixture, TimeoutKillsTheWholeProcessGroup) {
  const std::string pidfile = root + "/bg.pid";
  const auto t0 = std::chrono::steady_clock::now();
  auto c = call("run_command", {{"command", "sleep 60 & echo $! > bg.pid; sleep 60"}, {"timeout_ms", 300}});
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(c.is_error);
  EXPECT_TRUE(c.structured["timedOut"].get<bool>()) << c.text;
  EXPECT_NE(c.text.find("timed out after"), std::string::npos);
  EXPECT_LT(took, 30s);  // far below the command's own 60 s
  const pid_t bg = read_pid(pidfile);
  ASSERT_GT(bg, 0);
  EXPECT_TRUE(wait_gone(bg)) << "background child " << bg << " survived the timeout";
}

TEST_F(sandbox_fixture, HugeOutputIsCapped) {
  auto c = call("run_command", {{"command", "head -c 5000000 /dev/zero | tr '\\0' x; echo tail >&2"}});
  EXPECT_FALSE(c.is_error) << c.text.substr(0, 200);
  EXPECT_EQ(c.structured["stdout"].get<std::string>().size(), 1000u);
  EXPECT_TRUE(c.structured["stdoutTruncated"].get<bool>());
  EXPECT_EQ(c.structured["stderr"], "tail\n");
  EXPECT_NE(c.text.find("[stdout truncated to 1000 bytes]"), std::string::npos);
}

TEST_F(sandbox_fixture, EscapeAttemptsAreRejected) {
  fs::create_symlink("/etc", root + "/etc");
  fs::create_symlink(outside, root + "/out");
  fs::create_symlink(outside + "/secret.txt", root + "/secret");
  struct attempt {
    std::string tool;
    json args;
  };
  for (const auto& [tool, args] : std::vector<attempt>{
           {"read_file", {{"path", "../secret.txt"}}},
           {"read_file", {{"path", "../../../../etc/passwd"}}},
           {"read_file", {{"path", "/etc/passwd"}}},
           {"read_file", {{"path", outside + "/secret.txt"}}},
           {"read_file", {{"path", root + "/../" + fs::path(outside).filename().string() + "/secret.txt"}}},
           {"read_file", {{"path", "etc/passwd"}}},
           {"read_file", {{"path", "out/secret.txt"}}},
           {"read_file", {{"path", "secret"}}},
           {"list_files", {{"path", "etc"}}},
           {"list_files", {{"path", "/"}}},
           {"list_files", {{"path", ".."}}},
           {"write_file", {{"path", "out/pwned.txt"}, {"content", "x"}}},
           {"write_file", {{"path", "secret"}, {"content", "overwritten"}}},
           {"write_file", {{"path", "../pwned.txt"}, {"content", "x"}}},
           {"write_file", {{"path", "etc/pwned"}, {"content", "x"}}},
       }) {
    auto r = call(tool, args);
    EXPECT_TRUE(r.is_error) << tool << " " << args.dump() << " -> " << r.text;
    EXPECT_EQ(r.text.find("root:"), std::string::npos);
    EXPECT_EQ(r.text.find("TOP SECRET"), std::string::npos);
  }
  std::ifstream in(outside + "/secret.txt");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(s, "TOP SECRET");
  EXPECT_FALSE(fs::exists(outside + "/pwned.txt"));
  EXPECT_FALSE(fs::exists(fs::path(root).parent_path() / "pwned.txt"));
  // The listing shows the links without following them.
  EXPECT_EQ(call("list_files", json::object()).text, "etc@\nout@\nsecret@\n");
}

TEST_F(sandbox_fixture, NonJsonInputGetsParseErrorAndTheServerGoesOn) {
  child->write("this is not json\n{\"jsonrpc\":\"2.0\",\"id\":\n");
  // The parse errors (id null) come back as raw lines: read them with a bare decoder.
  line_decoder d;
  std::vector<json> errors;
  const auto end = std::chrono::steady_clock::now() + io_deadline;
  while (errors.size() < 2 && std::chrono::steady_clock::now() < end) {
    auto bytes = child->read_some(100ms);
    ASSERT_TRUE(bytes);
    d.feed(*bytes);
    while (auto i = d.next()) errors.push_back(json::parse(i->line));
  }
  ASSERT_EQ(errors.size(), 2u);
  for (const auto& e : errors) {
    EXPECT_EQ(e["error"]["code"], -32700);
    EXPECT_TRUE(e["id"].is_null());
  }
  child->write("{\"jsonrpc\":\"2.0\",\"id\":77,\"method\":\"no/such\"}\n");
  auto ping = client.send_request("ping", nullptr, std::chrono::steady_clock::now() + io_deadline);
  ASSERT_TRUE(ping);
  flush();
  auto pong = wait_for<ev_result>([&](const ev_result& r) { return r.request_id == *ping; });
  ASSERT_TRUE(pong);
  EXPECT_EQ(pong->result, json::object());
  // The id-77 error was reported by the client as a response to an unknown id.
  EXPECT_TRUE(wait_for<ev_protocol_error>([](const ev_protocol_error& e) {
    return e.message.find("unknown or expired request id 77") != std::string::npos;
  }));
  EXPECT_FALSE(call("write_file", {{"path", "still.txt"}, {"content", "alive"}}).is_error);
}

TEST_F(sandbox_fixture, CancellationKillsTheRunningCommand) {
  auto id = client.call_tool("run_command", {{"command", "echo $$ > sh.pid; sleep 60"}, {"timeout_ms", 60000}},
                             std::chrono::steady_clock::now() + io_deadline);
  ASSERT_TRUE(id);
  flush();
  // Wait (bounded) until the command has started.
  pid_t sh = 0;
  for (int i = 0; i < 500 && sh <= 0; ++i) {
    if (fs::exists(root + "/sh.pid")) sh = read_pid(root + "/sh.pid");
    if (sh <= 0) {
      pollfd none{-1, 0, 0};
      ::poll(&none, 0, 10);
    }
  }
  ASSERT_GT(sh, 0);
  ASSERT_TRUE(client.cancel(*id, "user rejected"));
  flush();
  EXPECT_TRUE(wait_gone(sh));
  // The server is still responsive, and the cancelled request got no response.
  auto ok = call("run_command", {{"command", "echo after"}});
  EXPECT_NE(ok.text.find("after"), std::string::npos);
  for (const auto& e : backlog) {
    if (auto* r = std::get_if<ev_tool_result>(&e)) {
      EXPECT_NE(r->request_id, *id);
    }
    if (auto* p = std::get_if<ev_protocol_error>(&e)) {
      ADD_FAILURE() << p->message;
    }
  }
}

TEST_F(sandbox_fixture, ClosingStdinEndsTheServerCleanly) {
  child->close_stdin();
  EXPECT_EQ(child->wait_exit(10s), 0);
}

TEST(SandboxCli, BadUsageExitsWith2) {
  for (std::vector<std::string> args : {std::vector<std::string>{"serve"}, {"mcp", "--root"}, {"mcp", "--root", "/nonexistent-x"},
                                        {"mcp", "--output-cap", "abc"}, {"mcp", "--bogus", "1"}}) {
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> argv{const_cast<char*>(BERTH_SANDBOX_BIN)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    int st = 0;
    ASSERT_EQ(::waitpid(pid, &st, 0), pid);
    EXPECT_TRUE(WIFEXITED(st));
    EXPECT_EQ(WEXITSTATUS(st), 2) << args[0];
  }
}

namespace {

struct supervised_sandbox : sandbox_fixture {
  supervised_sandbox() { supervised = true; }
};

// The pids of `parent`'s children (Linux: /proc/<pid>/task/<pid>/children).
std::vector<pid_t> children_of(pid_t parent) {
  std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) + "/children");
  std::vector<pid_t> out;
  for (long v = 0; in >> v;) out.push_back(static_cast<pid_t>(v));
  return out;
}

}  // namespace

// The container's main process: the server dies (an OOM kill, a crash), the supervisor starts a
// new one on the same stdio and says so; the request in flight fails at once rather than at its
// deadline, and a client that initializes again (continuing its ids) is served.
TEST_F(supervised_sandbox, AKilledServerIsRestartedOnTheSameStdioAndTheClientIsTold) {
  EXPECT_FALSE(call("write_file", {{"path", "kept.txt"}, {"content", "still here"}}).is_error);
  auto servers = children_of(child->pid());
  ASSERT_EQ(servers.size(), 1u);
  auto pending = client.call_tool("run_command", {{"command", "sleep 5"}}, std::chrono::steady_clock::now() + io_deadline);
  ASSERT_TRUE(pending);
  flush();
  ASSERT_EQ(::kill(servers[0], SIGKILL), 0);
  auto failed = wait_for<ev_request_failed>([&](const ev_request_failed& e) { return e.request_id == *pending; });
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->reason, failure::closed);
  EXPECT_NE(failed->message.find("restarted"), std::string::npos) << failed->message;
  EXPECT_EQ(client.state(), client_state::closed);

  client_options opts;
  opts.first_request_id = client.next_request_id();
  client = client_fsm(opts);
  backlog.clear();
  initialize();
  ASSERT_EQ(client.state(), client_state::ready);
  auto read = call("read_file", {{"path", "kept.txt"}});
  EXPECT_FALSE(read.is_error);
  EXPECT_EQ(read.text, "still here");
  auto now_serving = children_of(child->pid());
  ASSERT_EQ(now_serving.size(), 1u);
  EXPECT_NE(now_serving[0], servers[0]);
}

// A command that cannot run: after a few quick exits the supervisor gives up, and with it the
// container (for the pool to replace), instead of restarting forever.
TEST(SandboxSupervise, GivesUpOnAServerThatKeepsExiting) {
  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::execl(BERTH_SANDBOX_BIN, BERTH_SANDBOX_BIN, "supervise", "/nonexistent/server", nullptr);
    _exit(127);
  }
  ::close(out[1]);
  std::string printed;
  char buf[4096];
  for (;;) {  // EOF once the supervisor exits (bounded: 6 exits x 100 ms)
    pollfd p{out[0], POLLIN, 0};
    ASSERT_GT(::poll(&p, 1, 15000), 0) << "the supervisor did not give up";
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    printed.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  std::size_t notices = 0;
  for (auto at = printed.find(berth::mcp::server_restarted_method); at != std::string::npos;
       at = printed.find(berth::mcp::server_restarted_method, at + 1))
    ++notices;
  EXPECT_EQ(notices, 5u) << printed;
}
