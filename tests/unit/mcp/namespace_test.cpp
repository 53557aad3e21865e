#include <gtest/gtest.h>

#include "berth/mcp/tools.hpp"

using namespace berth::mcp;

namespace {
tool_descriptor tool(std::string name) { return tool_descriptor{std::move(name), "", "", {{"type", "object"}}}; }
}  // namespace

TEST(ToolNamespace, FirstServerKeepsNamesClashesArePrefixed) {
  tool_namespace ns;
  ns.add_server("sandbox", {tool("read_file"), tool("run_command")});
  ns.add_server("github", {tool("read_file"), tool("create_issue")});
  ns.add_server("fs", {tool("read_file")});
  ASSERT_EQ(ns.entries().size(), 5u);
  auto* a = ns.find("read_file");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->server, "sandbox");
  auto* b = ns.find("github__read_file");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->server, "github");
  EXPECT_EQ(b->tool.name, "read_file");
  ASSERT_NE(ns.find("create_issue"), nullptr);
  ASSERT_NE(ns.find("fs__read_file"), nullptr);
  EXPECT_EQ(ns.find("nope"), nullptr);
}

TEST(ToolNamespace, NamesAreSanitisedAndUniqueEvenWhenPrefixedNamesClash) {
  tool_namespace ns;
  ns.add_server("a", {tool("x"), tool("b__x")});
  ns.add_server("a_", {tool("_x")});  // "a___x"
  ns.add_server("b", {tool("x")});     // "b__x" taken by server a -> "b__x_2"
  ns.add_server("c", {tool("do.thing")});
  EXPECT_NE(ns.find("b__x_2"), nullptr);
  EXPECT_EQ(ns.find("b__x_2")->server, "b");
  EXPECT_NE(ns.find("c__do_thing"), nullptr);
  auto long_name = std::string(100, 'n');
  ns.add_server("d", {tool(long_name)});
  for (const auto& e : ns.entries()) EXPECT_LE(e.exposed_name.size(), 64u) << e.exposed_name;
}

TEST(ToolNamespace, RemovingAServerFreesItsNames) {
  tool_namespace ns;
  ns.add_server("one", {tool("t")});
  ns.add_server("two", {tool("t")});
  EXPECT_NE(ns.find("two__t"), nullptr);
  ns.remove_server("one");
  ASSERT_NE(ns.find("t"), nullptr);
  EXPECT_EQ(ns.find("t")->server, "two");
}

// What the gateway's router does with a call: exposed name -> (server, server's own tool name).
TEST(ToolNamespace, RoutesEveryExposedNameToItsServerAndOwnName) {
  tool_namespace ns;
  ns.add_server("sandbox", {tool("read_file"), tool("run_command")});
  ns.add_server("docs", {tool("search"), tool("read_file")});
  ns.add_server("web", {tool("search"), tool("fetch.page")});
  struct want {
    const char* exposed;
    const char* server;
    const char* own;
  };
  for (const auto& w : {want{"read_file", "sandbox", "read_file"}, want{"run_command", "sandbox", "run_command"},
                        want{"search", "docs", "search"}, want{"docs__read_file", "docs", "read_file"},
                        want{"web__search", "web", "search"}, want{"web__fetch_page", "web", "fetch.page"}}) {
    const auto* e = ns.find(w.exposed);
    ASSERT_NE(e, nullptr) << w.exposed;
    EXPECT_EQ(e->server, w.server) << w.exposed;
    EXPECT_EQ(e->tool.name, w.own) << w.exposed;
  }
  EXPECT_EQ(ns.entries().size(), 6u);
}
