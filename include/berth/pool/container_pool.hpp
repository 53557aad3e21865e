#pragma once
// The warm container pool of one replica: drives pool_fsm with the Docker client.
// - start(): removes containers labelled for this replica+pool (left by a previous run), checks
//   the image, warms up POOL_MIN_SIZE containers, then refills in the background (bounded
//   parallel creates, backoff after failures), reaps idle containers above the minimum after
//   POOL_IDLE_TIMEOUT_MS and replaces idle containers that die (events stream + periodic check).
// - acquire(): an idle container at once, else a new one under the max, else a FIFO wait up to
//   ACQUIRE_TIMEOUT_MS (on_queued gets the 1-based position), then POOL_EXHAUSTED + retryAfterMs.
// - A container_lease destroys its container when released or destroyed; recycle(server) gives it
//   back with its sandbox MCP server instead: the recycle hook scrubs it (berth/reset) and it goes
//   idle for the next user, at most POOL_MAX_USES times and for at most POOL_MAX_AGE_MS. A scrub
//   that fails or times out destroys the container (fail closed). POOL_RECYCLE=false: destroy.
// - ENABLE_CONTAINER_POOL=false: no idle containers, every acquire creates one.
// - set_prepare(): a hook run on every container that is about to go idle (the gateway opens the
//   sandbox's MCP exec there), so the lease hands out a container whose server is already up.
//   A container created for a caller that is already waiting is not prepared (the caller would
//   wait longer); neither is one of a disabled pool.
// Lifetime: create once in the app; call stop() before destroying. Leases may outlive the pool
// (their release is then a no-op: the orphan reaper owns those containers).
// Thread-safety: every public method may be called from any thread; the state lives on a strand.
#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include "berth/core/config.hpp"
#include "berth/core/errors.hpp"
#include "berth/core/metrics.hpp"
#include "berth/docker/client.hpp"
#include "berth/pool/pool_fsm.hpp"

namespace berth::pool {

// Cluster-wide accounting of containers (MAX_CONTAINERS), wired by the app to Redis
// (session::container_registry). An empty member means no accounting.
struct container_budget {
  // A slot for one more container before Docker is asked; false: the cluster is full.
  std::function<boost::asio::awaitable<core::result<bool>>(std::string reservation)> reserve;
  // The reservation became `container` (empty: the create failed).
  std::function<boost::asio::awaitable<core::result<void>>(std::string reservation, std::string container)> settle;
  std::function<boost::asio::awaitable<core::result<void>>(std::string container)> remove;
  // Every container the pool holds, every check_interval.
  std::function<boost::asio::awaitable<core::result<void>>(std::vector<std::string> containers)> refresh;
};

struct pool_options {
  std::string name = "default";                       // berth.pool label
  std::size_t max_parallel_creates = 4;
  std::size_t max_waiters = 1000;
  std::chrono::milliseconds backoff_initial{250};
  std::chrono::milliseconds backoff_max{10000};
  std::chrono::milliseconds retry_after{1000};
  std::chrono::milliseconds check_interval{5000};     // periodic check for dead idle containers
  std::chrono::milliseconds warmup_timeout{120000};   // start() waits at most this for min idle
  std::chrono::milliseconds destroy_timeout{10000};   // stop() waits at most this for removals
  std::map<std::string, std::string> extra_labels;    // e.g. {"berth.test","1"}
  std::vector<std::string> cmd;                       // empty: the image's CMD
  bool sandbox_server_main = false;                   // docker::make_sandbox_server_main (overrides cmd)
  container_budget budget;
  // Containers that live sessions still reference: start() leaves them running when it removes
  // what a previous run of this replica left (a restart with the same REPLICA_ID must not take
  // its users' workspaces). Unset: every leftover is removed.
  std::function<boost::asio::awaitable<core::result<std::set<std::string>>>()> referenced_containers;
};

struct pool_stats {
  std::size_t idle = 0, active = 0, total = 0, max_pool_size = 0, min_pool_size = 0, creating = 0, waiting = 0;
  std::size_t prepared = 0;  // idle containers holding a prepared resource (set_prepare)
  std::size_t scrubbing = 0;
  double acquire_p50_ms = 0, acquire_p95_ms = 0, acquire_p99_ms = 0;
  double scrub_p50_ms = 0, scrub_p95_ms = 0, scrub_p99_ms = 0;
  std::uint64_t created = 0, create_failures = 0, reaped = 0, dead_replaced = 0, exhausted = 0, prepare_failures = 0;
  std::uint64_t recycled = 0, scrub_failures = 0, retired = 0;
  bool pooling = true;
  bool recycling = true;
};
// {"idle","prepared","active","total","maxPoolSize","minPoolSize","creating","waiting","acquireMs":{p50,p95,p99},
//  "scrubbing","recycled","recycleFailures","retired","scrubMs":{p50,p95,p99},"pooling","recycling"}
nlohmann::json to_json(const pool_stats& s);

namespace detail {
struct pool_state;
}

// What set_prepare()'s hook made ready inside a container before it went idle. The pool closes it
// when the container goes without being leased; a lease hands it over (take_prepared()).
class prepared_resource {
 public:
  virtual ~prepared_resource() = default;
  virtual void close() = 0;
};
// Runs on the pool's strand; nullptr means "nothing prepared" (the container is still pooled).
using prepare_hook =
    std::function<boost::asio::awaitable<std::shared_ptr<prepared_resource>>(std::string container_id)>;
// Scrubs a released container through the resource it came back with; an error (with the reason)
// means it is not known to be clean and is destroyed. Runs on the pool's strand, bounded by itself.
using recycle_hook = std::function<boost::asio::awaitable<core::result<void>>(
    std::string container_id, std::shared_ptr<prepared_resource> resource)>;

// A leased container. Movable RAII handle: release() or destruction destroys the container.
class container_lease {
 public:
  container_lease() = default;
  container_lease(container_lease&& o) noexcept;
  container_lease& operator=(container_lease&& o) noexcept;
  container_lease(const container_lease&) = delete;
  container_lease& operator=(const container_lease&) = delete;
  ~container_lease();

  const std::string& id() const noexcept { return id_; }
  explicit operator bool() const noexcept { return !id_.empty(); }
  // Ends the lease: the pool removes the container in the background and refills.
  void release();
  // Ends the lease and gives the container back for the next user together with `resource` (the
  // sandbox MCP server it will be scrubbed through). Without a resource, or with recycling off or
  // the container worn out, this is release().
  void recycle(std::shared_ptr<prepared_resource> resource);
  // Ends the lease without destroying the container (the session keeps it across a disconnect;
  // adopt() takes it back later). Returns the id.
  std::string detach();
  // What the prepare hook made ready in this container, if anything; the caller owns it from here
  // (a resource never taken is closed with the lease).
  std::shared_ptr<prepared_resource> take_prepared() noexcept { return std::move(prepared_); }
  // The same, left in the lease (recycle() hands it back with the container).
  const std::shared_ptr<prepared_resource>& prepared() const noexcept { return prepared_; }

  container_lease(std::weak_ptr<detail::pool_state> pool, std::string id,
                  std::shared_ptr<prepared_resource> prepared = nullptr)
      : pool_(std::move(pool)), id_(std::move(id)), prepared_(std::move(prepared)) {}

 private:
  void close_prepared() noexcept;
  std::weak_ptr<detail::pool_state> pool_;
  std::string id_;
  std::shared_ptr<prepared_resource> prepared_;
};

// Lets the caller of acquire() give up while it waits (its user left): the wait ends at once with
// SANDBOX_UNAVAILABLE and its place in the queue goes to the next caller. Thread-safe.
class acquire_ticket {
 public:
  void cancel();
  bool cancelled() const;
  // The pool's side: `f` runs on cancel() (at once when already cancelled); clear() drops it.
  void on_cancel(std::function<void()> f);
  void clear();

 private:
  mutable std::mutex mutex_;
  bool cancelled_ = false;
  std::function<void()> on_cancel_;
};

class container_pool {
 public:
  // The docker client must outlive the pool.
  container_pool(boost::asio::any_io_executor ex, docker::client& docker, const core::config& cfg,
                 core::metrics& metrics, pool_options opts = {});
  ~container_pool();
  container_pool(const container_pool&) = delete;
  container_pool& operator=(const container_pool&) = delete;

  // Reap leftovers, check the image, warm up. An error (daemon unreachable, image missing) is
  // returned and logged; background refill keeps trying either way until stop().
  boost::asio::awaitable<core::result<void>> start();
  // Remove idle containers, fail waiters, stop background work. Active leases are left alone.
  boost::asio::awaitable<void> stop();

  boost::asio::awaitable<core::result<container_lease>> acquire(
      std::function<void(std::size_t position)> on_queued = {}, std::shared_ptr<acquire_ticket> ticket = nullptr);
  // Takes over a still-running container of a resumed session (inspect: running and berth-managed).
  boost::asio::awaitable<core::result<container_lease>> adopt(std::string container_id);

  // Installs the hook for containers that go idle from now on (call before start()).
  void set_prepare(prepare_hook hook);
  // Installs the scrub that recycle() runs (call before start()); without one, recycle() destroys.
  void set_recycle(recycle_hook hook);
  // Called (on the pool's strand, once per acquire) when an acquire has to wait with no container
  // on its way for it: the pool is at POOL_MAX_SIZE, or creates are backing off. The gateway then
  // hibernates a parked session, whose container comes back through recycle().
  void set_on_starved(std::function<void()> hook);

  pool_stats stats() const;
  const pool_options& options() const noexcept;
  // The ids of every container it holds (idle, leased, being scrubbed), read on its strand.
  boost::asio::awaitable<std::vector<std::string>> held_containers();

 private:
  std::shared_ptr<detail::pool_state> state_;
};

}  // namespace berth::pool
