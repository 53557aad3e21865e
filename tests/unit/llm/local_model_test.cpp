// The embedded local model: request phrasing -> sandbox tool calls, tool results -> final answer,
// determinism, and respect for the offered tool list.
#include <gtest/gtest.h>

#include "berth/llm/local_model.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;

std::vector<tool_spec> sandbox_tools() {
  auto obj = [](json props) { return json{{"type", "object"}, {"properties", std::move(props)}}; };
  return {{"list_files", "List files", obj({{"path", {{"type", "string"}}}, {"recursive", {{"type", "boolean"}}}})},
          {"read_file", "Read a file", obj({{"path", {{"type", "string"}}}})},
          {"write_file", "Write a file", obj({{"path", {{"type", "string"}}}, {"content", {{"type", "string"}}}})},
          {"run_command", "Run a command", obj({{"command", {{"type", "string"}}}})}};
}

llm_request ask(std::string text) {
  llm_request r;
  r.tools = sandbox_tools();
  r.messages.push_back(chat_message::user(std::move(text)));
  return r;
}

struct case_t {
  std::string input;
  std::string tool;
  json args;
};

TEST(LocalModel, MapsRequestsToToolCalls) {
  const std::vector<case_t> cases = {
      {"List all files in /workspace", "list_files", {{"path", "/workspace"}}},
      {"list files", "list_files", {{"path", "/workspace"}}},
      {"Please list the files in /workspace/src recursively.", "list_files", {{"path", "/workspace/src"}, {"recursive", true}}},
      {"ls src", "list_files", {{"path", "/workspace"}}},
      {"What files are in the workspace?", "list_files", {{"path", "/workspace"}}},
      {"show me the files in ./docs", "list_files", {{"path", "/workspace/docs"}}},
      {"read notes.txt", "read_file", {{"path", "/workspace/notes.txt"}}},
      {"Read the file /workspace/a/b.md.", "read_file", {{"path", "/workspace/a/b.md"}}},
      {"show me hello.py", "read_file", {{"path", "/workspace/hello.py"}}},
      {"cat \"/workspace/x y\"", "read_file", {{"path", "/workspace/x y"}}},
      {"write hello world to notes.txt", "write_file", {{"path", "/workspace/notes.txt"}, {"content", "hello world"}}},
      {"Write 'a to b' to /workspace/t.txt", "write_file", {{"path", "/workspace/t.txt"}, {"content", "a to b"}}},
      {"create notes.txt with hi there", "write_file", {{"path", "/workspace/notes.txt"}, {"content", "hi there"}}},
      {"Create a file named app.py containing print(1)", "write_file", {{"path", "/workspace/app.py"}, {"content", "print(1)"}}},
      {"create empty.txt", "write_file", {{"path", "/workspace/empty.txt"}, {"content", ""}}},
      {"run `ls -la /workspace`", "run_command", {{"command", "ls -la /workspace"}}},
      {"Please run: python3 --version", "run_command", {{"command", "python3 --version"}}},
      {"run echo hi", "run_command", {{"command", "echo hi"}}},
      {"execute the command `uname -a`", "run_command", {{"command", "uname -a"}}},
      {"Can you run ```echo `date` ```?", "run_command", {{"command", "echo `date`"}}},
      {"$ whoami", "run_command", {{"command", "whoami"}}},
  };
  for (const auto& c : cases) {
    auto out = local_complete(ask(c.input));
    ASSERT_EQ(out.tool_calls.size(), 1u) << c.input << " -> " << out.text;
    EXPECT_EQ(out.tool_calls[0].name, c.tool) << c.input;
    EXPECT_EQ(out.tool_calls[0].args, c.args) << c.input;
    EXPECT_EQ(out.tool_calls[0].id, "call_local_1");
    EXPECT_EQ(out.stop_reason, stop_reason::tool_use);
    EXPECT_EQ(out.model, "berth-local");
    EXPECT_FALSE(out.text.empty());
  }
}

TEST(LocalModel, OtherwiseAnswersWithHelp) {
  for (std::string q : {"hello", "What is the meaning of life?", "", "read", "read this and that"}) {
    auto out = local_complete(ask(q));
    EXPECT_TRUE(out.tool_calls.empty()) << q;
    EXPECT_EQ(out.stop_reason, stop_reason::end_turn);
    EXPECT_NE(out.text.find("List all files in /workspace"), std::string::npos) << q;
  }
}

TEST(LocalModel, SummarisesToolResults) {
  llm_request r = ask("List all files in /workspace");
  auto first = local_complete(r);
  r.messages.push_back(chat_message::assistant(first.text, first.tool_calls));
  r.messages.push_back(chat_message::tool_result(first.tool_calls[0].id, "list_files", "notes.txt\nsrc/\n"));
  auto out = local_complete(r);
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_EQ(out.stop_reason, stop_reason::end_turn);
  EXPECT_EQ(out.text, "Here are the files in /workspace:\nnotes.txt\nsrc/");

  // The next request numbers its call after the ones already in the conversation.
  r.messages.push_back(chat_message::assistant(out.text));
  r.messages.push_back(chat_message::user("read notes.txt"));
  auto second = local_complete(r);
  ASSERT_EQ(second.tool_calls.size(), 1u);
  EXPECT_EQ(second.tool_calls[0].id, "call_local_2");
}

TEST(LocalModel, SummariesPerToolAndFailures) {
  llm_request r;
  r.tools = sandbox_tools();
  r.messages.push_back(chat_message::user("do things"));
  r.messages.push_back(chat_message::assistant(
      "", {{"c1", "read_file", {{"path", "/workspace/a"}}},
           {"c2", "write_file", {{"path", "/workspace/b"}, {"content", "x"}}},
           {"c3", "run_command", {{"command", "false"}}},
           {"c4", "run_command", {{"command", "true"}}}}));
  r.messages.push_back(chat_message::tool_result("c1", "read_file", "alpha"));
  r.messages.push_back(chat_message::tool_result("c2", "write_file", "Wrote 1 byte"));
  r.messages.push_back(chat_message::tool_result("c3", "run_command", "exit code 1", true));
  r.messages.push_back(chat_message::tool_result("c4", "run_command", ""));
  auto out = local_complete(r);
  EXPECT_EQ(out.text,
            "Here is /workspace/a:\n```\nalpha\n```\n\n"
            "Done: I wrote /workspace/b. Wrote 1 byte\n\n"
            "The run_command call failed: exit code 1\n\n"
            "I ran `true`:\n```\n(no output)\n```");
}

TEST(LocalModel, HugeToolOutputIsBounded) {
  llm_request r = ask("read big.log");
  auto first = local_complete(r);
  r.messages.push_back(chat_message::assistant(first.text, first.tool_calls));
  r.messages.push_back(chat_message::tool_result(first.tool_calls[0].id, "read_file", std::string(1'000'000, 'x')));
  auto out = local_complete(r);
  EXPECT_LT(out.text.size(), 9000u);
  EXPECT_NE(out.text.find("truncated, 1000000 bytes"), std::string::npos);
  r.max_output_tokens = 10;
  out = local_complete(r);
  EXPECT_EQ(out.text.size(), 40u);
  EXPECT_EQ(out.stop_reason, stop_reason::max_tokens);
}

TEST(LocalModel, OnlyCallsOfferedToolsAndResolvesNamespacedNames) {
  llm_request r = ask("run `ls`");
  r.tools.clear();
  auto out = local_complete(r);
  EXPECT_TRUE(out.tool_calls.empty());
  EXPECT_NE(out.text.find("run_command tool, but it is not available"), std::string::npos);

  r.tools = {{"sandbox__run_command", "", json::object()}, {"myrun_command", "", json::object()}};
  out = local_complete(r);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "sandbox__run_command");

  // Without "recursive" in the schema the argument is not sent.
  r = ask("list files recursively");
  r.tools = {{"list_files", "", json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}}}};
  out = local_complete(r);
  EXPECT_EQ(out.tool_calls.at(0).args, json({{"path", "/workspace"}}));
}

TEST(LocalModel, Deterministic) {
  for (std::string q : {"List all files in /workspace", "write x to y", "hello"}) {
    auto a = local_complete(ask(q)), b = local_complete(ask(q));
    EXPECT_EQ(a.text, b.text);
    ASSERT_EQ(a.tool_calls.size(), b.tool_calls.size());
    for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
      EXPECT_EQ(a.tool_calls[i].id, b.tool_calls[i].id);
      EXPECT_EQ(a.tool_calls[i].args, b.tool_calls[i].args);
    }
    EXPECT_EQ(a.usage.input_tokens, b.usage.input_tokens);
  }
}

}  // namespace
}  // namespace berth::llm

namespace berth::llm {
namespace {
// Any offered tool (e.g. an extra MCP server's) by exact name with JSON arguments; names not
// offered, or arguments that are not a JSON object, fall through to the other phrasings.
TEST(LocalModel, ExplicitCallOfAnyOfferedTool) {
  auto req = ask(R"(call remote__read_file with {"path": "a.txt"})");
  req.tools.push_back({"remote__read_file", "Read remotely", json{{"type", "object"}}});
  req.tools.push_back({"echo", "Echo", json{{"type", "object"}}});
  auto out = local_complete(req);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "remote__read_file");
  EXPECT_EQ(out.tool_calls[0].args, (json{{"path", "a.txt"}}));
  req.messages.back() = chat_message::user("use the tool echo");
  out = local_complete(req);
  ASSERT_EQ(out.tool_calls.size(), 1u);
  EXPECT_EQ(out.tool_calls[0].name, "echo");
  EXPECT_EQ(out.tool_calls[0].args, json::object());
  for (std::string q : {"call nothere {}", "call echo with [1]", "call echo with {broken"}) {
    req.messages.back() = chat_message::user(q);
    EXPECT_TRUE(local_complete(req).tool_calls.empty()) << q;
  }
}
}  // namespace
}  // namespace berth::llm
