// Streamable HTTP reply bodies (JSON and SSE) -> JSON-RPC lines, and the client state machine fed
// with them: the same exchange as stdio, over the bodies a streamable-HTTP MCP server sends.
#include <algorithm>

#include <gtest/gtest.h>

#include "berth/mcp/client_fsm.hpp"
#include "berth/mcp/streamable_http.hpp"

using namespace berth::mcp;
using nlohmann::json;

TEST(StreamableHttp, JsonBodyOneMessageOrBatch) {
  auto one = streamable_http_lines("application/json; charset=utf-8", "{\n \"jsonrpc\": \"2.0\", \"id\": 1, \"result\": {}\n}");
  ASSERT_TRUE(one);
  EXPECT_EQ(*one, "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
  auto batch = streamable_http_lines("Application/JSON",
                                     R"([{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"x"}])");
  ASSERT_TRUE(batch);
  EXPECT_EQ(std::count(batch->begin(), batch->end(), '\n'), 2);
}

TEST(StreamableHttp, SseEventsWithCommentsCrlfAndMultilineData) {
  const std::string body =
      ": keep-alive\r\n"
      "event: message\r\n"
      "id: 7\r\n"
      "data: {\"jsonrpc\":\"2.0\",\r\n"
      "data:  \"method\":\"notifications/progress\"}\r\n"
      "\r\n"
      "event: message\n"
      "data: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[]}}\n"
      "\n"
      "retry: 100\n\n";
  auto lines = streamable_http_lines("text/event-stream", body);
  ASSERT_TRUE(lines);
  EXPECT_EQ(*lines,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n"
            "{\"id\":3,\"jsonrpc\":\"2.0\",\"result\":{\"content\":[]}}\n");
}

TEST(StreamableHttp, LastEventWithoutTrailingBlankLineIsDelivered) {
  auto lines = streamable_http_lines("text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
  ASSERT_TRUE(lines);
  EXPECT_EQ(*lines, "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
}

TEST(StreamableHttp, EmptyBodyAndUnknownType) {
  auto accepted = streamable_http_lines("", "");
  ASSERT_TRUE(accepted);
  EXPECT_TRUE(accepted->empty());
  auto html = streamable_http_lines("text/html", "<html>login</html>");
  ASSERT_FALSE(html);
  EXPECT_NE(html.error().message.find("text/html"), std::string::npos);
}

TEST(StreamableHttp, GarbledPayloadBecomesAProtocolErrorNotACrash) {
  client_fsm fsm;
  fsm.start(clock::now());
  (void)fsm.take_output();
  auto lines = streamable_http_lines("text/event-stream", "data: {not json\ndata: at all\n\n");
  ASSERT_TRUE(lines);
  fsm.on_bytes(*lines);
  auto evs = fsm.take_events();
  ASSERT_EQ(evs.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<ev_protocol_error>(evs[0]));
}

TEST(StreamableHttp, InitializeAndToolCallOverSseBodies) {
  client_fsm fsm;
  const auto init_id = fsm.start(clock::now());
  auto init = parse_message(fsm.take_output());
  ASSERT_EQ(init.method, "initialize");
  json reply{{"jsonrpc", "2.0"},
             {"id", init_id},
             {"result",
              {{"protocolVersion", "2025-06-18"},
               {"capabilities", {{"tools", json::object()}}},
               {"serverInfo", {{"name", "remote"}, {"version", "1"}}}}}};
  fsm.on_bytes(*streamable_http_lines("text/event-stream", "event: message\ndata: " + reply.dump() + "\n\n"));
  auto evs = fsm.take_events();
  ASSERT_EQ(evs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<ev_initialized>(evs[0]));
  EXPECT_NE(fsm.take_output().find("notifications/initialized"), std::string::npos);
  auto id = fsm.call_tool("echo", json{{"text", "hi"}}, clock::now() + std::chrono::seconds(5));
  ASSERT_TRUE(id);
  (void)fsm.take_output();
  json result{{"jsonrpc", "2.0"}, {"id", *id}, {"result", {{"content", {{{"type", "text"}, {"text", "hi"}}}}}}};
  fsm.on_bytes(*streamable_http_lines("application/json", result.dump()));
  evs = fsm.take_events();
  ASSERT_EQ(evs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<ev_tool_result>(evs[0]));
  EXPECT_EQ(std::get<ev_tool_result>(evs[0]).outcome.text, "hi");
}
