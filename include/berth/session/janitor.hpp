#pragma once
// replica_heartbeat: `replica:{id}` SET PX ttl, refreshed every ttl/3 while running; with a
// status function, each beat also writes its JSON to the `replica-stats` hash (field = id), so
// any replica can answer for the whole cluster without asking the others.
// janitor: every interval, (1) touches the sessions connected to this replica (connected_fn), so
// an active user is never reaped, then (2) claims sessions idle past idle_timeout — each claim is
// an atomic Lua ZREM, so exactly one replica wins — deletes session + history, and calls
// on_reaped (destroy the container). sweep() runs one pass (tests call it directly).
// Lifetime: create() -> start() ... stop(); loops hold a shared_ptr until stop().
// Thread-safety: start/stop/sweep may be called from any thread; callbacks run on the janitor's
// executor and must not block.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/redis/client.hpp"
#include "berth/session/store.hpp"

namespace berth::session {

class replica_heartbeat : public std::enable_shared_from_this<replica_heartbeat> {
  struct private_tag {};

 public:
  static std::shared_ptr<replica_heartbeat> create(std::shared_ptr<redis::redis_client> redis, key_schema keys,
                                                   std::string replica_id, std::chrono::milliseconds ttl,
                                                   core::metrics& metrics);
  replica_heartbeat(private_tag, std::shared_ptr<redis::redis_client> redis, key_schema keys, std::string replica_id,
                    std::chrono::milliseconds ttl, core::metrics& metrics);
  boost::asio::awaitable<core::result<void>> beat();
  // Called on every beat (on the heartbeat's strand); set before start(). Must not block.
  void set_status(std::function<std::string()> status) { status_ = std::move(status); }
  void start();
  void stop();  // stops beating and deletes the key (orderly shutdown)

 private:
  static boost::asio::awaitable<void> loop(std::shared_ptr<replica_heartbeat> self);
  std::shared_ptr<redis::redis_client> redis_;
  key_schema keys_;
  std::string id_;
  std::chrono::milliseconds ttl_;
  std::function<std::string()> status_;
  core::counter& c_failed_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

struct janitor_options {
  std::chrono::milliseconds interval{5000};   // must be well below idle_timeout
  std::size_t batch = 200;                    // sessions claimed per sweep at most
};

// Called once per reaped session, by the replica that won the claim. The record may have only
// `id` set if the hash had already expired. Must not be a capturing coroutine lambda: return the
// awaitable of a free coroutine function.
using reaped_fn = std::function<boost::asio::awaitable<void>(session_record)>;
// Session ids with a socket on this replica right now.
using connected_fn = std::function<std::vector<std::string>()>;

class janitor : public std::enable_shared_from_this<janitor> {
  struct private_tag {};

 public:
  static std::shared_ptr<janitor> create(session_store& store, janitor_options opts, reaped_fn on_reaped,
                                         connected_fn connected, core::metrics& metrics);
  janitor(private_tag, session_store& store, janitor_options opts, reaped_fn on_reaped, connected_fn connected,
          core::metrics& metrics);
  // One pass; returns how many sessions this replica reaped.
  boost::asio::awaitable<core::result<std::size_t>> sweep();
  void start();
  void stop();

 private:
  static boost::asio::awaitable<void> loop(std::shared_ptr<janitor> self);
  session_store& store_;
  janitor_options opts_;
  reaped_fn on_reaped_;
  connected_fn connected_;
  core::counter& c_reaped_;
  core::counter& c_failed_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace berth::session
