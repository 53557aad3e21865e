#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>

#include <nlohmann/json.hpp>

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

TEST(logging, session_id_is_the_first_sid_token) {
  EXPECT_EQ(log_session_id("sid=abc_-1 uid=u closed"), "abc_-1");
  EXPECT_EQ(log_session_id("session reaped (idle) sid=S1 cid=c"), "S1");
  EXPECT_EQ(log_session_id("x (sid=S2)"), "S2");
  EXPECT_EQ(log_session_id("sid=S3: gone"), "S3");
  EXPECT_EQ(log_session_id("no session here"), "");
  EXPECT_EQ(log_session_id("xsid=not-this sid=this"), "this");
  EXPECT_EQ(log_session_id("sid= empty"), "");
}

TEST(logging, json_escaping_covers_quotes_backslashes_and_controls) {
  std::string out;
  append_json_escaped(out, "a\"b\\c\nd\te\x01 é");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\te\\u0001 é");
}

TEST(logging, json_format_is_one_parseable_object_with_replica_and_sid) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_formatter(make_json_formatter("replica-\"7\"%"));
  auto l = std::make_shared<spdlog::logger>("json-test", sink);
  l->warn("sid={} uid={} said \"{}\"\n", "S-9", "u1", "hi\\there");
  l->info("no session");
  std::istringstream lines(out.str());
  std::string first, second;
  ASSERT_TRUE(std::getline(lines, first));
  ASSERT_TRUE(std::getline(lines, second));
  auto a = nlohmann::json::parse(first);
  EXPECT_EQ(a["replica"], "replica-\"7\"%");
  EXPECT_EQ(a["module"], "json-test");
  EXPECT_EQ(a["level"], "warning");
  EXPECT_EQ(a["sid"], "S-9");
  EXPECT_EQ(a["msg"], "sid=S-9 uid=u1 said \"hi\\there\"\n");
  auto b = nlohmann::json::parse(second);
  EXPECT_FALSE(b.contains("sid"));
  EXPECT_EQ(b["msg"], "no session");
}
