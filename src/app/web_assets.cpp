#include "berth/app/web_assets.hpp"

#include <filesystem>
#include <string>
#include <vector>

#include "berth/core/logging.hpp"

namespace berth::app {

namespace {
std::string first_existing_dir(const std::vector<std::string>& candidates) {
  std::error_code ec;
  for (const auto& c : candidates)
    if (!c.empty() && std::filesystem::is_directory(c, ec)) return c;
  return {};
}

std::string executable_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

std::vector<std::string> chat_ui_candidates(const core::config& cfg, const std::string& exe) {
  return {cfg.static_dir, "web", exe + "/../share/berth/web", "/app/web", exe + "/../../web", exe + "/../../../web"};
}

std::vector<std::string> client_bundle_candidates(const core::config& cfg, const std::string& exe) {
  const std::string dist = "/client/node_modules/socket.io-client/dist";
  return {cfg.client_bundle_dir, dist.substr(1), "/app/client", exe + "/../.." + dist, exe + "/../../.." + dist};
}
}  // namespace

web_assets load_web_assets(const core::config& cfg) {
  auto log = core::logger("app");
  const auto exe = executable_dir();
  web_assets assets;
  const auto web_dir = first_existing_dir(chat_ui_candidates(cfg, exe));
  if (auto n = assets.chat_ui.load(web_dir, "/"); n > 0)
    log->info("chat UI: {} files from {}", n, web_dir);
  else
    log->warn("chat UI not found (set STATIC_DIR): GET / answers 404");
  const auto client_dir = first_existing_dir(client_bundle_candidates(cfg, exe));
  if (auto n = assets.client_bundle.load(client_dir, cfg.socketio_path); n > 0)
    log->info("socket.io client bundle: {} files from {}", n, client_dir);
  else
    log->warn("socket.io-client bundle not found (set CLIENT_BUNDLE_DIR): {}socket.io.js answers 404", cfg.socketio_path);
  return assets;
}

}  // namespace berth::app
