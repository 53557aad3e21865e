#pragma once
// Between two users of one container, removes every trace the previous one could have left, as
// docs/SANDBOX.md's threat model lists them: processes of the user's uid (however they detached,
// whatever signals they ignore, at the pids limit), every entry in the writable paths (hidden
// ones, unwritable directories), and System V IPC objects. Then it checks that nothing is left:
// any doubt is a problem in the report and the caller destroys the container instead.
// Runs inside berth-sandbox, which is root in the container with only CAP_SETUID, CAP_SETGID and
// CAP_KILL; user commands run as `uid` and cannot signal, trace or write into it.
// Lifetime: a plain function. Thread-safety: changes the process's effective uid for a moment
// (System V IPC removal checks it); call it from the single-threaded server loop only.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "berth/sandbox/server.hpp"

namespace berth::sandbox {

struct scrub_options {
  uid_t uid = 1000;
  gid_t gid = 1000;
  std::vector<std::string> paths;  // emptied; the directories themselves stay
  std::string workspace;           // also gets its mode back (0755): the user owns it and may chmod it
  std::chrono::milliseconds budget{5000};
  std::size_t max_depth = 256;     // deeper trees are not walked: the container is not reused
  std::string proc_root = "/proc";
};

scrub_report scrub_user(const scrub_options& opts);

// Live (non-zombie) processes whose real, effective or saved uid is `uid`, other than `self`.
std::vector<pid_t> processes_of(const std::string& proc_root, uid_t uid, pid_t self);

}  // namespace berth::sandbox
