#include "berth/session/container_registry.hpp"

#include "util.hpp"

namespace berth::session {

namespace asio = boost::asio;
using asio::awaitable;
using detail::argv;

container_registry::container_registry(std::shared_ptr<redis::redis_client> redis, container_registry_options opts,
                                       core::metrics& metrics)
    : redis_(std::move(redis)),
      opts_(std::move(opts)),
      reserve_(redis_->register_script(scripts::reserve_container)),
      refused_(metrics.get_counter("berth_containers_refused_total",
                                   "Container creates refused because the cluster holds MAX_CONTAINERS")) {
  metrics.add_gauge("berth_containers_cluster", "Sandbox containers of every replica, as last counted in Redis",
                    [this] { return static_cast<double>(last_count_.load()); });
  metrics.add_gauge("berth_containers_max", "MAX_CONTAINERS (0: no cap)",
                    [max = opts_.max_containers] { return static_cast<double>(max); });
}

awaitable<core::result<bool>> container_registry::reserve(std::string reservation) {
  if (!enabled()) co_return true;
  auto r = co_await redis_->eval(reserve_, argv(opts_.keys.containers()),
                                 argv(std::to_string(opts_.clock()), std::to_string(opts_.entry_ttl.count()),
                                      std::to_string(opts_.max_containers), reservation));
  if (!r) co_return r.error();
  auto arr = redis::as_array(*r, "reserve container");
  if (!arr) co_return arr.error();
  if ((*arr)->size() != 2) co_return core::make_error(core::errc::internal, "reserve container: expected {granted, count}");
  auto granted = redis::as_integer((**arr)[0], "granted");
  auto count = redis::as_integer((**arr)[1], "count");
  if (!granted || !count) co_return core::make_error(core::errc::internal, "reserve container: not integers");
  last_count_ = static_cast<std::size_t>(*count);
  if (*granted != 1) {
    refused_.inc();
    co_return false;
  }
  co_return true;
}

awaitable<core::result<void>> container_registry::settle(std::string reservation, std::string container) {
  if (!enabled()) co_return core::result<void>{};
  std::vector<std::vector<std::string>> cmds;
  cmds.push_back(argv("ZREM", opts_.keys.containers(), reservation));
  if (!container.empty())
    cmds.push_back(argv("ZADD", opts_.keys.containers(), std::to_string(opts_.clock() + opts_.entry_ttl.count()), container));
  auto r = co_await redis_->pipeline(std::move(cmds));
  if (!r) co_return r.error();
  co_return core::result<void>{};
}

awaitable<core::result<void>> container_registry::remove(std::string container) {
  if (!enabled()) co_return core::result<void>{};
  auto r = co_await redis_->command(argv("ZREM", opts_.keys.containers(), container));
  if (!r) co_return r.error();
  co_return core::result<void>{};
}

awaitable<core::result<void>> container_registry::refresh(std::vector<std::string> containers) {
  if (!enabled()) co_return core::result<void>{};
  std::vector<std::vector<std::string>> cmds;
  const auto expiry = std::to_string(opts_.clock() + opts_.entry_ttl.count());
  if (!containers.empty()) {
    // Plain ZADD: an entry that expired during a Redis outage comes back. One removed meanwhile
    // comes back too, for entry_ttl at most.
    std::vector<std::string> zadd = argv("ZADD", opts_.keys.containers());
    for (auto& c : containers) {
      zadd.push_back(expiry);
      zadd.push_back(std::move(c));
    }
    cmds.push_back(std::move(zadd));
  }
  cmds.push_back(argv("ZREMRANGEBYSCORE", opts_.keys.containers(), "-inf", std::to_string(opts_.clock())));
  cmds.push_back(argv("ZCARD", opts_.keys.containers()));
  auto r = co_await redis_->pipeline(std::move(cmds));
  if (!r) co_return r.error();
  if (auto n = redis::as_integer(r->back(), "ZCARD containers")) last_count_ = static_cast<std::size_t>(*n);
  co_return core::result<void>{};
}

}  // namespace berth::session
