#include "berth/pool/pool_fsm.hpp"

#include <algorithm>

namespace berth::pool {

std::string_view to_string(destroy_reason r) noexcept {
  switch (r) {
    case destroy_reason::released: return "released";
    case destroy_reason::reaped: return "reaped";
    case destroy_reason::dead: return "dead";
    case destroy_reason::shutdown: return "shutdown";
    case destroy_reason::unwanted: return "unwanted";
    case destroy_reason::retired: return "retired";
    case destroy_reason::scrub_failed: return "scrub_failed";
  }
  return "unknown";
}

pool_fsm::pool_fsm(pool_limits limits) : limits_(limits) {
  if (!limits_.pooling) {
    limits_.min_idle = 0;
    limits_.recycle = false;  // nowhere to put a scrubbed container
  }
  limits_.max_uses = std::max<std::size_t>(1, limits_.max_uses);
  limits_.max_total = std::max<std::size_t>(1, limits_.max_total);
  limits_.min_idle = std::min(limits_.min_idle, limits_.max_total);
  limits_.max_parallel_creates = std::max<std::size_t>(1, limits_.max_parallel_creates);
}

namespace {
action destroy(std::string id, destroy_reason r) {
  action a;
  a.type = action::kind::destroy;
  a.container = std::move(id);
  a.reason = r;
  return a;
}
}  // namespace

action pool_fsm::retire(std::string id, destroy_reason r) {
  meta_.erase(id);
  return destroy(std::move(id), r);
}

bool pool_fsm::reusable(time_point now, const std::string& id) const {
  auto it = meta_.find(id);
  return it != meta_.end() && it->second.uses < limits_.max_uses && now - it->second.created < limits_.max_age;
}

void pool_fsm::hand_out(const std::string& id) {
  active_.insert(id);
  ++meta_[id].uses;
}

std::size_t pool_fsm::uses(const std::string& id) const {
  auto it = meta_.find(id);
  return it == meta_.end() ? 0 : it->second.uses;
}

std::vector<std::string> pool_fsm::held() const {
  std::vector<std::string> out;
  out.reserve(idle_.size() + active_.size() + scrubbing_.size());
  for (const auto& e : idle_) out.push_back(e.id);
  out.insert(out.end(), active_.begin(), active_.end());
  out.insert(out.end(), scrubbing_.begin(), scrubbing_.end());
  return out;
}

actions pool_fsm::start(time_point now) {
  actions out;
  fill(now, out);
  return out;
}

std::chrono::milliseconds pool_fsm::retry_hint(time_point now) const {
  if (backoff_until_ && *backoff_until_ > now) {
    return std::max(limits_.retry_after,
                    std::chrono::ceil<std::chrono::milliseconds>(*backoff_until_ - now));
  }
  return limits_.retry_after;
}

void pool_fsm::fill(time_point now, actions& out) {
  if (stopping_) return;
  if (backoff_until_) {
    if (now < *backoff_until_) return;  // tick() at backoff end calls us again
    backoff_until_.reset();
  }
  const std::size_t desired = waiters_.size() + limits_.min_idle;
  std::size_t have = idle_.size() + creating_.size();
  while (have < desired && total() < limits_.max_total && creating_.size() < limits_.max_parallel_creates) {
    action a;
    a.type = action::kind::create;
    a.create = next_create_++;
    creating_.insert(a.create);
    out.push_back(std::move(a));
    ++have;
  }
}

void pool_fsm::report_positions(std::size_t from, actions& out) {
  for (std::size_t i = from; i < waiters_.size(); ++i) {
    action a;
    a.type = action::kind::queued;
    a.waiter = waiters_[i].id;
    a.position = i + 1;
    out.push_back(std::move(a));
  }
}

void pool_fsm::grant_head(const std::string& container, actions& out) {
  action a;
  a.type = action::kind::grant;
  a.waiter = waiters_.front().id;
  a.container = container;
  waiters_.pop_front();
  hand_out(container);
  out.push_back(std::move(a));
  report_positions(0, out);
}

void pool_fsm::fail_waiter_at(std::size_t index, core::error e, std::chrono::milliseconds retry, actions& out) {
  action a;
  a.type = action::kind::fail;
  a.waiter = waiters_[index].id;
  a.error = std::move(e);
  a.retry_after = retry;
  waiters_.erase(waiters_.begin() + static_cast<std::ptrdiff_t>(index));
  out.push_back(std::move(a));
}

actions pool_fsm::acquire(time_point now, waiter_id w) {
  actions out;
  if (stopping_) {
    action a;
    a.type = action::kind::fail;
    a.waiter = w;
    a.error = core::make_error(core::errc::sandbox_unavailable, "the container pool is shutting down");
    out.push_back(std::move(a));
    return out;
  }
  if (!idle_.empty() && waiters_.empty()) {
    std::string id = std::move(idle_.back().id);
    idle_.pop_back();
    hand_out(id);
    action a;
    a.type = action::kind::grant;
    a.waiter = w;
    a.container = std::move(id);
    out.push_back(std::move(a));
    fill(now, out);  // refill toward min idle
    return out;
  }
  if (waiters_.size() >= limits_.max_waiters) {
    ++counts_.exhausted;
    action a;
    a.type = action::kind::fail;
    a.waiter = w;
    a.error = core::make_error(core::errc::pool_exhausted, "no sandbox container available and the wait queue is full");
    a.retry_after = retry_hint(now);
    out.push_back(std::move(a));
    return out;
  }
  waiters_.push_back(waiter_entry{w, now + limits_.acquire_timeout});
  fill(now, out);
  // Tell the caller its place when no create in flight is on its way for it (pool at max or backing off).
  if (waiters_.size() > creating_.size()) {
    action a;
    a.type = action::kind::queued;
    a.waiter = w;
    a.position = waiters_.size();
    out.push_back(std::move(a));
  }
  return out;
}

actions pool_fsm::cancel(time_point now, waiter_id w) {
  actions out;
  auto it = std::find_if(waiters_.begin(), waiters_.end(), [w](const waiter_entry& e) { return e.id == w; });
  if (it == waiters_.end()) return out;
  const auto index = static_cast<std::size_t>(it - waiters_.begin());
  waiters_.erase(it);
  report_positions(index, out);
  (void)now;
  return out;
}

actions pool_fsm::create_done(time_point now, create_id c, const core::result<std::string>& container) {
  actions out;
  const bool known = creating_.erase(c) != 0;
  if (container) {
    ++counts_.created;
    consecutive_failures_ = 0;
    if (!known || stopping_) {
      out.push_back(destroy(*container, stopping_ ? destroy_reason::shutdown : destroy_reason::unwanted));
    } else if (meta_[*container] = container_meta{now, 0}; !waiters_.empty()) {
      grant_head(*container, out);
    } else if (limits_.pooling) {
      idle_.push_back(idle_entry{*container, now});
    } else {
      out.push_back(retire(*container, destroy_reason::unwanted));  // its waiter gave up
    }
  } else if (known) {
    ++counts_.create_failures;
    ++consecutive_failures_;
    // Exponential backoff: initial * 2^(n-1), capped.
    auto delay = limits_.backoff_initial;
    for (std::size_t i = 1; i < consecutive_failures_ && delay < limits_.backoff_max; ++i) delay *= 2;
    delay = std::min(delay, limits_.backoff_max);
    backoff_until_ = now + delay;
    // A waiter no remaining create is on its way for gets this error now rather than a timeout.
    if (!stopping_ && waiters_.size() > creating_.size()) {
      fail_waiter_at(0, container.error(), std::chrono::milliseconds(0), out);
      report_positions(0, out);
    }
  }
  fill(now, out);
  return out;
}

actions pool_fsm::release(time_point now, const std::string& container, bool recyclable) {
  actions out;
  active_.erase(container);
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](const idle_entry& e) { return e.id == container; });
  if (it != idle_.end()) idle_.erase(it);
  if (recyclable && limits_.recycle && !stopping_ && reusable(now, container)) {
    scrubbing_.insert(container);
    action a;
    a.type = action::kind::scrub;
    a.container = container;
    out.push_back(std::move(a));
    return out;  // still counted in total: no refill for it
  }
  const bool worn_out = recyclable && limits_.recycle && !stopping_;
  if (worn_out) ++counts_.retired;
  out.push_back(retire(container, worn_out ? destroy_reason::retired : destroy_reason::released));
  fill(now, out);
  return out;
}

actions pool_fsm::scrub_done(time_point now, const std::string& container, bool clean) {
  actions out;
  if (scrubbing_.erase(container) == 0) return out;
  if (!clean) {
    ++counts_.scrub_failures;
    out.push_back(retire(container, destroy_reason::scrub_failed));
  } else {
    ++counts_.recycled;
    if (stopping_) {
      out.push_back(retire(container, destroy_reason::shutdown));
    } else if (!waiters_.empty()) {
      grant_head(container, out);
    } else {
      idle_.push_back(idle_entry{container, now});
    }
  }
  fill(now, out);
  return out;
}

actions pool_fsm::container_died(time_point now, const std::string& container) {
  actions out;
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](const idle_entry& e) { return e.id == container; });
  if (it == idle_.end()) return out;  // active ones belong to their lease holder
  idle_.erase(it);
  ++counts_.dead_replaced;
  out.push_back(retire(container, destroy_reason::dead));
  fill(now, out);
  return out;
}

actions pool_fsm::forget(time_point now, const std::string& container) {
  actions out;
  active_.erase(container);
  meta_.erase(container);
  fill(now, out);
  return out;
}

actions pool_fsm::adopt(time_point now, const std::string& container, std::optional<time_point> created, bool own) {
  actions out;
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](const idle_entry& e) { return e.id == container; });
  if (it != idle_.end()) idle_.erase(it);
  if (!meta_.count(container)) meta_[container] = container_meta{created.value_or(now), own ? 0 : limits_.max_uses};
  hand_out(container);
  fill(now, out);
  return out;
}

actions pool_fsm::tick(time_point now) {
  actions out;
  // Waiters past their deadline: POOL_EXHAUSTED with advice on when to retry.
  bool removed = false;
  for (std::size_t i = 0; i < waiters_.size();) {
    if (waiters_[i].deadline <= now) {
      ++counts_.exhausted;
      fail_waiter_at(i, core::make_error(core::errc::pool_exhausted, "no sandbox container became available in time"),
                     retry_hint(now), out);
      removed = true;
    } else {
      ++i;
    }
  }
  if (removed) report_positions(0, out);
  // Idle containers above the minimum, oldest first, once idle for idle_timeout.
  while (idle_.size() > limits_.min_idle && idle_.front().since + limits_.idle_timeout <= now) {
    ++counts_.reaped;
    out.push_back(retire(std::move(idle_.front().id), destroy_reason::reaped));
    idle_.pop_front();
  }
  // Idle containers past their age are replaced (fill below): a long-lived container is retired
  // even when traffic keeps recycling it.
  for (auto i = idle_.begin(); i != idle_.end();) {
    auto m = meta_.find(i->id);
    if (m != meta_.end() && now - m->second.created >= limits_.max_age) {
      ++counts_.retired;
      out.push_back(retire(std::move(i->id), destroy_reason::retired));
      i = idle_.erase(i);
    } else {
      ++i;
    }
  }
  fill(now, out);
  return out;
}

actions pool_fsm::shutdown(time_point now) {
  actions out;
  stopping_ = true;
  for (auto& e : idle_) out.push_back(retire(std::move(e.id), destroy_reason::shutdown));
  idle_.clear();
  while (!waiters_.empty()) {
    fail_waiter_at(0, core::make_error(core::errc::sandbox_unavailable, "the container pool is shutting down"),
                   std::chrono::milliseconds(0), out);
  }
  (void)now;
  return out;
}

std::optional<time_point> pool_fsm::next_deadline() const {
  std::optional<time_point> d;
  auto consider = [&d](time_point t) {
    if (!d || t < *d) d = t;
  };
  for (const auto& w : waiters_) consider(w.deadline);
  if (!stopping_ && backoff_until_) consider(*backoff_until_);
  if (idle_.size() > limits_.min_idle) consider(idle_.front().since + limits_.idle_timeout);
  for (const auto& e : idle_)
    if (auto m = meta_.find(e.id); m != meta_.end()) consider(m->second.created + limits_.max_age);
  return d;
}

fsm_stats pool_fsm::stats() const {
  fsm_stats s = counts_;
  s.idle = idle_.size();
  s.active = active_.size();
  s.creating = creating_.size();
  s.scrubbing = scrubbing_.size();
  s.waiting = waiters_.size();
  s.total = total();
  s.min_size = limits_.min_idle;
  s.max_size = limits_.max_total;
  return s;
}

std::vector<std::string> pool_fsm::idle_containers() const {
  std::vector<std::string> out;
  out.reserve(idle_.size());
  for (const auto& e : idle_) out.push_back(e.id);
  return out;
}

std::vector<std::string> pool_fsm::containers() const {
  std::vector<std::string> out = idle_containers();
  out.insert(out.end(), active_.begin(), active_.end());
  out.insert(out.end(), scrubbing_.begin(), scrubbing_.end());
  return out;
}

bool pool_fsm::is_idle(const std::string& id) const {
  return std::any_of(idle_.begin(), idle_.end(), [&](const idle_entry& e) { return e.id == id; });
}

}  // namespace berth::pool
