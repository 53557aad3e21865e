#include "berth/core/logging.hpp"

#include <mutex>

#include <spdlog/pattern_formatter.h>
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

// %* in the JSON pattern: `"msg":"<escaped>"` and `,"sid":"<id>"` when the message names one.
class json_message_flag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& m, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string_view msg(m.payload.data(), m.payload.size());
    std::string out = "\"msg\":\"";
    append_json_escaped(out, msg);
    out += '"';
    if (auto sid = log_session_id(msg); !sid.empty()) {
      out += ",\"sid\":\"";
      append_json_escaped(out, sid);
      out += '"';
    }
    dest.append(out.data(), out.data() + out.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<json_message_flag>(); }
};
}  // namespace

std::string_view log_session_id(std::string_view msg) noexcept {
  for (std::size_t pos = msg.find("sid="); pos != std::string_view::npos; pos = msg.find("sid=", pos + 4)) {
    if (pos > 0 && msg[pos - 1] != ' ' && msg[pos - 1] != '(' && msg[pos - 1] != ',') continue;  // e.g. "xsid="
    const auto start = pos + 4;
    auto end = start;
    while (end < msg.size() && msg[end] != ' ' && msg[end] != ',' && msg[end] != ')' && msg[end] != ':' &&
           msg[end] != '"' && end - start < 128)
      ++end;
    if (end > start) return msg.substr(start, end - start);
  }
  return {};
}

void append_json_escaped(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
        } else {
          out += ch;  // UTF-8 passes through
        }
    }
  }
}

std::unique_ptr<spdlog::formatter> make_json_formatter(std::string_view replica) {
  std::string r;
  append_json_escaped(r, replica);
  std::string pattern_safe;  // '%' starts a flag in spdlog patterns
  for (char c : r) pattern_safe += c == '%' ? std::string("%%") : std::string(1, c);
  auto f = std::make_unique<spdlog::pattern_formatter>();
  f->add_flag<json_message_flag>('*').set_pattern(
      R"({"ts":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","module":"%n","replica":")" + pattern_safe + R"(",%*})");
  return f;
}

void init_logging(std::string_view level, std::string_view format, std::string_view replica) {
  auto& s = state();
  std::lock_guard lock(s.mutex);
  s.level = spdlog::level::from_str(std::string(level));
  if (!s.sink) s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  if (format == "json") {
    s.sink->set_formatter(make_json_formatter(replica));
  } else {
    s.sink->set_pattern(s.pattern);
  }
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& l) { l->set_level(s.level); });
}

std::shared_ptr<spdlog::logger> logger(const std::string& module) {
  if (auto l = spdlog::get(module)) return l;
  auto& s = state();
  std::lock_guard lock(s.mutex);
  if (auto l = spdlog::get(module)) return l;
  if (!s.sink) {
    s.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    s.sink->set_pattern(s.pattern);  // text until init_logging says otherwise
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
