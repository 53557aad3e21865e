#pragma once
// orphan_reaper: removes containers left behind by replicas that died. Every interval (and once
// at start()), each replica tries `SET orphan-reaper-lock NX PX interval`; the one that wins runs
// the round for the whole fleet, the others skip it. A round lists the containers labelled
// berth.managed=true on the shared dockerd, then reads the live replicas (heartbeat keys), the
// known replicas (`replicas` zset) and the containers referenced by live sessions, and removes
// the ones plan_orphan_reaping() calls orphans (orphans.hpp: never a live replica's, never our
// own, never one a session references — its user may resume it on another replica).
// Visible three ways: berth_orphans_reaped_total per container, one info line per round with
// the counts, berth_orphan_reaper_failures_total + a warn line when a round or removal fails.
// Lifetime: create() -> start() ... stop(); the loop holds a shared_ptr until stop(). The store
// and the docker client must outlive it. Thread-safety: start/stop/run_round may be called from
// any thread; the loop runs on the reaper's own strand.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/session/orphans.hpp"
#include "berth/session/store.hpp"

namespace berth::session {

struct orphan_reaper_options {
  std::chrono::milliseconds interval{60000};  // ORPHAN_REAP_INTERVAL_MS; also the lock's PX
  std::size_t max_removals = 100;             // per round; the rest waits for the next round
  // Extra label filter on top of berth.managed=true (tests scope a round to their own run).
  std::map<std::string, std::string> label_filter;
  // The containers this replica's pool holds (asked after the listing); unset: own containers are
  // never reaped.
  std::function<boost::asio::awaitable<std::vector<std::string>>()> own_held;
};

struct orphan_round {
  bool ran = false;  // false: another replica holds this interval's lock; only our own containers were looked at
  std::size_t listed = 0;
  std::size_t orphans = 0;   // found (removed + failed + deferred)
  std::size_t removed = 0;
  std::size_t failed = 0;
  std::size_t deferred = 0;
  std::map<orphan_verdict, std::size_t> kept;
  std::size_t forgotten_replicas = 0;
};

class orphan_reaper : public std::enable_shared_from_this<orphan_reaper> {
  struct private_tag {};

 public:
  static std::shared_ptr<orphan_reaper> create(session_store& store, docker::client& docker, orphan_reaper_options opts,
                                               core::metrics& metrics);
  orphan_reaper(private_tag, session_store& store, docker::client& docker, orphan_reaper_options opts,
                core::metrics& metrics);
  // One round if this replica wins the interval's lock. Errors: Redis or Docker unreachable
  // (nothing was removed after a failed listing).
  boost::asio::awaitable<core::result<orphan_round>> run_round();
  void start();
  void stop();

 private:
  static boost::asio::awaitable<void> loop(std::shared_ptr<orphan_reaper> self);
  boost::asio::awaitable<core::result<bool>> try_lock();
  boost::asio::awaitable<core::result<std::set<std::string>>> known_replicas();

  session_store& store_;
  docker::client& docker_;
  orphan_reaper_options opts_;
  core::counter& c_reaped_;
  core::counter& c_failed_;
  boost::asio::strand<boost::asio::any_io_executor> strand_;
  boost::asio::steady_timer timer_;
  bool stopped_ = false;
};

}  // namespace berth::session
