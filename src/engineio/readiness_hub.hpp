#pragma once
// Read readiness for websocket sockets, from one epoll instance of our own.
//
// Why not Asio's reactor: each async read Asio starts on a socket costs a syscall before any
// data is there, either a speculative recv (EAGAIN in a request/response exchange, where the
// peer answers only after our reply) or an epoll_ctl(MOD). The hub registers a socket once
// (edge-triggered) and is itself one descriptor in Asio's reactor, so a websocket message costs
// one recv and one send; the hub's epoll_wait is shared by every socket ready at that moment.

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/strand.hpp>

namespace berth::engineio::detail {

namespace asio = boost::asio;

// What one reader knows about its socket. Used on the reader's strand only.
class read_signal {
 public:
  using strand_type = asio::strand<asio::io_context::executor_type>;
  explicit read_signal(strand_type strand) : strand_(std::move(strand)) {}
  read_signal(const read_signal&) = delete;
  read_signal& operator=(const read_signal&) = delete;

  // Data may be waiting: set by a readiness event and at registration (bytes may have arrived
  // before it), cleared by the reader before a recv that may drain the socket.
  bool maybe_readable() const noexcept { return readable_; }
  void set_maybe_readable(bool v) noexcept { readable_ = v; }

  // Completes with success on the next readiness event, or operation_aborted after cancel().
  // Call only when !maybe_readable(): the event that would wake it may already have passed.
  template <class Token>
  auto async_wait(Token&& token) {
    return asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) {
          // Not move-assignment: Asio 1.26's any_completion_handler::operator=(&&) recurses.
          // The recycling allocator: one wait per message must not cost a malloc and a free.
          decltype(waiting_)(asio::bind_allocator(asio::recycling_allocator<void>(), std::move(handler))).swap(waiting_);
        },
        token);
  }
  // Ends a pending wait with operation_aborted (posted: never resumes the reader inside the caller).
  void cancel();

 private:
  friend class readiness_hub;
  void on_event();

  strand_type strand_;
  asio::any_completion_handler<void(boost::system::error_code)> waiting_;
  std::uint32_t slot_ = 0;
  bool readable_ = true;
};

class readiness_hub {
 public:
  explicit readiness_hub(asio::io_context& ioc);  // throws std::system_error if epoll is unavailable
  ~readiness_hub();
  readiness_hub(const readiness_hub&) = delete;
  readiness_hub& operator=(const readiness_hub&) = delete;

  // Registers fd; events go to the signal's strand until unwatch() or the socket's close. Null
  // (errno set) if the kernel refuses the registration.
  std::shared_ptr<read_signal> watch(int fd, read_signal::strand_type strand);
  // Stops delivering to the signal. The fd's registration itself ends when the socket closes.
  void unwatch(read_signal& signal);

 private:
  struct slot {
    std::weak_ptr<read_signal> signal;
    std::uint32_t generation = 0;
  };
  void arm();
  void on_ready();

  int epoll_fd_;
  asio::posix::stream_descriptor descriptor_;
  std::mutex mutex_;  // slots_ and free_: watch/unwatch run on session strands, on any thread
  std::vector<slot> slots_;
  std::vector<std::uint32_t> free_;
};

}  // namespace berth::engineio::detail
