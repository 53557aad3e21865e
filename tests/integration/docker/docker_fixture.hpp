#pragma once
// Shared fixture for integration tests against the real dockerd: an io_context, a client, a
// unique per-process label (berth.testrun=<token>) on every container, and a teardown that
// removes every container carrying it, even when the test failed.
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <gtest/gtest.h>

#include "berth/core/metrics.hpp"
#include "berth/core/random.hpp"
#include "berth/docker/client.hpp"

namespace berth::testing {

inline bool docker_required() { return std::getenv("BERTH_REQUIRE_DOCKER") != nullptr; }
inline bool docker_socket_present() { return std::filesystem::exists("/var/run/docker.sock"); }

inline std::string test_image() {
  const char* img = std::getenv("SANDBOX_IMAGE");
  return img && *img ? img : "berth-sandbox:latest";
}

// Lower-case alnum token: usable in container names and label values.
inline std::string run_token() {
  std::string t = core::random_token(9);
  for (auto& c : t) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = 'x';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return t;
}

class docker_fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!docker_socket_present() && !docker_required()) GTEST_SKIP() << "no /var/run/docker.sock";
    token_ = run_token();
    docker::client_options o;
    o.call_timeout = std::chrono::seconds(30);
    client_ = std::make_unique<docker::client>(io_.get_executor(), o, metrics_);
    auto v = run(client_->negotiate());
    ASSERT_TRUE(v) << v.error().message;
    auto img = run(client_->image_inspect(test_image()));
    ASSERT_TRUE(img) << img.error().message << " (run scripts/build-sandbox-image.sh)";
  }
  void TearDown() override {
    if (!client_) return;
    cleanup();
  }

  void cleanup() {
    auto list = run(client_->list_containers(test_labels(), true));
    ASSERT_TRUE(list) << list.error().message;
    for (const auto& c : *list) {
      auto r = run(client_->remove_container(c.id, true));
      EXPECT_TRUE(r) << r.error().message;
    }
  }

  std::map<std::string, std::string> test_labels() const { return {{"berth.test", "1"}, {"berth.testrun", token_}}; }

  // Runs a coroutine on the io_context to completion, bounded in time.
  template <class T>
  T run(boost::asio::awaitable<T> aw, std::chrono::seconds limit = std::chrono::seconds(120)) {
    auto fut = boost::asio::co_spawn(io_, std::move(aw), boost::asio::use_future);
    io_.restart();
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "coroutine did not finish within " << limit.count() << " s";
        io_.stop();
        break;
      }
      io_.run_one_for(std::chrono::milliseconds(50));
      if (io_.stopped()) io_.restart();
    }
    return fut.get();
  }

  // Runs the io_context until pred() holds or the limit passes (waits on events, not sleeps).
  template <class Pred>
  bool run_until(Pred pred, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    io_.restart();
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.run_one_for(std::chrono::milliseconds(20));
      if (io_.stopped()) io_.restart();
    }
    return true;
  }

  docker::container_spec spec() {
    core::config cfg;
    cfg.replica_id = "test-" + token_;
    cfg.sandbox_image = test_image();
    auto s = docker::hardened_spec(cfg, "itest");
    for (const auto& [k, v] : test_labels()) s.labels[k] = v;
    return s;
  }

  boost::asio::io_context io_;
  core::metrics metrics_;
  std::unique_ptr<docker::client> client_;
  std::string token_;
};

}  // namespace berth::testing
