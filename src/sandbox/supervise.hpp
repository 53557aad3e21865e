#pragma once
// `berth-sandbox supervise CMD [ARG...]`: the sandbox container's main process. It runs CMD (the
// MCP server) on the container's own stdin/stdout, which the gateway reaches by attaching to the
// container: no `docker exec`, so dockerd holds 7 descriptors per sandbox instead of 12, and a
// container costs it no exec. When CMD exits (killed, crashed) it is started again on the same
// stdio after a notifications/berth/server_restarted line, so a client knows its requests died
// and initializes again; the container and its /workspace live on. Too many exits in a short
// time end the supervisor, hence the container, for the pool to replace. It is the container's
// PID 1 (no Docker init): it reaps every orphan, and forwards SIGTERM/SIGINT/SIGHUP to the server.
namespace berth::sandbox {

// argv: CMD and its arguments (null-terminated). Returns the process exit status.
int supervise(char** argv);

}  // namespace berth::sandbox
