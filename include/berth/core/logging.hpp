#pragma once
// Logging setup: one named spdlog logger per module ("http", "engineio", "pool", ...), all sharing
// one sink. Call init_logging once at start-up; logger() is cheap after the first call per name.
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace berth::core {

// format "json": one object per line, {"ts","level","module","replica","msg"} plus "sid" when the
// message names a session (`sid=...`), every string JSON-escaped.
void init_logging(std::string_view level, std::string_view format, std::string_view replica = {});
// The formatter LOG_FORMAT=json installs on the shared sink (exposed for tests).
std::unique_ptr<spdlog::formatter> make_json_formatter(std::string_view replica);
// The value of the first `sid=` token of a log message ("" if none): the JSON format's "sid".
std::string_view log_session_id(std::string_view msg) noexcept;
// `s` escaped for the inside of a JSON string.
void append_json_escaped(std::string& out, std::string_view s);
std::shared_ptr<spdlog::logger> logger(const std::string& module);

// First `n` bytes of untrusted text for a log line: never log whole payloads.
std::string log_prefix(std::string_view s, std::size_t n = 64);

// Completion handler for a co_spawn'ed task nobody awaits: an exception that escaped the task is
// logged once on `module`'s logger instead of leaving io_context::run().
struct log_task_failure {
  const char* module;
  void operator()(std::exception_ptr e) const;
};

}  // namespace berth::core
