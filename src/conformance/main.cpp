// berth-conformance-server: the test-server contract of ../shared/conformance/README.md, built
// from Berth's own libraries: raw Engine.IO echo on /engine.io/, Socket.IO on /socket.io/ with
// namespaces "/" and "/custom", ping 300/200, CORS "*".
#include <csignal>
#include <cstdlib>
#include <iostream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "berth/core/logging.hpp"
#include "berth/engineio/server.hpp"
#include "berth/socketio/server.hpp"

using namespace berth;
using json = nlohmann::json;

namespace {
// Raw Engine.IO endpoint: every message goes back unchanged (text as text, binary as binary).
class echo_handler : public engineio::session_handler {
 public:
  explicit echo_handler(std::shared_ptr<engineio::session> s) : session_(*s) {}
  void on_message(engineio::packet&& p) override { session_.send_on_strand(std::move(p)); }
  void on_close(engineio::close_reason) override {}

 private:
  engineio::session& session_;
};

void register_main_namespace(socketio::server& io) {
  io.of("/").on_connection([](std::shared_ptr<socketio::socket> s) {
    s->emit("auth", json::array({s->auth()}));
    s->on("message", [s](json args, socketio::socket::ack_fn) { s->emit("message-back", std::move(args)); });
    s->on("message-with-ack", [](json args, socketio::socket::ack_fn ack) {
      if (ack) ack(std::move(args));
    });
    s->on("get-handshake", [s](json, socketio::socket::ack_fn ack) {
      if (!ack) return;
      json query = json::object();
      for (const auto& [k, v] : s->handshake().query) query[k] = v;
      ack(json::array({json{{"query", query}, {"auth", s->auth()}}}));
    });
    s->on("request-server-ack", [s](json args, socketio::socket::ack_fn ack) {
      json payload = args.empty() ? json() : args[0];
      s->emit_with_ack("ack-me", json::array({payload}), std::chrono::seconds(2),
                       [ack](std::optional<json> reply) {
                         if (!ack) return;
                         if (!reply) return ack(json::array({json{{"error", "timeout"}}}));
                         ack(json::array({json{{"reply", reply->empty() ? json() : (*reply)[0]}}}));
                       });
    });
    s->on("force-disconnect", [s](json, socketio::socket::ack_fn) { s->disconnect(true); });
  });
  io.of("/custom").on_connection([](std::shared_ptr<socketio::socket> s) { s->emit("auth", json::array({s->auth()})); });
}
}  // namespace

int main(int argc, char** argv) {
  const char* port_env = std::getenv("PORT");
  int port = argc > 1 ? std::atoi(argv[1]) : port_env ? std::atoi(port_env) : 3955;
  core::init_logging(std::getenv("LOG_LEVEL") ? std::getenv("LOG_LEVEL") : "warn", "text");
  boost::asio::io_context ioc;
  core::metrics metrics;
  http::server http(ioc, {.host = "127.0.0.1", .port = static_cast<std::uint16_t>(port), .body_limit = 1000000}, metrics);

  engineio::server_options eio_opts;
  eio_opts.session.ping_interval = std::chrono::milliseconds(300);
  eio_opts.session.ping_timeout = std::chrono::milliseconds(200);
  eio_opts.cors.allowed = {"*"};
  eio_opts.path = "/engine.io/";
  engineio::server raw(ioc, eio_opts, metrics, [](std::shared_ptr<engineio::session> s) {
    return std::make_unique<echo_handler>(std::move(s));
  });
  socketio::server io({.connect_timeout = std::chrono::milliseconds(1000)}, metrics);
  register_main_namespace(io);
  eio_opts.path = "/socket.io/";
  engineio::server sio(ioc, eio_opts, metrics, io.handler_factory());
  raw.attach(http);
  sio.attach(http);
  auto bound = http.listen();
  http.start();
  std::cout << "berth-conformance-server listening on 127.0.0.1:" << bound << std::endl;
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  signals.async_wait([&](auto, int) {
    http.stop();
    raw.close_all();
    sio.close_all();
    ioc.stop();
  });
  ioc.run();
}
