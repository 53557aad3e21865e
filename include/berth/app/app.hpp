#pragma once
// Composition root: builds every service once from the config, wires them together, runs the
// io_context on THREADS threads and shuts down gracefully on SIGTERM/SIGINT.
#include <memory>

#include "berth/core/config.hpp"

namespace berth::app {

class app {
 public:
  explicit app(core::config cfg);
  ~app();
  // Blocks until a signal stops the process; returns the exit code.
  int run();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace berth::app
