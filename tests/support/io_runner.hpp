#pragma once
// Test helper: an io_context running on a background thread, and run(awaitable) that blocks the
// test thread until the coroutine finishes (bounded: fails the test after `limit`).
#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace berth::test {

class io_runner {
 public:
  io_runner() : guard_(io_.get_executor()), thread_([this] { io_.run(); }) {}
  ~io_runner() {
    guard_.reset();
    io_.stop();
    thread_.join();
  }
  boost::asio::io_context& io() { return io_; }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  template <class T>
  T run(boost::asio::awaitable<T> a, std::chrono::seconds limit = std::chrono::seconds(30)) {
    auto fut = boost::asio::co_spawn(io_, std::move(a), boost::asio::use_future);
    if (fut.wait_for(limit) != std::future_status::ready) throw std::runtime_error("io_runner: coroutine did not finish in time");
    return fut.get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread thread_;
};

// Polls `pred` every 5 ms until true or `limit`; returns the last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(10000)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

}  // namespace berth::test
