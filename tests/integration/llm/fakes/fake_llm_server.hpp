#pragma once
// A scripted HTTP/1.1 (optionally HTTPS) server on 127.0.0.1 standing in for a cloud LLM API.
// It answers with bodies in the provider's real wire format (see tests/unit/llm/wire_samples.hpp),
// or streams server-sent events (tests/unit/llm/stream_samples.hpp) one write each, chunked or
// close-delimited, optionally pausing between them, cutting the connection midway, or stalling;
// and records every request (method, target, headers, body, arrival time) for assertions.
// Runs on the test's io_context (single thread): no locking. Destroy it before the io_context.
#include <chrono>
#include <cstdio>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace berth::llm::testing {

struct fake_reply {
  fake_reply(unsigned st, std::string b, std::vector<std::pair<std::string, std::string>> h = {}, bool hang_up = false)
      : status(st), body(std::move(b)), headers(std::move(h)), hang(hang_up) {}
  unsigned status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool hang = false;  // read the request, then never answer (deadline tests)
  // A text/event-stream reply: each event written (and flushed) on its own.
  std::vector<std::string> events;
  bool chunked = true;                      // false: close-delimited body (HTTP/1.1 without length)
  std::chrono::milliseconds gap{0};         // pause before each event after the first
  std::optional<std::size_t> cut_after;     // close the connection after this many events, unfinished
  std::optional<std::size_t> stall_after;   // after this many events, send nothing more (idle deadline)

  static fake_reply stream(std::vector<std::string> evs) {
    fake_reply r(200, "");
    r.events = std::move(evs);
    return r;
  }
};

struct seen_request {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::chrono::steady_clock::time_point at;
};

class fake_llm_server {
 public:
  // `script[i]` answers request i; the last entry repeats. `tls`: serve HTTPS with that context.
  fake_llm_server(boost::asio::io_context& ioc, std::vector<fake_reply> script,
                  boost::asio::ssl::context* tls = nullptr)
      : ioc_(ioc), acceptor_(ioc, {boost::asio::ip::make_address("127.0.0.1"), 0}), script_(std::move(script)), tls_(tls) {
    boost::asio::co_spawn(ioc_, accept_loop(), boost::asio::detached);
  }
  ~fake_llm_server() {
    boost::system::error_code ec;
    acceptor_.close(ec);
  }

  std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  std::string base_url() const { return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port()); }
  const std::vector<seen_request>& seen() const { return seen_; }
  // Streams: connections the client closed before the whole reply was written.
  std::size_t streams_abandoned() const { return abandoned_; }
  std::size_t events_written() const { return events_written_; }
  std::size_t tls_handshakes_failed() const { return handshake_failures_; }
  // Checked against every request before the script answers it: a reply here (the provider's
  // 400 for a request its API refuses) is sent instead.
  std::function<std::optional<fake_reply>(const seen_request&)> check;

 private:
  using tcp = boost::asio::ip::tcp;
  static constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  boost::asio::awaitable<void> accept_loop() {
    for (int i = 0; i < 1000; ++i) {  // bounded: no test needs more connections
      auto [ec, sock] = co_await acceptor_.async_accept(tuple);
      if (ec) co_return;
      boost::asio::co_spawn(ioc_, serve(std::move(sock)), boost::asio::detached);
    }
  }

  boost::asio::awaitable<void> serve(tcp::socket sock) {
    boost::beast::tcp_stream stream(std::move(sock));
    if (!tls_) {
      co_await handle(stream);
      co_return;
    }
    boost::asio::ssl::stream<boost::beast::tcp_stream> s(std::move(stream), *tls_);
    auto [ec] = co_await s.async_handshake(boost::asio::ssl::stream_base::server, tuple);
    if (ec) {
      ++handshake_failures_;
      co_return;
    }
    co_await handle(s);
  }

  template <class Stream>
  boost::asio::awaitable<void> handle(Stream& s) {
    namespace http = boost::beast::http;
    boost::beast::flat_buffer buf;
    http::request<http::string_body> req;
    auto [ec, n] = co_await http::async_read(s, buf, req, tuple);
    if (ec) co_return;
    seen_request r{std::string(req.method_string()), std::string(req.target()), {}, req.body(),
                   std::chrono::steady_clock::now()};
    for (const auto& f : req) {
      std::string name(f.name_string());
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = std::string(f.value());
    }
    seen_.push_back(std::move(r));
    std::optional<fake_reply> refusal;
    if (check) refusal = check(seen_.back());
    const fake_reply& script = refusal ? *refusal : script_.at(std::min(seen_.size() - 1, script_.size() - 1));
    if (script.hang) {
      boost::asio::steady_timer forever(ioc_, std::chrono::hours(1));
      co_await forever.async_wait(tuple);
      co_return;
    }
    if (!script.events.empty()) {
      co_await stream(s, script);
      co_return;
    }
    http::response<http::string_body> res{static_cast<http::status>(script.status), 11};
    res.set(http::field::content_type, "application/json");
    for (const auto& [k, v] : script.headers) res.set(k, v);
    res.body() = script.body;
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(s, res, tuple);
    boost::system::error_code ignored;
    boost::beast::get_lowest_layer(s).socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  template <class Stream>
  boost::asio::awaitable<void> stream(Stream& s, const fake_reply& script) {
    std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n";
    head += script.chunked ? "Transfer-Encoding: chunked\r\n" : "";
    head += "Connection: close\r\n\r\n";
    auto [hec, hn] = co_await boost::asio::async_write(s, boost::asio::buffer(head), tuple);
    if (hec) co_return;
    for (std::size_t i = 0; i < script.events.size(); ++i) {
      if (script.cut_after && i == *script.cut_after) break;
      if (script.stall_after && i == *script.stall_after) {
        boost::asio::steady_timer forever(ioc_, std::chrono::hours(1));
        co_await forever.async_wait(tuple);
        co_return;
      }
      if (i > 0 && script.gap.count() > 0) {
        boost::asio::steady_timer pause(ioc_, script.gap);
        co_await pause.async_wait(tuple);
      }
      std::string piece = script.events[i];
      if (script.chunked) {
        char len[32];
        std::snprintf(len, sizeof len, "%zx\r\n", piece.size());
        piece = len + piece + "\r\n";
      }
      auto [ec, n] = co_await boost::asio::async_write(s, boost::asio::buffer(piece), tuple);
      if (ec) {
        ++abandoned_;
        co_return;
      }
      ++events_written_;
    }
    if (!script.cut_after && script.chunked) {
      auto [ec, n] = co_await boost::asio::async_write(s, boost::asio::buffer(std::string_view("0\r\n\r\n")), tuple);
      (void)ec;
    }
    boost::system::error_code ignored;
    boost::beast::get_lowest_layer(s).socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  boost::asio::io_context& ioc_;
  tcp::acceptor acceptor_;
  std::vector<fake_reply> script_;
  boost::asio::ssl::context* tls_;
  std::vector<seen_request> seen_;
  std::size_t handshake_failures_ = 0;
  std::size_t abandoned_ = 0;
  std::size_t events_written_ = 0;
};

}  // namespace berth::llm::testing
