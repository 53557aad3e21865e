// Recycling a container between two users, on the real dockerd with the sandbox image. The
// previous user is hostile: it leaves a setsid double-forked daemon, a process that ignores
// SIGTERM, a fork loop at the pids limit, files in every writable path (hidden ones, a directory
// it made unreadable), System V IPC objects and a POSIX message queue, and it tries to signal,
// trace and write into the sandbox server. After berth/reset the next user finds none of it, and
// the same server process serves it. Export/import (hibernation) round-trips a workspace.
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <boost/asio/strand.hpp>

#include "berth/core/base64.hpp"
#include "berth/mcp/stdio_session.hpp"
#include "docker_fixture.hpp"

namespace berth::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct shell_result {
  std::string text;
  bool is_error = true;
};

class recycle_test : public docker_fixture {
 protected:
  std::string start_container(std::int64_t pids_limit = 64) {
    auto s = spec();
    s.pids_limit = pids_limit;
    // As the pool runs them: berth-sandbox supervise, reached by attach.
    docker::make_sandbox_server_main(s);
    s.name = "berth-itest-recycle-" + token_ + "-" + std::to_string(++containers_);
    auto id = run(client_->create_container(s));
    EXPECT_TRUE(id) << id.error().message;
    if (!id) return {};
    auto started = run(client_->start_container(*id));
    EXPECT_TRUE(started) << started.error().message;
    return *id;
  }

  std::shared_ptr<mcp::stdio_session> open_sandbox(const std::string& id) {
    auto s = mcp::sandbox_server_session(boost::asio::make_strand(io_), *client_, id, metrics_);
    auto tools = run(s->open(20s));
    EXPECT_TRUE(tools) << tools.error().message;
    return s;
  }

  shell_result sh(const std::shared_ptr<mcp::stdio_session>& s, const std::string& command) {
    auto r = run(s->call_tool("run_command", json{{"command", command}, {"timeout_ms", 20000}}, 30s));
    if (!r) return {r.error().message, true};
    return {r->text, r->is_error};
  }

  core::result<json> reset(const std::shared_ptr<mcp::stdio_session>& s) {
    return run(s->request("berth/reset", json::object(), 15s));
  }

  // The probe binary, as the user: written as base64 text (write_file takes text), then decoded.
  void upload_probe(const std::shared_ptr<mcp::stdio_session>& s) {
    std::ifstream in(BERTH_HOSTILE_PROBE, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), {});
    ASSERT_FALSE(bytes.empty()) << BERTH_HOSTILE_PROBE;
    auto w = run(s->call_tool("write_file",
                              json{{"path", "/workspace/probe.b64"}, {"content", core::base64_encode(bytes)}}, 30s));
    ASSERT_TRUE(w && !w->is_error) << (w ? w->text : w.error().message);
    auto d = sh(s, "base64 -d /workspace/probe.b64 > /workspace/probe && chmod 755 /workspace/probe && rm /workspace/probe.b64");
    ASSERT_FALSE(d.is_error) << d.text;
  }

  int containers_ = 0;
};

std::string after(const std::string& text, const std::string& marker) {
  auto at = text.find(marker);
  if (at == std::string::npos) return {};
  at += marker.size();
  return text.substr(at, text.find_first_of("\n ", at) - at);
}

TEST_F(recycle_test, AHostilePreviousUserLeavesNothingForTheNextOne) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  auto s = open_sandbox(id);
  upload_probe(s);

  // The previous user goes after the server first: every attempt must be refused.
  auto attack = sh(s, "/workspace/probe attack-server");
  EXPECT_FALSE(attack.is_error) << attack.text;
  EXPECT_NE(attack.text.find("reached 0"), std::string::npos) << attack.text;
  const auto server_pid = after(attack.text, "server pids ");
  ASSERT_FALSE(server_pid.empty()) << attack.text;

  // ... then leaves traces everywhere it can write.
  for (const std::string cmd : {
           "(setsid sh -c 'sleep 3600' >/dev/null 2>&1 &); echo daemon",
           "sh -c 'trap \"\" TERM HUP INT; while true; do sleep 1; done' >/dev/null 2>&1 & echo stubborn",
           "mkdir -p /workspace/a/b/c && echo x > /workspace/a/b/c/f && echo s > /workspace/.secret && "
           "echo t > /tmp/.t && echo u > /tmp/u && echo v > /dev/shm/v && mkdir /workspace/locked && "
           "touch /workspace/locked/f && chmod 000 /workspace/locked && chmod 777 /workspace",
           "/workspace/probe ipc",
           "/workspace/probe mqueue",
       }) {
    auto r = sh(s, cmd);
    EXPECT_FALSE(r.is_error) << cmd << ": " << r.text;
  }
  auto traces = sh(s, "ls -A /workspace /tmp /dev/shm /dev/mqueue; wc -l < /proc/sysvipc/shm");
  EXPECT_NE(traces.text.find(".secret"), std::string::npos) << traces.text;
  EXPECT_NE(traces.text.find("berth-left-behind"), std::string::npos) << traces.text;
  // Last, a fork loop that keeps the container at its pids limit.
  auto bomb = sh(s, "sh -c 'while :; do (sleep 300 &) 2>/dev/null; done' >/dev/null 2>&1 & echo bomb");
  EXPECT_FALSE(bomb.is_error) << bomb.text;
  // Until the container is at its limit: a command can no longer even be started, or the pids
  // cgroup is (nearly) full.
  std::string pids;
  ASSERT_TRUE(run_until(
      [&] {
        pids = sh(s, "cat /sys/fs/cgroup/pids/pids.current 2>/dev/null || cat /sys/fs/cgroup/pids.current").text;
        if (pids.find("could not start") != std::string::npos) return true;
        const auto n = after(pids, "--- stdout ---\n");
        return !n.empty() && std::stoi(n) >= 60;
      },
      30s))
      << pids;

  auto r = reset(s);
  ASSERT_TRUE(r) << r.error().message;
  std::cout << "# attack on the server:\n" << attack.text << "# reset: " << r->dump() << "\n";
  EXPECT_EQ((*r)["clean"], true) << r->dump();
  EXPECT_GE((*r)["processesKilled"].get<int>(), 4) << r->dump();
  EXPECT_GE((*r)["ipcRemoved"].get<int>(), 3) << r->dump();

  // The next user, through the same server process.
  auto listing = sh(s, "ls -A /workspace /tmp /dev/shm /dev/mqueue; stat -c %a /workspace; cat /proc/sysvipc/shm "
                       "/proc/sysvipc/sem /proc/sysvipc/msg | wc -l");
  ASSERT_FALSE(listing.is_error) << listing.text;
  for (const char* gone : {"a", ".secret", "locked", ".t", "u", "v", "berth-left-behind", "probe"})
    EXPECT_EQ(listing.text.find(std::string("\n") + gone + "\n"), std::string::npos) << gone << " survived:\n" << listing.text;
  EXPECT_NE(listing.text.find("\n755\n"), std::string::npos) << "workspace mode not restored:\n" << listing.text;
  EXPECT_NE(listing.text.find("\n3\n"), std::string::npos) << "IPC tables not empty (3 header lines expected):\n"
                                                         << listing.text;
  upload_probe(s);
  auto others = sh(s, "/workspace/probe others");
  EXPECT_NE(others.text.find("others=0"), std::string::npos) << others.text;
  auto again = sh(s, "/workspace/probe attack-server");
  EXPECT_EQ(after(again.text, "server pids "), server_pid) << "the server was replaced:\n" << again.text;
  EXPECT_NE(again.text.find("reached 0"), std::string::npos) << again.text;
}

// The server is the container's supervised main process: killed (an OOM kill, a crash), it is
// started again in the same container, and the same session reaches it on its next call, with
// the workspace as it was. No exec is involved at any point.
TEST_F(recycle_test, AKilledSandboxServerIsBackForTheNextCallWithTheWorkspace) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  auto s = open_sandbox(id);
  auto w = run(s->call_tool("write_file", json{{"path", "kept.txt"}, {"content", "still here"}}, 10s));
  ASSERT_TRUE(w && !w->is_error);
  auto killed = run(client_->exec_run(
      id, {"sh", "-c", "for p in $(pidof berth-sandbox); do if tr '\\0' ' ' < /proc/$p/cmdline | grep -q '^[^ ]* mcp '; "
                       "then kill -9 $p && echo killed $p; fi; done"},
      "", 10s, "0:0"));
  ASSERT_TRUE(killed) << killed.error().message;
  ASSERT_NE(killed->out.find("killed"), std::string::npos) << killed->out << killed->err;
  // A call that races the restart notice fails (SANDBOX_UNAVAILABLE); the next one is served.
  std::string text;
  ASSERT_TRUE(run_until(
      [&] {
        auto r = run(s->call_tool("read_file", json{{"path", "kept.txt"}}, 10s));
        text = r ? r->text : r.error().message;
        return r && !r->is_error;
      },
      20s))
      << text;
  EXPECT_EQ(text, "still here");
  auto execs = run(client_->exec_run(id, {"sh", "-c", "pidof berth-sandbox | wc -w"}, "", 10s, "0:0"));
  ASSERT_TRUE(execs);
  EXPECT_EQ(execs->out, "2\n") << "supervisor and server";
}

// dockerd takes an attach to a stopped container and waits for it to start again: a session whose
// container died must hear so at once, not at its initialize deadline.
TEST_F(recycle_test, AttachingToAStoppedContainerFailsAtOnce) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  auto s = open_sandbox(id);
  ASSERT_TRUE(run(client_->kill_container(id)));
  // The first call may still meet the old stream (answered, or cut when it ends); a later one
  // attaches again and must be told the container is not running.
  std::string seen;
  for (int attempt = 0; attempt < 3 && seen.find("not running") == std::string::npos; ++attempt) {
    auto r = run(s->call_tool("list_files", json::object(), 30s));
    seen = r ? "answered" : r.error().message;
    if (!r) {
      EXPECT_EQ(r.error().code, core::errc::sandbox_unavailable) << seen;
    }
  }
  EXPECT_NE(seen.find("not running"), std::string::npos) << seen;
}

TEST_F(recycle_test, OnlyTheScrubbedPathsAreWritableByTheUser) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  auto s = open_sandbox(id);
  upload_probe(s);
  auto w = sh(s, "/workspace/probe writable-dirs");
  ASSERT_FALSE(w.is_error) << w.text;
  std::set<std::string> dirs;
  std::istringstream lines(w.text);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && line[0] == '/') dirs.insert(line);
  // A new writable path (an image change, a new mount) must be added to the scrub first.
  EXPECT_EQ(dirs, (std::set<std::string>{"/workspace", "/tmp", "/dev/shm", "/dev/mqueue"})) << w.text;
}

TEST_F(recycle_test, ResetCancelsWhatIsStillRunningAndFilesAreTheUsers) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  auto s = open_sandbox(id);
  // The file tools act as the user: what the model writes, the user's commands may change.
  auto w = run(s->call_tool("write_file", json{{"path", "notes.txt"}, {"content", "hi"}}, 10s));
  ASSERT_TRUE(w && !w->is_error);
  auto owner = sh(s, "stat -c %u notes.txt && echo more >> notes.txt && cat notes.txt");
  EXPECT_NE(owner.text.find("1000"), std::string::npos) << owner.text;
  EXPECT_NE(owner.text.find("more"), std::string::npos) << owner.text;
  // A long command still running when the reset comes is answered, as cancelled.
  auto pending = boost::asio::co_spawn(
      io_, s->call_tool("run_command", json{{"command", "sleep 60"}, {"timeout_ms", 60000}}, 70s),
      boost::asio::use_future);
  ASSERT_TRUE(run_until([&] { return !sh(s, "pgrep -x sleep || ps | grep -c '[s]leep 60'").text.empty(); }, 10s));
  auto r = reset(s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ((*r)["clean"], true) << r->dump();
  ASSERT_TRUE(run_until([&] { return pending.wait_for(0s) == std::future_status::ready; }, 10s));
  auto cut = pending.get();
  ASSERT_FALSE(cut);
  EXPECT_NE(cut.error().message.find("reset"), std::string::npos) << cut.error().message;
}

TEST_F(recycle_test, AServerWithoutAUserToScrubForNeverVouchesForTheContainer) {
  const auto id = start_container();
  ASSERT_FALSE(id.empty());
  // As before privilege separation: the server runs as the user, so nothing can be trusted.
  auto s = std::make_shared<mcp::stdio_session>(boost::asio::make_strand(io_), *client_, id,
                                                  std::vector<std::string>{"/usr/local/bin/berth-sandbox", "mcp"},
                                                  metrics_);
  s->set_user(std::string(docker::sandbox_user));
  ASSERT_TRUE(run(s->open(20s)));
  auto r = reset(s);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("without --user"), std::string::npos) << r.error().message;
}

TEST_F(recycle_test, AWorkspaceSurvivesExportAndImportIntoAnotherContainer) {
  const auto first = start_container();
  ASSERT_FALSE(first.empty());
  auto a = open_sandbox(first);
  auto made = sh(a, "mkdir -p src/deep && echo 'int main(){}' > src/deep/main.c && echo secret > .env && "
                    "ln -s src/deep/main.c link && chmod 640 .env");
  ASSERT_FALSE(made.is_error) << made.text;
  auto saved = run(a->request("berth/workspace.export", json{{"maxBytes", 1 << 20}}, 30s));
  ASSERT_TRUE(saved) << saved.error().message;
  ASSERT_EQ((*saved)["tooLarge"], false) << saved->dump();
  const std::string data = (*saved)["data"];
  EXPECT_GT((*saved)["bytes"].get<int>(), 0);

  const auto second = start_container();
  auto b = open_sandbox(second);
  auto restored = run(b->request("berth/workspace.import", json{{"data", data}}, 30s));
  ASSERT_TRUE(restored) << restored.error().message;
  auto seen = sh(b, "cat src/deep/main.c .env; readlink link; stat -c '%a %u' .env");
  EXPECT_NE(seen.text.find("int main(){}"), std::string::npos) << seen.text;
  EXPECT_NE(seen.text.find("secret"), std::string::npos) << seen.text;
  EXPECT_NE(seen.text.find("src/deep/main.c"), std::string::npos) << seen.text;
  EXPECT_NE(seen.text.find("640 1000"), std::string::npos) << seen.text;

  // Over the cap: reported with its size, never cut.
  auto big = sh(b, "head -c 200000 /dev/urandom > noise.bin");
  ASSERT_FALSE(big.is_error) << big.text;
  auto over = run(b->request("berth/workspace.export", json{{"maxBytes", 10000}}, 30s));
  ASSERT_TRUE(over) << over.error().message;
  EXPECT_EQ((*over)["tooLarge"], true) << over->dump();
  EXPECT_GT((*over)["bytes"].get<int>(), 200000);
  EXPECT_FALSE(over->contains("data"));
  auto bad = run(b->request("berth/workspace.import", json{{"data", "not base64!"}}, 10s));
  EXPECT_FALSE(bad);
}

}  // namespace
}  // namespace berth::testing
