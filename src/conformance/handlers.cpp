#include "berth/conformance/handlers.hpp"

namespace berth::conformance {

using json = nlohmann::json;
using socket_ptr = std::shared_ptr<socketio::socket>;

void register_echo_handlers(socketio::namespace_& nsp) {
  nsp.on_connection([](socket_ptr sock) { sock->emit("auth", json::array({sock->auth()})); });
  // Namespace-level handlers: shared by every socket (none holds a copy), given the socket.
  nsp.on("message", [](const socket_ptr& s, json args, socketio::socket::ack_fn) { s->emit("message-back", std::move(args)); });
  nsp.on("message-with-ack", [](const socket_ptr&, json args, socketio::socket::ack_fn ack) {
    if (ack) ack(std::move(args));
  });
  // The same two echoes for arguments without binary, which arrive as text: passed back as they
  // came, never parsed (the binary ones above need the tree to find their attachments).
  nsp.on_text("message", [](const socket_ptr& s, std::string args, socketio::socket::text_ack_fn) {
    s->emit_text("message-back", std::move(args));
  });
  nsp.on_text("message-with-ack", [](const socket_ptr&, std::string args, socketio::socket::text_ack_fn ack) {
    if (ack) ack(std::move(args));
  });
  nsp.on("get-handshake", [](const socket_ptr& s, json, socketio::socket::ack_fn ack) {
    if (!ack) return;
    json query = json::object();
    for (const auto& [k, v] : s->handshake().query) query[k] = v;
    ack(json::array({json{{"query", query}, {"auth", s->auth()}}}));
  });
  nsp.on("request-server-ack", [](const socket_ptr& s, json args, socketio::socket::ack_fn ack) {
    json payload = args.empty() ? json() : args[0];
    s->emit_with_ack("ack-me", json::array({payload}), std::chrono::seconds(2), [ack](std::optional<json> reply) {
      if (!ack) return;
      if (!reply) return ack(json::array({json{{"error", "timeout"}}}));
      ack(json::array({json{{"reply", reply->empty() ? json() : (*reply)[0]}}}));
    });
  });
  nsp.on("force-disconnect", [](const socket_ptr& s, json, socketio::socket::ack_fn) { s->disconnect(true); });
}

}  // namespace berth::conformance
