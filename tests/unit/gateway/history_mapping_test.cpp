#include <gtest/gtest.h>

#include "berth/gateway/history_mapping.hpp"

using namespace berth;
using json = nlohmann::json;

TEST(history_mapping, round_trips_a_tool_turn) {
  std::vector<llm::chat_message> turn = {
      llm::chat_message::user("List all files in /workspace"),
      llm::chat_message::assistant("", {{"call_1", "list_files", json{{"path", "/workspace"}}},
                                        {"call_2", "read_file", json{{"path", "a.txt"}}}}),
      llm::chat_message::tool_result("call_1", "list_files", "a.txt"),
      llm::chat_message::tool_result("call_2", "read_file", "denied", true),
      llm::chat_message::assistant("Here are the files: a.txt"),
  };
  std::vector<session::history_entry> entries;
  for (const auto& m : turn)
    for (auto& e : gateway::to_history_entries(m, 42)) entries.push_back(std::move(e));
  ASSERT_EQ(entries.size(), 6u);  // the assistant message with two calls becomes two entries
  EXPECT_EQ(entries[1].call_id, "call_1");
  EXPECT_EQ(entries[2].name, "read_file");
  auto back = gateway::from_history_entries(entries);
  ASSERT_EQ(back.size(), turn.size());
  ASSERT_EQ(back[1].tool_calls.size(), 2u);
  EXPECT_EQ(back[1].tool_calls[0].args["path"], "/workspace");
  EXPECT_EQ(back[3].tool_call_id, "call_2");
  EXPECT_TRUE(back[3].is_error);
  EXPECT_EQ(back[3].content, "denied");
  EXPECT_EQ(back[4].content, "Here are the files: a.txt");
}

TEST(history_mapping, drops_calls_left_without_results) {
  std::vector<session::history_entry> entries = {
      {"user", "run ls", std::nullopt, std::nullopt, 1},
      {"assistant", R"({"command":"ls"})", "run_command", "c9", 2},
  };
  auto back = gateway::from_history_entries(entries);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].role, llm::role::user);
}

TEST(history_mapping, tolerates_garbage_arguments) {
  std::vector<session::history_entry> entries = {
      {"user", "x", std::nullopt, std::nullopt, 1},
      {"assistant", "not json", "list_files", "c1", 2},
      {"tool", "ok", "list_files", "c1", 3},
      {"system", "ignored", std::nullopt, std::nullopt, 4},
  };
  auto back = gateway::from_history_entries(entries);
  ASSERT_EQ(back.size(), 3u);
  EXPECT_TRUE(back[1].tool_calls[0].args.is_object());
}

namespace {

session::history_entry user(std::string t) { return {"user", std::move(t), std::nullopt, std::nullopt, 1}; }
session::history_entry answer(std::string t) { return {"assistant", std::move(t), std::nullopt, std::nullopt, 1}; }
session::history_entry call(std::string id) { return {"assistant", "{}", "list_files", std::move(id), 1}; }
session::history_entry result(std::string id) { return {"tool", "out", "list_files", std::move(id), 1}; }

std::string shape(const std::vector<llm::chat_message>& msgs) {
  std::string s;
  for (const auto& m : msgs) {
    if (m.role == llm::role::user) s += "U";
    else if (m.role == llm::role::tool) s += "T(" + m.tool_call_id + ")";
    else {
      s += "A";
      for (const auto& c : m.tool_calls) s += "[" + c.id + "]";
    }
  }
  return s;
}

}  // namespace

// Adversarial stored shapes: what comes back is always something a provider accepts.
TEST(history_mapping, rebuilds_a_conversation_every_provider_accepts) {
  using entries = std::vector<session::history_entry>;
  // Trimmed mid-turn by an older Berth: orphan result and answer before the first user message.
  EXPECT_EQ(shape(gateway::from_history_entries(entries{result("c1"), answer("a"), user("u"), answer("b")})), "UA");
  // A result whose call is gone, in the middle.
  EXPECT_EQ(shape(gateway::from_history_entries(entries{user("u"), answer("a"), result("c1"), user("v")})), "UAU");
  // A result for a call of an older assistant message, after a user message.
  EXPECT_EQ(shape(gateway::from_history_entries(entries{user("u"), call("c1"), result("c1"), user("v"), result("c1")})),
            "UA[c1]T(c1)U");
  // Results twice, and for a call of another message; one call never answered mid-history.
  EXPECT_EQ(shape(gateway::from_history_entries(
                entries{user("u"), call("c1"), call("c2"), result("c2"), result("c2"), result("c9"), user("v")})),
            "UA[c2]T(c2)U");
  // An assistant message whose only call was never answered, with nothing else: gone.
  EXPECT_EQ(shape(gateway::from_history_entries(entries{user("u"), call("c1"), user("v"), answer("x")})), "UUA");
  // Nothing usable at all.
  EXPECT_EQ(shape(gateway::from_history_entries(entries{result("c1"), answer("a")})), "");
}
