#include "readiness_hub.hpp"

#include <sys/epoll.h>

#include <array>
#include <cerrno>
#include <system_error>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>

namespace berth::engineio::detail {

namespace {
int create_epoll() {
  const int fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::system_category(), "epoll_create1");
  return fd;
}
std::uint64_t event_key(std::uint32_t slot, std::uint32_t generation) {
  return (static_cast<std::uint64_t>(generation) << 32) | slot;
}
}  // namespace

void read_signal::cancel() {
  if (!waiting_) return;
  asio::post(strand_, [h = std::move(waiting_)]() mutable { std::move(h)(asio::error::operation_aborted); });
}

void read_signal::on_event() {
  readable_ = true;
  if (!waiting_) return;
  auto h = std::move(waiting_);
  std::move(h)(boost::system::error_code());
}

readiness_hub::readiness_hub(asio::io_context& ioc) : epoll_fd_(create_epoll()), descriptor_(ioc, epoll_fd_) { arm(); }

readiness_hub::~readiness_hub() {
  boost::system::error_code ec;
  descriptor_.close(ec);  // closes epoll_fd_
  // A reader still parked owns its coroutine through this handler, and the coroutine owns the
  // signal: drop the handler so that the cycle ends.
  std::lock_guard lock(mutex_);
  for (auto& s : slots_) {
    if (auto signal = s.signal.lock()) signal->waiting_ = nullptr;
  }
}

std::shared_ptr<read_signal> readiness_hub::watch(int fd, read_signal::strand_type strand) {
  auto signal = std::make_shared<read_signal>(std::move(strand));
  std::uint32_t generation;
  {
    std::lock_guard lock(mutex_);
    if (free_.empty()) {
      free_.push_back(static_cast<std::uint32_t>(slots_.size()));
      slots_.emplace_back();
    }
    signal->slot_ = free_.back();
    free_.pop_back();
    auto& s = slots_[signal->slot_];
    s.signal = signal;
    generation = s.generation;
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = event_key(signal->slot_, generation);
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;
    unwatch(*signal);
    errno = err;
    return nullptr;
  }
  return signal;
}

void readiness_hub::unwatch(read_signal& signal) {
  // No EPOLL_CTL_DEL: the registration ends with the socket's close, and the fd number may by
  // then belong to another socket. Events still queued for this slot carry the old generation.
  std::lock_guard lock(mutex_);
  auto& s = slots_[signal.slot_];
  if (s.signal.lock().get() != &signal) return;
  s.signal.reset();
  ++s.generation;
  free_.push_back(signal.slot_);
}

void readiness_hub::arm() {
  descriptor_.async_wait(asio::posix::stream_descriptor::wait_read, [this](boost::system::error_code ec) {
    if (ec) return;  // closed: the hub is going away
    on_ready();
    arm();
  });
}

void readiness_hub::on_ready() {
  thread_local std::vector<std::shared_ptr<read_signal>> ready;
  std::array<epoll_event, 256> events;
  // Bounded: a full batch is followed by at most a few more, then Asio's next wait (the
  // registration is re-armed with EPOLL_CTL_MOD, which reports what is still pending).
  for (int round = 0; round < 4; ++round) {
    const int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), 0);
    if (n <= 0) break;
    {
      std::lock_guard lock(mutex_);
      for (int i = 0; i < n; ++i) {
        const auto index = static_cast<std::uint32_t>(events[i].data.u64);
        const auto generation = static_cast<std::uint32_t>(events[i].data.u64 >> 32);
        if (index >= slots_.size() || slots_[index].generation != generation) continue;
        if (auto signal = slots_[index].signal.lock()) ready.push_back(std::move(signal));
      }
    }
    for (auto& signal : ready) {
      auto& strand = signal->strand_;
      asio::dispatch(strand, [signal = std::move(signal)] { signal->on_event(); });
    }
    ready.clear();
    if (n < static_cast<int>(events.size())) break;
  }
}

}  // namespace berth::engineio::detail
