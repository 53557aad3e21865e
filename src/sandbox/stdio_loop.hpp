#pragma once
// The process shell around server_fsm: one poll() loop over stdin, a SIGCHLD signalfd and the
// pipes of running commands. Commands run as `/bin/sh -c` in their own process group (killed as
// a group on timeout or cancellation) with stdin from /dev/null, in the workspace root.
// With a user (--user), commands run under that uid/gid with no capabilities, and berth/reset
// scrubs with `scrub`; without one they run as the server does and berth/reset reports that it
// cannot vouch for anything (the gateway then never reuses the container).
// Returns the process exit status once stdin is closed (0) or stdout is gone (1).
#include <optional>
#include <string>
#include <string_view>

#include "berth/sandbox/scrub.hpp"
#include "berth/sandbox/server.hpp"

namespace berth::sandbox {

struct loop_options {
  std::string workdir;
  std::optional<scrub_options> user;  // uid/gid commands run as, and how to scrub after them
};

int run_stdio_loop(server_fsm& fsm, const loop_options& opts, int in_fd, int out_fd);

// Writes all of `s` to `fd` (EINTR retried, a full non-blocking fd waited on); false when the
// reader is gone.
bool write_all(int fd, std::string_view s);

}  // namespace berth::sandbox
