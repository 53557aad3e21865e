// berth: load the configuration, run the gateway.
#include <iostream>

#include "berth/app/app.hpp"
#include "berth/core/config.hpp"
#include "berth/core/logging.hpp"

int main() {
  auto cfg = berth::core::parse_config(berth::core::load_environment(".env"));
  if (!cfg) {
    std::cerr << cfg.error().to_string() << std::endl;
    return 2;
  }
  berth::core::init_logging(cfg->log_level, cfg->log_format, cfg->replica_id);
  try {
    berth::app::app gateway(std::move(*cfg));
    return gateway.run();
  } catch (const std::exception& e) {
    berth::core::logger("app")->critical("fatal: {}", e.what());
    return 1;
  }
}
