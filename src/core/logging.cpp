#include "berth/core/logging.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>

namespace berth::core {
namespace {
// The shared sink and level: spdlog's registry is process-wide anyway, this only fixes its setup.
struct logging_state {
  std::mutex mutex;
  spdlog::sink_ptr sink;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string pattern = "%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v";
};
logging_state& state() {
  static logging_state s;
  return s;
}
}  // namespace

void init_logging(std::string_view level, std::string_view format) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = spdlog::level::from_str(std::string(level));
  if (format == "json")
    s.pattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","module":"%n","msg":"%v"})";
  if (!s.sink) s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  s.sink->set_pattern(s.pattern);
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(s.level); });
}

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
  if (auto l = spdlog::get(module)) return l;
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (auto l = spdlog::get(module)) return l;
  if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s.sink->set_pattern(s.pattern);
  }
  auto l = std::make_shared<spdlog::logger>(module, s.sink);
  l->set_level(s.level);
  l->flush_on(spdlog::level::warn);
  spdlog::register_logger(l);
  return l;
}

void log_task_failure::operator()(std::exception_ptr e) const {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    logger(module)->error("task failed: {}", ex.what());
  } catch (...) {
    logger(module)->error("task failed with a non-standard exception");
  }
}

std::string log_prefix(std::string_view s, std::size_t n) {
  std::string out;
  for (char c : s.substr(0, n)) out += (static_cast<unsigned char>(c) < 0x20 || c == '"') ? '.' : c;
  if (s.size() > n) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace berth::core
