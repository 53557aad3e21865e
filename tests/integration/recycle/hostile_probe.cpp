// hostile-probe: what a hostile sandbox user runs (as uid 1000, inside the container) to leave
// traces for the next user and to reach the berth-sandbox server. Static; copied into the
// container by the recycle integration test. Prints one line per finding; exit code 0 means
// "every attempt on the server was refused".
//   hostile-probe ipc             create a SysV shm segment, semaphore set and message queue
//   hostile-probe mqueue          create a POSIX message queue (a file in /dev/mqueue)
//   hostile-probe attack-server   signal, ptrace, and write into berth-sandbox's fds and memory
//   hostile-probe others          processes of my uid outside my own process chain
//   hostile-probe writable-dirs   directories this uid may write to (outside /proc and /sys)
#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/ptrace.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  while (d != nullptr) {
    const dirent* e = readdir(d);
    if (e == nullptr) break;
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end == '\0' && pid > 0) out.push_back(static_cast<pid_t>(pid));
  }
  if (d != nullptr) closedir(d);
  return out;
}

std::string status_field(pid_t pid, const std::string& field) {
  const std::string s = read_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = s.find(field + ":");
  if (at == std::string::npos) return {};
  const auto start = s.find_first_not_of(" \t", at + field.size() + 1);
  return s.substr(start, s.find('\n', start) - start);
}

int ipc() {
  const int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
  const int sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
  const int msg = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  std::printf("shm=%d sem=%d msg=%d\n", shm, sem, msg);
  return shm >= 0 && sem >= 0 && msg >= 0 ? 0 : 1;
}

int mqueue() {
  mq_attr attr{};
  attr.mq_maxmsg = 1;
  attr.mq_msgsize = 16;
  const mqd_t q = mq_open("/berth-left-behind", O_CREAT | O_RDWR, 0600, &attr);
  std::printf("mq=%d %s\n", static_cast<int>(q), q == static_cast<mqd_t>(-1) ? std::strerror(errno) : "created");
  return q == static_cast<mqd_t>(-1) ? 1 : 0;
}

// Every berth-sandbox process: the supervisor (the container's main process) and the server.
int attack_server() {
  std::vector<pid_t> servers;
  for (pid_t pid : all_pids())
    if (read_file("/proc/" + std::to_string(pid) + "/comm") == "berth-sandbox\n") servers.push_back(pid);
  if (servers.empty()) {
    std::printf("no berth-sandbox process found\n");
    return 2;
  }
  int reached = 0;
  auto report = [&](pid_t pid, const char* what, bool ok) {
    std::printf("%d %s: %s\n", static_cast<int>(pid), what, ok ? "SUCCEEDED" : std::strerror(errno));
    reached += ok ? 1 : 0;
  };
  std::string pids;
  for (pid_t server : servers) {
    const std::string base = "/proc/" + std::to_string(server);
    report(server, "kill(SIGKILL)", kill(server, SIGKILL) == 0);
    report(server, "kill(SIGSTOP)", kill(server, SIGSTOP) == 0);
    report(server, "ptrace(ATTACH)", ptrace(PTRACE_ATTACH, server, nullptr, nullptr) == 0);
    report(server, "ptrace(SEIZE)", ptrace(PTRACE_SEIZE, server, nullptr, nullptr) == 0);
    const int out = open((base + "/fd/1").c_str(), O_WRONLY);
    if (out >= 0) {
      static const char fake[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n";
      report(server, "write fd/1", write(out, fake, sizeof fake - 1) > 0);
    } else {
      report(server, "open fd/1", false);
    }
    report(server, "open mem", open((base + "/mem").c_str(), O_RDWR) >= 0);
    report(server, "open environ", open((base + "/environ").c_str(), O_RDONLY) >= 0);
    report(server, "open fd/0", open((base + "/fd/0").c_str(), O_RDONLY) >= 0);
    pids += (pids.empty() ? "" : ",") + std::to_string(server);
  }
  std::printf("server pids %s, reached %d\n", pids.c_str(), reached);
  return reached == 0 ? 0 : 1;
}

int others() {
  std::set<pid_t> chain;
  for (pid_t p = getpid(); p > 1;) {
    chain.insert(p);
    const std::string pp = status_field(p, "PPid");
    p = pp.empty() ? 0 : static_cast<pid_t>(std::stol(pp));
  }
  const std::string me = std::to_string(getuid());
  int n = 0;
  for (pid_t pid : all_pids()) {
    if (chain.count(pid)) continue;
    const std::string uid = status_field(pid, "Uid");
    if (uid.substr(0, uid.find('\t')) != me) continue;
    const std::string state = status_field(pid, "State");
    if (!state.empty() && (state[0] == 'Z' || state[0] == 'X')) continue;
    std::printf("pid %d %s", static_cast<int>(pid), read_file("/proc/" + std::to_string(pid) + "/comm").c_str());
    ++n;
  }
  std::printf("others=%d\n", n);
  return 0;
}

void walk(const std::string& dir, int depth) {
  if (depth > 12 || dir == "/proc" || dir == "/sys") return;
  if (access(dir.c_str(), W_OK) == 0) std::printf("%s\n", dir.c_str());
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> subs;
  while (const dirent* e = readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    const std::string path = dir == "/" ? "/" + n : dir + "/" + n;
    struct stat st {};
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) subs.push_back(path);
  }
  closedir(d);
  for (const auto& s : subs) walk(s, depth + 1);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "ipc") return ipc();
  if (cmd == "mqueue") return mqueue();
  if (cmd == "attack-server") return attack_server();
  if (cmd == "others") return others();
  if (cmd == "writable-dirs") {
    walk("/", 0);
    return 0;
  }
  std::fprintf(stderr, "usage: hostile-probe ipc|mqueue|attack-server|others|writable-dirs\n");
  return 2;
}
