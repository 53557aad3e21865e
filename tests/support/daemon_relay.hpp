#pragma once
// Test helper: a unix-socket relay between a docker::client and the real dockerd socket, so a
// test can break the daemon connections the way a dockerd restart does, at a chosen moment of
// the traffic. Everything runs on the io_context given (the fixture drives it from the test
// thread); the relay only forwards bytes, it never answers for the daemon.
#include <unistd.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

namespace berth::testing {

class daemon_relay {
 public:
  // What happens once a client sends bytes that contain the trigger.
  enum class on_trigger {
    cut,   // both ends of that connection closed at once (what a daemon that exits does)
    hold,  // its bytes no longer read (a daemon that stopped reading): the client's write stalls
  };

  daemon_relay(boost::asio::io_context& io, std::string upstream, std::string path)
      : io_(io), upstream_(std::move(upstream)), path_(std::move(path)), acceptor_(io) {
    ::unlink(path_.c_str());
    acceptor_.open();
    acceptor_.bind(local::endpoint(path_));
    acceptor_.listen();
    boost::asio::co_spawn(io_, accept_loop(this), boost::asio::detached);
  }
  ~daemon_relay() {
    boost::system::error_code ig;
    acceptor_.close(ig);
    cut_all();
    ::unlink(path_.c_str());
  }
  daemon_relay(const daemon_relay&) = delete;
  daemon_relay& operator=(const daemon_relay&) = delete;

  const std::string& path() const { return path_; }
  // Arms a one-shot trigger: the first client bytes that contain `marker` (whole, within one read
  // of up to 64 KiB) are not forwarded, and that connection is cut or held.
  void arm(std::string marker, on_trigger what) {
    marker_ = std::move(marker);
    what_ = what;
    fired_ = false;
  }
  bool fired() const { return fired_; }
  void cut_all() {
    for (auto& w : links_)
      if (auto l = w.lock()) l->close();
    links_.clear();
  }

 private:
  using local = boost::asio::local::stream_protocol;
  struct link {
    explicit link(boost::asio::io_context& io) : client(io), daemon(io) {}
    local::socket client;
    local::socket daemon;
    void close() {
      boost::system::error_code ig;
      client.close(ig);
      daemon.close(ig);
    }
  };

  static boost::asio::awaitable<void> accept_loop(daemon_relay* self) {
    constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
    for (;;) {
      auto l = std::make_shared<link>(self->io_);
      auto [ec] = co_await self->acceptor_.async_accept(l->client, tuple);
      if (ec) co_return;  // the acceptor was closed
      auto [cec] = co_await l->daemon.async_connect(local::endpoint(self->upstream_), tuple);
      if (cec) {
        l->close();
        continue;
      }
      self->links_.push_back(l);
      boost::asio::co_spawn(self->io_, pump(self, l, true), boost::asio::detached);
      boost::asio::co_spawn(self->io_, pump(self, l, false), boost::asio::detached);
    }
  }

  // One direction of one link; ends (and closes the link) at the first error of either side.
  static boost::asio::awaitable<void> pump(daemon_relay* self, std::shared_ptr<link> l, bool from_client) {
    constexpr auto tuple = boost::asio::as_tuple(boost::asio::use_awaitable);
    auto& in = from_client ? l->client : l->daemon;
    auto& out = from_client ? l->daemon : l->client;
    std::array<char, 65536> buf{};
    for (;;) {
      auto [rec, n] = co_await in.async_read_some(boost::asio::buffer(buf), tuple);
      if (rec) break;
      if (from_client && !self->fired_ && !self->marker_.empty() &&
          std::string_view(buf.data(), n).find(self->marker_) != std::string_view::npos) {
        self->fired_ = true;
        if (self->what_ == on_trigger::hold) co_return;  // never reads this client again
        break;
      }
      auto [wec, wn] = co_await boost::asio::async_write(out, boost::asio::buffer(buf.data(), n), tuple);
      (void)wn;
      if (wec) break;
    }
    l->close();
  }

  boost::asio::io_context& io_;
  std::string upstream_;
  std::string path_;
  local::acceptor acceptor_;
  std::vector<std::weak_ptr<link>> links_;
  std::string marker_;
  on_trigger what_ = on_trigger::cut;
  bool fired_ = false;
};

}  // namespace berth::testing
