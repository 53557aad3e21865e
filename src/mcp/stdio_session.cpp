#include "berth/mcp/stdio_session.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "berth/core/logging.hpp"

namespace berth::mcp {

namespace asio = boost::asio;
using json = nlohmann::json;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {
core::error sandbox_error(std::string msg) { return core::make_error(core::errc::sandbox_unavailable, std::move(msg)); }
}  // namespace

void call_cancel::request() {
  std::function<void()> fn;
  {
    std::lock_guard lock(mutex_);
    if (requested_) return;
    requested_ = true;
    fn = std::move(on_request_);
  }
  if (fn) fn();
}

bool call_cancel::requested() const {
  std::lock_guard lock(mutex_);
  return requested_;
}

void call_cancel::bind(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    if (!requested_) {
      on_request_ = std::move(fn);
      return;
    }
  }
  fn();
}

void call_cancel::unbind() {
  std::lock_guard lock(mutex_);
  on_request_ = nullptr;
}

stdio_session::stdio_session(executor_type ex, docker::client& docker, std::string container_id,
                             std::vector<std::string> command, core::metrics& metrics, stdio_transport transport)
    : ex_(std::move(ex)),
      docker_(docker),
      container_id_(std::move(container_id)),
      command_(std::move(command)),
      transport_(transport),
      timer_(ex_),
      restarts_(metrics.get_counter("berth_mcp_restarts_total", "MCP sandbox streams (execs or attaches) opened")),
      protocol_errors_(metrics.get_counter("berth_mcp_protocol_errors_total",
                                           "Lines from a sandbox MCP server that were not valid JSON-RPC")) {}

stdio_session::~stdio_session() {
  if (stream_) stream_->close();
}

void stdio_session::close() {
  asio::dispatch(ex_, [self = shared_from_this()] { self->close_here(); });
}

void stdio_session::close_here() {
  ++generation_;
  if (fsm_) next_request_id_ = fsm_->next_request_id();
  if (stream_) stream_->close();
  stream_.reset();
  if (fsm_) fsm_->on_closed("session closed");
  dispatch_events();
  timer_.cancel();
}

asio::awaitable<stdio_session::tools_result> stdio_session::open(std::chrono::milliseconds timeout) {
  co_return co_await asio::co_spawn(ex_, open_here(shared_from_this(), timeout, false), asio::use_awaitable);
}

asio::awaitable<stdio_session::tools_result> stdio_session::ensure_open(std::chrono::milliseconds timeout) {
  co_return co_await asio::co_spawn(ex_, open_here(shared_from_this(), timeout, true), asio::use_awaitable);
}

asio::awaitable<core::result<tool_call_outcome>> stdio_session::call_tool(std::string name, json args,
                                                                          std::chrono::milliseconds timeout,
                                                                          std::shared_ptr<call_cancel> cancel) {
  co_return co_await asio::co_spawn(
      ex_, call_here(shared_from_this(), std::move(name), std::move(args), timeout, std::move(cancel)),
      asio::use_awaitable);
}

void stdio_session::cancel_request(std::uint64_t id, std::uint64_t generation) {
  if (generation != generation_ || !fsm_) return;
  if (!fsm_->cancel(id, "cancelled by the user")) return;  // already answered
  dispatch_events();
  timer_.cancel();  // the deadline set changed
  start_flush();
}

asio::awaitable<void> stdio_session::flush_owned(std::shared_ptr<stdio_session> self) { co_await self->flush(); }

asio::awaitable<stdio_session::tools_result> stdio_session::open_here(std::shared_ptr<stdio_session> self,
                                                                      std::chrono::milliseconds timeout, bool reuse_running) {
  if (reuse_running && self->fsm_ && self->fsm_->state() == client_state::ready) co_return self->tools_;
  co_return co_await self->start_exec(timeout);
}

asio::awaitable<core::result<docker::exec_stream>> stdio_session::open_stream() {
  if (transport_ == stdio_transport::attach) {
    auto stream = co_await docker_.attach(container_id_);
    if (!stream) co_return sandbox_error("cannot attach to the sandbox MCP server: " + stream.error().message);
    // dockerd accepts an attach to a stopped container and waits for it to start; one that stops
    // after this check ends the stream.
    auto found = co_await docker_.find_container(container_id_);
    if (!found) co_return sandbox_error("cannot inspect the sandbox container: " + found.error().message);
    if (!*found || !(*found)->running)
      co_return sandbox_error(std::string("the sandbox container ") + (*found ? "is not running" : "was removed"));
    // A previous client may have left half a line on the server's stdin: end it, so that our
    // first request is read whole (the server skips blank lines).
    if (auto w = co_await stream->write("\n"); !w)
      co_return sandbox_error("cannot write to the sandbox MCP server: " + w.error().message);
    co_return std::move(*stream);
  }
  docker::exec_spec spec;
  spec.cmd = command_;
  spec.env = env_;
  spec.user = user_;
  spec.attach_stdin = true;
  auto exec_id = co_await docker_.exec_create(container_id_, spec);
  if (!exec_id) co_return sandbox_error("cannot start the sandbox MCP server: " + exec_id.error().message);
  auto stream = co_await docker_.exec_start(*exec_id);
  if (!stream) co_return sandbox_error("cannot attach to the sandbox MCP server: " + stream.error().message);
  co_return std::move(*stream);
}

asio::awaitable<stdio_session::tools_result> stdio_session::start_exec(std::chrono::milliseconds timeout) {
  auto self = shared_from_this();
  close_here();
  const auto generation = generation_;
  restarts_.inc();
  auto stream = co_await open_stream();
  if (!stream) co_return stream.error();
  if (generation != generation_) co_return sandbox_error("session closed");
  stream_ = std::make_shared<docker::exec_stream>(std::move(*stream));
  client_options opts;
  opts.init_timeout = timeout;
  opts.first_request_id = next_request_id_;
  fsm_ = std::make_unique<client_fsm>(opts);
  const auto init_id = fsm_->start(clock::now());
  auto init_wait = expect(init_id);
  asio::co_spawn(ex_, read_loop(self, generation), asio::detached);
  asio::co_spawn(ex_, timer_loop(self, generation), asio::detached);
  start_flush();
  auto init = co_await wait_for(init_id, std::move(init_wait));
  if (!init || !std::holds_alternative<ev_initialized>(*init)) {
    std::string why = "the sandbox MCP server did not initialize";
    if (init && std::holds_alternative<ev_request_failed>(*init))
      why += ": " + std::get<ev_request_failed>(*init).message;
    close_here();
    co_return sandbox_error(why);
  }
  auto list_id = fsm_->list_tools(clock::now() + timeout);
  if (!list_id) co_return list_id.error();
  auto list_wait = expect(*list_id);
  timer_.cancel();
  start_flush();
  auto listed = co_await wait_for(*list_id, std::move(list_wait));
  if (!listed || !std::holds_alternative<ev_tools_listed>(*listed)) {
    close_here();
    co_return sandbox_error("the sandbox MCP server did not list its tools");
  }
  tools_ = std::get<ev_tools_listed>(*listed).tools;
  co_return tools_;
}

asio::awaitable<core::result<tool_call_outcome>> stdio_session::call_here(std::shared_ptr<stdio_session> self,
                                                                          std::string name, json args,
                                                                          std::chrono::milliseconds timeout,
                                                                          std::shared_ptr<call_cancel> cancel) {
  if (cancel && cancel->requested()) co_return core::make_error(core::errc::tool_failed, "tool '" + name + "' was cancelled");
  if (!self->fsm_ || self->fsm_->state() != client_state::ready) {
    // The stream broke, the server restarted, or it never started: open it again once for this call.
    auto reopened = co_await self->start_exec(std::min(timeout, std::chrono::milliseconds(15000)));
    if (!reopened) co_return reopened.error();
  }
  auto id = self->fsm_->call_tool(name, args, clock::now() + timeout);
  if (!id) co_return id.error();
  auto wait = self->expect(*id);
  const auto generation = self->generation_;
  const auto batch = self->writes_taken_;  // the request goes out in the next batch
  self->timer_.cancel();  // re-arm for the new deadline
  if (cancel) {
    const std::weak_ptr<stdio_session> weak = self;
    cancel->bind([weak, request = *id, generation = self->generation_, ex = self->ex_] {
      asio::dispatch(ex, [weak, request, generation] {
        if (auto s = weak.lock()) s->cancel_request(request, generation);
      });
    });
  }
  self->start_flush();
  auto ev = co_await self->wait_for(*id, std::move(wait));
  if (cancel) cancel->unbind();
  if (!ev) co_return sandbox_error("the sandbox MCP session closed");
  auto* failed = std::get_if<ev_request_failed>(&*ev);
  if (failed && failed->reason == failure::timeout && generation == self->generation_ &&
      self->last_written_batch_ <= batch) {
    // Not even the request got through: the exec's daemon connection is stuck, and every
    // later request would queue behind it. The next call starts a new exec.
    core::logger("mcp")->warn("cid={} tool '{}' timed out before its request was written: closing the exec",
                              self->container_id_.substr(0, 12), core::log_prefix(name, 64));
    self->close_here();
  }
  co_return tool_call_answer(std::move(*ev), name, timeout, "");
}

asio::awaitable<core::result<json>> stdio_session::request(std::string method, json params,
                                                           std::chrono::milliseconds timeout) {
  co_return co_await asio::co_spawn(
      ex_, request_here(shared_from_this(), std::move(method), std::move(params), timeout), asio::use_awaitable);
}

asio::awaitable<core::result<json>> stdio_session::request_here(std::shared_ptr<stdio_session> self, std::string method,
                                                                json params, std::chrono::milliseconds timeout) {
  if (!self->fsm_ || self->fsm_->state() != client_state::ready) {
    // An attach costs dockerd no exec: open it again. A dead exec is an error.
    if (self->transport_ != stdio_transport::attach)
      co_return sandbox_error(method + ": the sandbox MCP server is not running");
    auto reopened = co_await self->start_exec(std::min(timeout, std::chrono::milliseconds(15000)));
    if (!reopened) co_return reopened.error();
  }
  auto id = self->fsm_->send_request(method, params, clock::now() + timeout);
  if (!id) co_return id.error();
  auto wait = self->expect(*id);
  self->timer_.cancel();  // re-arm for the new deadline
  self->start_flush();
  auto ev = co_await self->wait_for(*id, std::move(wait));
  if (!ev) co_return sandbox_error(method + ": the sandbox MCP session closed");
  // in_place: a json converts from anything, so result<json>'s converting constructors are ambiguous.
  if (auto* r = std::get_if<ev_result>(&*ev)) co_return core::result<json>(boost::system::in_place_value, std::move(r->result));
  if (auto* f = std::get_if<ev_request_failed>(&*ev)) co_return sandbox_error(method + ": " + f->message);
  co_return core::make_error(core::errc::internal, "unexpected MCP event");
}

asio::awaitable<void> stdio_session::flush() {
  if (writing_ || !fsm_) co_return;
  writing_ = true;
  auto self = shared_from_this();
  for (;;) {
    if (!fsm_ || !stream_) break;
    auto out = fsm_->take_output();
    if (out.empty()) break;
    const auto batch = ++writes_taken_;
    auto stream = stream_;
    auto written = co_await stream->write(std::move(out));
    if (!written) {
      if (stream != stream_) continue;  // a closed exec's write; a new exec may have output queued
      if (fsm_) fsm_->on_closed("cannot write to the sandbox MCP server: " + written.error().message);
      dispatch_events();
      break;
    }
    last_written_batch_ = batch;
  }
  writing_ = false;
}

void stdio_session::start_flush() {
  if (writing_ || !fsm_) return;
  asio::co_spawn(ex_, flush_owned(shared_from_this()), asio::detached);
}

std::shared_ptr<stdio_session::waiter> stdio_session::expect(std::uint64_t id) {
  auto w = std::make_shared<waiter>();
  w->wake = std::make_shared<asio::steady_timer>(ex_, asio::steady_timer::time_point::max());
  waiters_[id] = w;
  return w;
}

asio::awaitable<std::optional<client_event>> stdio_session::wait_for(std::uint64_t id, std::shared_ptr<waiter> w) {
  auto self = shared_from_this();
  dispatch_events();  // it may already have arrived
  // A timer's cancel() only reaches a wait already under way: `woken` keeps an earlier one.
  if (!w->woken) co_await w->wake->async_wait(use_tuple);
  // Ids restart with every exec: the entry may be a newer exec's by now.
  if (auto it = waiters_.find(id); it != waiters_.end() && it->second == w) waiters_.erase(it);
  co_return std::move(w->event);
}

void stdio_session::dispatch_events() {
  if (!fsm_) return;
  for (auto& ev : fsm_->take_events()) {
    if (auto* p = std::get_if<ev_protocol_error>(&ev)) {
      protocol_errors_.inc();
      core::logger("mcp")->warn("cid={} sandbox protocol error: {}", container_id_.substr(0, 12), p->message);
      continue;
    }
    const auto id = request_id_of(ev);
    auto it = waiters_.find(id);
    if (it == waiters_.end()) continue;
    it->second->event = std::move(ev);
    it->second->woken = true;
    it->second->wake->cancel();
  }
  // A closed session fails every waiter that did not get an event.
  if (fsm_->state() == client_state::closed)
    for (auto& [_, w] : waiters_) {
      w->woken = true;
      w->wake->cancel();
    }
}

asio::awaitable<void> stdio_session::read_loop(std::shared_ptr<stdio_session> self, std::uint64_t generation) {
  auto stream = self->stream_;
  while (stream && generation == self->generation_) {
    auto chunk = co_await stream->read();
    if (generation != self->generation_) co_return;
    if (!chunk || !*chunk) {
      // The stream ends when the server exits, and when dockerd drops the connection (a restart).
      const std::string why = chunk ? "the sandbox MCP server's stream ended (the server or its container exited, or dockerd closed the connection)"
                                    : chunk.error().message;
      core::logger("mcp")->warn("cid={} {}", self->container_id_.substr(0, 12), why);
      if (self->fsm_) self->fsm_->on_closed(why);
      self->dispatch_events();
      co_return;
    }
    if ((*chunk)->stream == docker::stream_kind::stdout_) {
      self->fsm_->on_bytes((*chunk)->data);
      self->dispatch_events();
      self->start_flush();  // e.g. answers to server pings
    } else {
      core::logger("mcp")->debug("cid={} sandbox stderr: {}", self->container_id_.substr(0, 12),
                                 core::log_prefix((*chunk)->data, 200));
    }
  }
}

asio::awaitable<void> stdio_session::timer_loop(std::shared_ptr<stdio_session> self, std::uint64_t generation) {
  while (generation == self->generation_ && self->fsm_) {
    auto deadline = self->fsm_->next_deadline();
    self->timer_.expires_at(deadline ? *deadline : asio::steady_timer::time_point::max());
    co_await self->timer_.async_wait(use_tuple);
    if (generation != self->generation_ || !self->fsm_) co_return;
    self->fsm_->on_timer(clock::now());
    self->dispatch_events();
    self->start_flush();  // cancellation notifications
  }
}

}  // namespace berth::mcp
