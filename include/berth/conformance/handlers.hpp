#pragma once
// The handlers of the conformance test-server contract (../shared/conformance/README.md):
// "auth" on connect, message -> message-back, message-with-ack, get-handshake,
// request-server-ack, force-disconnect. Used by berth-conformance-server on "/" and by the
// gateway on DIAGNOSTICS_NAMESPACE so end-to-end tests exercise the production binary.
#include "berth/socketio/server.hpp"

namespace berth::conformance {

void register_echo_handlers(socketio::namespace_& nsp);

}  // namespace berth::conformance
