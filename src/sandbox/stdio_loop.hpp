#pragma once
// The process shell around server_fsm: one poll() loop over stdin, a SIGCHLD signalfd and the
// pipes of running commands. Commands run as `/bin/sh -c` in their own process group (killed as
// a group on timeout or cancellation) with stdin from /dev/null, in the workspace root.
// Returns the process exit status once stdin is closed (0) or stdout is gone (1).
#include "berth/sandbox/server.hpp"

namespace berth::sandbox {

int run_stdio_loop(server_fsm& fsm, const std::string& workdir, int in_fd, int out_fd);

}  // namespace berth::sandbox
