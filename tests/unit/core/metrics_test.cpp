#include <gtest/gtest.h>

#include "berth/core/metrics.hpp"

using namespace berth::core;

TEST(metrics, renders_families_once_with_labels) {
  metrics m;
  m.get_counter("berth_errors_total", "Errors", "reason=\"a\"").inc(2);
  m.get_counter("berth_errors_total", "Errors", "reason=\"b\"").inc();
  m.get_counter("berth_errors_total", "Errors", "reason=\"a\"").inc();
  m.add_gauge("berth_connections", "Open connections", [] { return 7.0; });
  auto text = m.render();
  EXPECT_NE(text.find("# TYPE berth_errors_total counter\n"), std::string::npos);
  EXPECT_EQ(text.find("# TYPE berth_errors_total", text.find("# TYPE berth_errors_total") + 1), std::string::npos);
  EXPECT_NE(text.find("berth_errors_total{reason=\"a\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("berth_errors_total{reason=\"b\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("berth_connections 7\n"), std::string::npos);
}
