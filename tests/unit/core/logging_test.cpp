#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <sstream>
#include <stdexcept>

#include "berth/core/logging.hpp"

using namespace berth::core;

TEST(logging, log_prefix_cuts_and_masks_untrusted_text) {
  EXPECT_EQ(log_prefix("ab\ncd\"e", 64), "ab.cd.e");
  EXPECT_EQ(log_prefix("abcdef", 3), "abc...(6 bytes)");
}

TEST(logging, log_task_failure_logs_an_escaped_exception_once_on_its_module) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_pattern("[%n] %v");
  spdlog::register_logger(std::make_shared<spdlog::logger>("log-task-test", sink));
  const log_task_failure handler{"log-task-test"};
  handler(nullptr);  // the task finished: nothing to say
  EXPECT_EQ(out.str(), "");
  handler(std::make_exception_ptr(std::runtime_error("boom")));
  EXPECT_EQ(out.str(), "[log-task-test] task failed: boom\n");
  handler(std::make_exception_ptr(42));
  EXPECT_NE(out.str().find("non-standard exception"), std::string::npos);
  spdlog::drop("log-task-test");
}
