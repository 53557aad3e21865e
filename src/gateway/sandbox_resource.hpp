#pragma once
// The sandbox's MCP server as the pool carries it: opened while its container was idle (attach and
// initialize are the slow part of a session start, too much to make users wait for),
// handed to the session with the lease, and handed back with the container for the scrub.
#include <memory>

#include "berth/mcp/stdio_session.hpp"
#include "berth/pool/container_pool.hpp"

namespace berth::gateway {

struct prepared_sandbox_mcp final : pool::prepared_resource {
  explicit prepared_sandbox_mcp(std::shared_ptr<mcp::stdio_session> s) : session(std::move(s)) {}
  void close() override { session->close(); }
  // The gateway is the only one that installs the pool's hooks, so every prepared resource is one
  // of these; anything else (nullptr included) yields nullptr.
  static std::shared_ptr<mcp::stdio_session> session_of(const std::shared_ptr<pool::prepared_resource>& r) {
    auto p = std::dynamic_pointer_cast<prepared_sandbox_mcp>(r);
    return p ? p->session : nullptr;
  }
  std::shared_ptr<mcp::stdio_session> session;
};

}  // namespace berth::gateway
