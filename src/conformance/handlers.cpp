#include "berth/conformance/handlers.hpp"

namespace berth::conformance {

using json = nlohmann::json;

void register_echo_handlers(socketio::namespace_& nsp) {
  nsp.on_connection([](std::shared_ptr<socketio::socket> sock) {
    sock->emit("auth", json::array({sock->auth()}));
    // Handlers capture weak pointers: the socket owns its handlers, a strong capture would leak it.
    std::weak_ptr<socketio::socket> weak = sock;
    sock->on("message", [weak](json args, socketio::socket::ack_fn) {
      if (auto s = weak.lock()) s->emit("message-back", std::move(args));
    });
    sock->on("message-with-ack", [](json args, socketio::socket::ack_fn ack) {
      if (ack) ack(std::move(args));
    });
    sock->on("get-handshake", [weak](json, socketio::socket::ack_fn ack) {
      auto s = weak.lock();
      if (!ack || !s) return;
      json query = json::object();
      for (const auto& [k, v] : s->handshake().query) query[k] = v;
      ack(json::array({json{{"query", query}, {"auth", s->auth()}}}));
    });
    sock->on("request-server-ack", [weak](json args, socketio::socket::ack_fn ack) {
      auto s = weak.lock();
      if (!s) return;
      json payload = args.empty() ? json() : args[0];
      s->emit_with_ack("ack-me", json::array({payload}), std::chrono::seconds(2), [ack](std::optional<json> reply) {
        if (!ack) return;
        if (!reply) return ack(json::array({json{{"error", "timeout"}}}));
        ack(json::array({json{{"reply", reply->empty() ? json() : (*reply)[0]}}}));
      });
    });
    sock->on("force-disconnect", [weak](json, socketio::socket::ack_fn) {
      if (auto s = weak.lock()) s->disconnect(true);
    });
  });
}

}  // namespace berth::conformance
