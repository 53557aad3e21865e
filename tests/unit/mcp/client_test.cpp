#include <gtest/gtest.h>

#include "berth/mcp/client_fsm.hpp"

using namespace berth::mcp;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::vector<json> lines_of(std::string out) {
  std::vector<json> v;
  line_decoder d;
  d.feed(out);
  while (auto i = d.next()) v.push_back(json::parse(i->line));
  return v;
}

template <class T>
std::vector<T> only(const std::vector<client_event>& evs) {
  std::vector<T> v;
  for (const auto& e : evs)
    if (auto* p = std::get_if<T>(&e)) v.push_back(*p);
  return v;
}

struct ready_client {
  clock::time_point t0{};
  client_fsm c;
  ready_client() {
    auto id = c.start(t0);
    c.take_output();
    c.on_bytes(make_result(id, json{{"protocolVersion", "2025-06-18"},
                                    {"capabilities", {{"tools", json::object()}}},
                                    {"serverInfo", {{"name", "berth-sandbox"}, {"version", "0.1.0"}}}}));
    c.take_output();
    c.take_events();
  }
};

}  // namespace

TEST(McpClient, HandshakeSendsInitializeThenInitializedNotification) {
  client_fsm c;
  EXPECT_EQ(c.state(), client_state::idle);
  const auto id = c.start(clock::time_point{});
  EXPECT_EQ(c.state(), client_state::initializing);
  auto out = lines_of(c.take_output());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["method"], "initialize");
  EXPECT_EQ(out[0]["id"], id);
  EXPECT_EQ(out[0]["params"]["protocolVersion"], "2025-06-18");
  EXPECT_EQ(out[0]["params"]["clientInfo"]["name"], "berth");
  // Not ready yet: calls are refused with a precise error.
  auto r = c.call_tool("list_files", json::object(), clock::time_point{} + 1s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, berth::core::errc::sandbox_unavailable);

  // The answer may arrive split anywhere.
  const std::string answer = make_result(id, json{{"protocolVersion", "2025-03-26"},
                                                  {"capabilities", {{"tools", json::object()}}},
                                                  {"serverInfo", {{"name", "srv"}, {"version", "9"}}}});
  c.on_bytes(answer.substr(0, 7));
  EXPECT_TRUE(c.take_events().empty());
  c.on_bytes(answer.substr(7));
  auto evs = c.take_events();
  auto init = only<ev_initialized>(evs);
  ASSERT_EQ(init.size(), 1u);
  EXPECT_EQ(init[0].request_id, id);
  EXPECT_EQ(request_id_of(evs[0]), id);
  EXPECT_EQ(request_id_of(ev_protocol_error{"x"}), 0u);
  EXPECT_EQ(init[0].protocol_version, "2025-03-26");
  EXPECT_EQ(init[0].server_name, "srv");
  EXPECT_EQ(init[0].server_version, "9");
  EXPECT_EQ(c.state(), client_state::ready);
  EXPECT_EQ(c.protocol_version(), "2025-03-26");
  out = lines_of(c.take_output());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["method"], "notifications/initialized");
  EXPECT_FALSE(out[0].contains("id"));
}

TEST(McpClient, UnsupportedServerVersionClosesTheSession) {
  client_fsm c;
  auto id = c.start({});
  c.on_bytes(make_result(id, json{{"protocolVersion", "1999-01-01"}, {"capabilities", json::object()}}));
  auto failed = only<ev_request_failed>(c.take_events());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].reason, failure::bad_response);
  EXPECT_NE(failed[0].message.find("1999-01-01"), std::string::npos);
  EXPECT_EQ(c.state(), client_state::closed);
}

TEST(McpClient, InitializeTimeoutClosesTheSession) {
  client_options o;
  o.init_timeout = 500ms;
  client_fsm c(o);
  const clock::time_point t0{};
  c.start(t0);
  ASSERT_TRUE(c.next_deadline());
  EXPECT_EQ(*c.next_deadline(), t0 + 500ms);
  c.on_timer(t0 + 499ms);
  EXPECT_TRUE(c.take_events().empty());
  c.on_timer(t0 + 500ms);
  auto failed = only<ev_request_failed>(c.take_events());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].reason, failure::timeout);
  EXPECT_EQ(c.state(), client_state::closed);
}

TEST(McpClient, ListToolsMapsDescriptors) {
  ready_client rc;
  auto id = rc.c.list_tools(rc.t0 + 1s);
  ASSERT_TRUE(id);
  auto out = lines_of(rc.c.take_output());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["method"], "tools/list");
  rc.c.on_bytes(make_result(*id, json{{"tools", json::array({json{{"name", "read_file"},
                                                                  {"description", "Read"},
                                                                  {"inputSchema", {{"type", "object"}}}}})}}));
  auto listed = only<ev_tools_listed>(rc.c.take_events());
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].request_id, *id);
  ASSERT_EQ(listed[0].tools.size(), 1u);
  EXPECT_EQ(listed[0].tools[0].name, "read_file");
  EXPECT_EQ(listed[0].tools[0].description, "Read");
  EXPECT_EQ(rc.c.pending(), 0u);
}

TEST(McpClient, ToolCallResultIsFlattenedToText) {
  ready_client rc;
  auto id = rc.c.call_tool("run_command", json{{"command", "ls"}}, rc.t0 + 1s);
  ASSERT_TRUE(id);
  auto out = lines_of(rc.c.take_output());
  EXPECT_EQ(out[0]["params"]["name"], "run_command");
  EXPECT_EQ(out[0]["params"]["arguments"]["command"], "ls");
  rc.c.on_bytes(make_result(*id, json{{"content", json::array({json{{"type", "text"}, {"text", "a"}},
                                                               json{{"type", "image"}, {"data", "..."}, {"mimeType", "image/png"}},
                                                               json{{"type", "text"}, {"text", "b"}}})},
                                      {"isError", true}}));
  auto res = only<ev_tool_result>(rc.c.take_events());
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].outcome.text, "a\n[image image/png content omitted]\nb");
  EXPECT_TRUE(res[0].outcome.is_error);
}

TEST(McpClient, RpcErrorAndMalformedResultFailTheRequestOnly) {
  ready_client rc;
  auto a = rc.c.call_tool("x", json::object(), rc.t0 + 1s);
  auto b = rc.c.call_tool("y", json::object(), rc.t0 + 1s);
  rc.c.on_bytes(make_error(*a, rpc_error::invalid_params, "Unknown tool: x"));
  rc.c.on_bytes(make_result(*b, json{{"content", "not an array"}}));
  auto failed = only<ev_request_failed>(rc.c.take_events());
  ASSERT_EQ(failed.size(), 2u);
  EXPECT_EQ(failed[0].reason, failure::rpc_error);
  EXPECT_EQ(failed[0].rpc_code, -32602);
  EXPECT_EQ(failed[0].message, "Unknown tool: x");
  EXPECT_EQ(failed[1].reason, failure::bad_response);
  EXPECT_EQ(rc.c.state(), client_state::ready);
}

TEST(McpClient, NonJsonLinesAreReportedAndTheSessionContinues) {
  ready_client rc;
  auto id = rc.c.call_tool("x", json::object(), rc.t0 + 1s);
  rc.c.on_bytes("Segmentation fault (core dumped)\n{\"jsonrpc\":\"2.0\"}\n");
  rc.c.on_bytes(make_result(*id, json{{"content", json::array()}}));
  auto evs = rc.c.take_events();
  auto errs = only<ev_protocol_error>(evs);
  ASSERT_EQ(errs.size(), 2u);
  EXPECT_NE(errs[0].message.find("not valid JSON"), std::string::npos);
  EXPECT_NE(errs[0].message.find("Segmentation"), std::string::npos);
  EXPECT_EQ(only<ev_tool_result>(evs).size(), 1u);
}

TEST(McpClient, OverLongLineIsReportedNotBuffered) {
  client_options o;
  o.max_line_bytes = 100;
  client_fsm c(o);
  c.start({});
  c.on_bytes(std::string(1000, 'x') + "\n");
  auto errs = only<ev_protocol_error>(c.take_events());
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_NE(errs[0].message.find("1000 bytes"), std::string::npos);
}

TEST(McpClient, DeadlineExpirySendsCancellationAndLateAnswerIsIgnored) {
  ready_client rc;
  auto a = rc.c.call_tool("slow", json::object(), rc.t0 + 100ms);
  auto b = rc.c.call_tool("fast", json::object(), rc.t0 + 5s);
  rc.c.take_output();
  EXPECT_EQ(*rc.c.next_deadline(), rc.t0 + 100ms);
  rc.c.on_timer(rc.t0 + 100ms);
  auto failed = only<ev_request_failed>(rc.c.take_events());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].request_id, *a);
  EXPECT_EQ(failed[0].reason, failure::timeout);
  auto out = lines_of(rc.c.take_output());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["method"], "notifications/cancelled");
  EXPECT_EQ(out[0]["params"]["requestId"], *a);
  EXPECT_EQ(*rc.c.next_deadline(), rc.t0 + 5s);
  // The server answers anyway: reported as a protocol error, not delivered twice.
  rc.c.on_bytes(make_result(*a, json{{"content", json::array()}}));
  auto evs = rc.c.take_events();
  EXPECT_TRUE(only<ev_tool_result>(evs).empty());
  EXPECT_EQ(only<ev_protocol_error>(evs).size(), 1u);
  EXPECT_EQ(rc.c.pending(), 1u);
  (void)b;
}

TEST(McpClient, ExplicitCancel) {
  ready_client rc;
  auto a = rc.c.call_tool("slow", json::object(), rc.t0 + 5s);
  rc.c.take_output();
  EXPECT_TRUE(rc.c.cancel(*a, "user ended the session"));
  EXPECT_FALSE(rc.c.cancel(*a, "twice"));
  EXPECT_FALSE(rc.c.cancel(12345, "unknown"));
  auto failed = only<ev_request_failed>(rc.c.take_events());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].reason, failure::cancelled);
  auto out = lines_of(rc.c.take_output());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["params"]["reason"], "user ended the session");
}

TEST(McpClient, ClosedTransportFailsEveryPendingRequest) {
  ready_client rc;
  (void)rc.c.call_tool("a", json::object(), rc.t0 + 5s);
  (void)rc.c.call_tool("b", json::object(), rc.t0 + 5s);
  rc.c.on_closed("exec exited");
  auto failed = only<ev_request_failed>(rc.c.take_events());
  ASSERT_EQ(failed.size(), 2u);
  for (auto& f : failed) EXPECT_EQ(f.reason, failure::closed);
  EXPECT_EQ(rc.c.state(), client_state::closed);
  EXPECT_FALSE(rc.c.call_tool("c", json::object(), rc.t0 + 5s));
  EXPECT_FALSE(rc.c.next_deadline());
}

TEST(McpClient, ServerPingIsAnsweredAndOtherServerRequestsDeclined) {
  ready_client rc;
  rc.c.on_bytes(make_request(7, "ping", nullptr));
  rc.c.on_bytes(make_request("s1", "sampling/createMessage", json::object()));
  auto out = lines_of(rc.c.take_output());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["id"], 7);
  EXPECT_TRUE(out[0]["result"].is_object());
  EXPECT_EQ(out[1]["id"], "s1");
  EXPECT_EQ(out[1]["error"]["code"], -32601);
}

TEST(McpClient, InFlightLimit) {
  client_options o;
  o.max_pending = 2;
  client_fsm c(o);
  auto id = c.start({});
  c.on_bytes(make_result(id, json{{"protocolVersion", "2024-11-05"}}));
  EXPECT_TRUE(c.call_tool("a", json::object(), {}));
  EXPECT_TRUE(c.call_tool("b", json::object(), {}));
  auto r = c.call_tool("c", json::object(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, berth::core::errc::too_many_requests);
  EXPECT_FALSE(c.call_tool("d", json::array(), {}));  // arguments must be an object
}

TEST(MapToolCallResult, Variants) {
  auto ok = map_tool_call_result(json{{"content", json::array({json{{"type", "text"}, {"text", "hi"}}})}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->text, "hi");
  EXPECT_FALSE(ok->is_error);
  auto structured = map_tool_call_result(json{{"structuredContent", {{"n", 1}}}});
  ASSERT_TRUE(structured);
  EXPECT_EQ(structured->text, "{\"n\":1}");
  auto res = map_tool_call_result(json{{"content", json::array({json{{"type", "resource"}, {"resource", {{"uri", "file:///a"}, {"text", "body"}}}}})}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->text, "body");
  EXPECT_FALSE(map_tool_call_result(json::array()));
  EXPECT_FALSE(map_tool_call_result(json{{"content", json::array({1})}}));
  EXPECT_FALSE(map_tool_call_result(json{{"content", json::array({json{{"type", "text"}}})}}));
  EXPECT_FALSE(map_tool_call_result(json{{"content", json::array()}, {"isError", "yes"}}));
}

TEST(MapToolsList, PreciseErrors) {
  auto r = map_tools_list(json{{"tools", json::array({json{{"name", "a"}, {"inputSchema", {{"type", "object"}}}},
                                                       json{{"name", "b"}}})}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("tools[1] (b).inputSchema"), std::string::npos) << r.error().message;
  EXPECT_FALSE(map_tools_list(json{{"tools", json::array({json{{"name", ""}}})}}));
  EXPECT_FALSE(map_tools_list(json::object()));
}

// berth-sandbox supervise restarted the server: what was in flight is lost, and the session says
// so at once instead of at each request's deadline.
TEST(McpClient, ServerRestartedNotificationFailsWhatIsInFlightAndClosesTheSession) {
  ready_client r;
  auto call = r.c.call_tool("run_command", json{{"command", "sleep 9"}}, r.t0 + 30s);
  ASSERT_TRUE(call);
  r.c.take_output();
  r.c.on_bytes("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n");  // others change nothing
  EXPECT_EQ(r.c.state(), client_state::ready);
  r.c.on_bytes("\n" + make_notification(server_restarted_method, json{{"exitCode", -1}, {"signal", 9}}));
  EXPECT_EQ(r.c.state(), client_state::closed);
  auto failed = only<ev_request_failed>(r.c.take_events());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].request_id, *call);
  EXPECT_EQ(failed[0].reason, failure::closed);
}

// A client that talks to the same server again (a new attach) goes on numbering where the last
// one stopped, so a late answer to an old request is never matched to a new one.
TEST(McpClient, FirstRequestIdContinuesTheNumbering) {
  ready_client r;
  const auto next = r.c.next_request_id();
  client_options o;
  o.first_request_id = next;
  client_fsm again(o);
  EXPECT_EQ(again.start(r.t0), next);
  // The old stream's answer to request `next - 1` is not the new initialize's.
  again.on_bytes(make_result(json(next - 1), json::object()));
  EXPECT_EQ(again.state(), client_state::initializing);
}
