#include "berth/sandbox/scrub.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace berth::sandbox {

namespace {

using steady = std::chrono::steady_clock;

std::string errno_text(int e) { return std::strerror(e); }

// "Uid:\t1000\t1000\t1000\t1000" and "State:\tS (sleeping)" from /proc/<pid>/status.
struct proc_status {
  bool readable = false;
  bool zombie = false;
  uid_t ids[3] = {0, 0, 0};  // real, effective, saved
};

proc_status read_status(const std::string& path) {
  proc_status st;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("State:", 0) == 0) {
      const auto c = line.find_first_not_of(" \t", 6);
      st.zombie = c != std::string::npos && (line[c] == 'Z' || line[c] == 'X');
    } else if (line.rfind("Uid:", 0) == 0) {
      std::istringstream fields(line.substr(4));
      for (auto& id : st.ids) fields >> id;
      st.readable = !fields.fail();
    }
  }
  return st;
}

// Signals every process of the user until none is left. One pass may miss children forked while
// it runs; a killed process forks no more, so each round leaves fewer (a fork loop at the pids
// limit is gone in a few rounds).
void kill_processes(const scrub_options& o, steady::time_point deadline, scrub_report& r) {
  const pid_t self = ::getpid();
  for (;;) {
    const auto pids = processes_of(o.proc_root, o.uid, self);
    if (pids.empty()) return;
    if (steady::now() >= deadline) {
      r.problems.push_back(std::to_string(pids.size()) + " processes of uid " + std::to_string(o.uid) +
                           " survived SIGKILL");
      return;
    }
    ++r.kill_rounds;
    for (pid_t pid : pids)
      if (::kill(pid, SIGKILL) == 0) ++r.processes_killed;
    // Our own children (the commands we started) are reaped here; the rest by the container's init.
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (r.kill_rounds > 3) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let exits land
  }
}

// Empties `path` without recursion (a user may nest directories thousands deep) and without
// following symlinks; directories the user made unwritable get their mode back first.
void empty_directory(const std::string& path, const scrub_options& o, steady::time_point deadline,
                     scrub_report& r) {
  struct level {
    int fd;
    DIR* dir;
    std::string name;  // in the parent level
  };
  const int root = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root < 0) {
    if (errno != ENOENT) r.problems.push_back("cannot open " + path + ": " + errno_text(errno));
    return;
  }
  DIR* root_dir = ::fdopendir(root);
  if (root_dir == nullptr) {
    r.problems.push_back("cannot read " + path + ": " + errno_text(errno));
    ::close(root);
    return;
  }
  std::vector<level> stack{{root, root_dir, {}}};
  bool gave_up = false;
  while (!stack.empty()) {
    level& top = stack.back();
    errno = 0;
    const dirent* e = gave_up ? nullptr : ::readdir(top.dir);
    if (e == nullptr) {
      const std::string name = top.name;
      ::closedir(top.dir);
      stack.pop_back();
      if (!stack.empty() && !gave_up) {
        if (::unlinkat(stack.back().fd, name.c_str(), AT_REMOVEDIR) == 0) ++r.entries_removed;
        else r.problems.push_back("cannot remove directory " + name + " under " + path + ": " + errno_text(errno));
      }
      continue;
    }
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (steady::now() >= deadline) {
      r.problems.push_back("ran out of time emptying " + path);
      gave_up = true;
      continue;
    }
    struct stat st {};
    if (::fstatat(top.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      r.problems.push_back("cannot stat " + name + " under " + path + ": " + errno_text(errno));
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (::unlinkat(top.fd, name.c_str(), 0) == 0) ++r.entries_removed;
      else r.problems.push_back("cannot remove " + name + " under " + path + ": " + errno_text(errno));
      continue;
    }
    if (stack.size() >= o.max_depth) {
      r.problems.push_back(path + " holds directories nested deeper than " + std::to_string(o.max_depth) + " levels");
      gave_up = true;
      continue;
    }
    // The user owns what it made (we act with its fsuid), so it may make its own mode usable again.
    (void)::fchmodat(top.fd, name.c_str(), 0700, 0);
    const int fd = ::openat(top.fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR* d = fd < 0 ? nullptr : ::fdopendir(fd);
    if (d == nullptr) {
      r.problems.push_back("cannot open directory " + name + " under " + path + ": " + errno_text(errno));
      if (fd >= 0) ::close(fd);
      continue;
    }
    stack.push_back(level{fd, d, name});
  }
}

bool directory_is_empty(const std::string& path, scrub_report& r) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return errno == ENOENT;
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  if (!empty) r.problems.push_back(path + " is not empty after the scrub");
  return empty;
}

// The ids of the System V IPC objects of one kind (/proc/sysvipc/{shm,msg,sem}) owned or created
// by `uid`; `others` counts objects of any other owner (Berth itself makes none).
struct ipc_table {
  std::vector<int> mine;
  std::size_t others = 0;
};

ipc_table read_ipc_table(const std::string& path, const char* id_column, uid_t uid) {
  ipc_table t;
  std::ifstream in(path);
  std::string header;
  if (!std::getline(in, header)) return t;
  std::vector<std::string> cols;
  {
    std::istringstream h(header);
    for (std::string c; h >> c;) cols.push_back(c);
  }
  auto index_of = [&](std::string_view name) -> std::size_t {
    for (std::size_t i = 0; i < cols.size(); ++i)
      if (cols[i] == name) return i;
    return cols.size();
  };
  const auto id_i = index_of(id_column), uid_i = index_of("uid"), cuid_i = index_of("cuid");
  for (std::string line; std::getline(in, line);) {
    std::istringstream row(line);
    std::vector<std::string> v;
    for (std::string f; row >> f;) v.push_back(f);
    auto num = [&](std::size_t i) -> long long {
      long long x = -1;
      if (i < v.size()) std::from_chars(v[i].data(), v[i].data() + v[i].size(), x);
      return x;
    };
    if (v.empty()) continue;
    if (num(uid_i) == static_cast<long long>(uid) || num(cuid_i) == static_cast<long long>(uid))
      t.mine.push_back(static_cast<int>(num(id_i)));
    else
      ++t.others;
  }
  return t;
}

// IPC_RMID checks the caller's *effective* uid against the object's owner, so we become the user
// for these calls, then root again (which also resets the fsuid: we put the user's back).
void remove_ipc(const scrub_options& o, scrub_report& r) {
  struct kind {
    const char* file;
    const char* id_column;
    int (*remove)(int);
  };
  static const kind kinds[] = {
      {"shm", "shmid", [](int id) { return ::shmctl(id, IPC_RMID, nullptr); }},
      {"msg", "msqid", [](int id) { return ::msgctl(id, IPC_RMID, nullptr); }},
      {"sem", "semid", [](int id) { return ::semctl(id, 0, IPC_RMID); }},
  };
  const uid_t saved_euid = ::geteuid();
  for (const auto& k : kinds) {
    const std::string path = o.proc_root + "/sysvipc/" + k.file;
    auto t = read_ipc_table(path, k.id_column, o.uid);
    if (!t.mine.empty()) {
      if (::setresuid(static_cast<uid_t>(-1), o.uid, static_cast<uid_t>(-1)) != 0) {
        r.problems.push_back(std::string("cannot become uid ") + std::to_string(o.uid) + " to remove IPC objects: " +
                             errno_text(errno));
        return;
      }
      for (int id : t.mine)
        if (k.remove(id) == 0) ++r.ipc_removed;
      if (::setresuid(static_cast<uid_t>(-1), saved_euid, static_cast<uid_t>(-1)) != 0) {
        r.problems.push_back("cannot return to uid " + std::to_string(saved_euid) + ": " + errno_text(errno));
        return;
      }
      ::setfsuid(o.uid);
      t = read_ipc_table(path, k.id_column, o.uid);
    }
    if (!t.mine.empty() || t.others != 0)
      r.problems.push_back(std::to_string(t.mine.size() + t.others) + " System V " + k.file + " objects left");
  }
}

}  // namespace

std::vector<pid_t> processes_of(const std::string& proc_root, uid_t uid, pid_t self) {
  std::vector<pid_t> out;
  DIR* d = ::opendir(proc_root.c_str());
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    pid_t pid = 0;
    const std::string_view name = e->d_name;
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc{} || p != name.data() + name.size() || pid == self || pid <= 1) continue;
    const auto st = read_status(proc_root + "/" + std::string(name) + "/status");
    if (!st.readable || st.zombie) continue;
    if (st.ids[0] == uid || st.ids[1] == uid || st.ids[2] == uid) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

scrub_report scrub_user(const scrub_options& o) {
  scrub_report r;
  const auto t0 = steady::now();
  const auto deadline = t0 + o.budget;
  if (o.uid == 0) {
    r.problems.push_back("refusing to scrub uid 0");
    return r;
  }
  // Processes first: nothing may write a file or create an object behind the cleanup.
  kill_processes(o, deadline, r);
  if (r.clean()) {
    remove_ipc(o, r);
    for (const auto& p : o.paths) empty_directory(p, o, deadline, r);
    if (!o.workspace.empty() && ::chmod(o.workspace.c_str(), 0755) != 0)
      r.problems.push_back("cannot restore the mode of " + o.workspace + ": " + errno_text(errno));
    // What is left decides, not what the steps believed they did.
    if (!processes_of(o.proc_root, o.uid, ::getpid()).empty()) r.problems.push_back("a process of the user reappeared");
    for (const auto& p : o.paths) directory_is_empty(p, r);
  }
  r.duration = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t0);
  return r;
}

}  // namespace berth::sandbox
