#include <gtest/gtest.h>

#include "berth/agent/turn_fsm.hpp"

using namespace berth::agent;
using berth::core::errc;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::vector<tool_spec> sandbox_tools() {
  return {
      tool_spec{"list_files", "", json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}, {"additionalProperties", false}}},
      tool_spec{"read_file", "", json{{"type", "object"}, {"properties", {{"path", {{"type", "string"}}}}}, {"required", {"path"}}}},
      tool_spec{"run_command", "",
                json{{"type", "object"},
                     {"properties", {{"command", {{"type", "string"}}}, {"timeout_ms", {{"type", "integer"}, {"minimum", 1}}}}},
                     {"required", {"command"}},
                     {"additionalProperties", false}}},
  };
}

template <class T>
std::vector<T> all(const std::vector<action>& acts) {
  std::vector<T> v;
  for (const auto& a : acts)
    if (auto* p = std::get_if<T>(&a)) v.push_back(*p);
  return v;
}

std::vector<emit> emits(const std::vector<action>& acts, std::string_view name) {
  std::vector<emit> v;
  for (auto& e : all<emit>(acts))
    if (e.event == name) v.push_back(e);
  return v;
}

// Terminal events of a turn: agent:response, or agent:error without a callId.
int terminals(const std::vector<action>& acts) {
  int n = 0;
  for (auto& e : all<emit>(acts))
    if (e.event == "agent:response" || (e.event == "agent:error" && !e.payload.contains("callId"))) ++n;
  return n;
}

llm_reply text_reply(std::string t) {
  llm_reply r;
  r.text = std::move(t);
  return r;
}

llm_reply calls_reply(std::vector<tool_call> calls, std::string text = "") {
  llm_reply r;
  r.text = std::move(text);
  r.tool_calls = std::move(calls);
  return r;
}

tool_call tc(std::string id, std::string name, json args) { return tool_call{std::move(id), std::move(name), std::move(args)}; }

void append(std::vector<action>& to, std::vector<action> more) {
  for (auto& a : more) to.push_back(std::move(a));
}

}  // namespace

TEST(TurnFsm, PlainTurnEndsWithResponse) {
  turn_fsm f({}, sandbox_tools());
  auto a = f.on_user_message("hello");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_TRUE(std::holds_alternative<ack>(a[0]));
  EXPECT_TRUE(std::get<ack>(a[0]).ok);
  ASSERT_TRUE(std::holds_alternative<append_history>(a[1]));
  EXPECT_EQ(std::get<append_history>(a[1]).message.role, role::user);
  EXPECT_EQ(std::get<emit>(a[2]).event, "agent:thinking");
  EXPECT_EQ(std::get<emit>(a[2]).payload, (json{{"turnId", "turn-1"}}));
  EXPECT_EQ(std::get<ack>(a[0]).turn_id, "turn-1");
  EXPECT_EQ(std::get<turn_clock>(a[3]).what, turn_clock::change::start);
  auto& llm = std::get<call_llm>(a[4]);
  ASSERT_EQ(llm.messages.size(), 1u);
  EXPECT_EQ(llm.messages[0].content, "hello");
  EXPECT_EQ(llm.tools.size(), 3u);
  EXPECT_EQ(f.phase(), turn_phase::waiting_llm);
  auto b = f.on_llm_reply(text_reply("hi!"));
  auto resp = emits(b, "agent:response");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_EQ(resp[0].payload, "hi!");
  ASSERT_EQ(all<end_turn>(b).size(), 1u);
  EXPECT_TRUE(all<end_turn>(b)[0].ok);
  EXPECT_EQ(f.phase(), turn_phase::idle);
  ASSERT_EQ(f.history().size(), 2u);
  EXPECT_EQ(f.history()[1].role, role::assistant);
}

TEST(TurnFsm, MessagesDuringATurnQueueAndStartInOrder) {
  turn_options o;
  o.max_queued_messages = 2;
  turn_fsm f(o, sandbox_tools());
  f.on_user_message("first");
  auto q1 = f.on_user_message("second");
  ASSERT_EQ(q1.size(), 1u);
  EXPECT_TRUE(std::get<ack>(q1[0]).ok);
  EXPECT_TRUE(all<call_llm>(q1).empty());  // one turn at a time
  f.on_user_message("third");
  auto over = f.on_user_message("fourth");
  ASSERT_EQ(over.size(), 1u);
  EXPECT_FALSE(std::get<ack>(over[0]).ok);
  EXPECT_EQ(std::get<ack>(over[0]).error->code, errc::too_many_requests);
  EXPECT_EQ(f.queued(), 2u);
  auto end1 = f.on_llm_reply(text_reply("r1"));
  // The first turn ends, then the second starts in the same step.
  EXPECT_EQ(emits(end1, "agent:response").size(), 1u);
  EXPECT_EQ(all<end_turn>(end1).size(), 1u);
  auto llm = all<call_llm>(end1);
  ASSERT_EQ(llm.size(), 1u);
  ASSERT_EQ(llm[0].messages.size(), 3u);
  EXPECT_EQ(llm[0].messages[2].content, "second");
  EXPECT_EQ(f.queued(), 1u);
  auto end2 = f.on_llm_reply(text_reply("r2"));
  EXPECT_EQ(all<call_llm>(end2)[0].messages.back().content, "third");
  auto end3 = f.on_llm_reply(text_reply("r3"));
  EXPECT_TRUE(all<call_llm>(end3).empty());
  EXPECT_EQ(f.phase(), turn_phase::idle);
}

TEST(TurnFsm, ApprovalsOneAtATimeThenSequentialExecutionThenResultsBack) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("do things");
  auto a = f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/workspace"}}),
                                       tc("c2", "read_file", {{"path", "a.txt"}}),
                                       tc("c3", "run_command", {{"command", "ls"}})},
                                      "let me look"));
  auto asks = emits(a, "tool:approval_required");
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].payload, (json{{"name", "list_files"}, {"args", {{"path", "/workspace"}}}, {"callId", "c1"},
                                   {"queuePosition", 1}, {"totalInQueue", 3}, {"turnId", "turn-1"}}));
  EXPECT_EQ(f.pending_call_id(), "c1");
  ASSERT_EQ(all<append_history>(a).size(), 1u);
  EXPECT_EQ(all<append_history>(a)[0].message.tool_calls.size(), 3u);

  auto b = f.on_approval("c1", true);
  EXPECT_TRUE(std::get<ack>(b[0]).ok);
  EXPECT_TRUE(all<run_tool>(b).empty());  // not before every call is decided
  asks = emits(b, "tool:approval_required");
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].payload["callId"], "c2");
  EXPECT_EQ(asks[0].payload["queuePosition"], 2);
  EXPECT_EQ(asks[0].payload["totalInQueue"], 3);

  auto c = f.on_approval("c2", false);
  asks = emits(c, "tool:approval_required");
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].payload["queuePosition"], 3);
  EXPECT_TRUE(all<run_tool>(c).empty());

  auto d = f.on_approval("c3", true);
  auto runs = all<run_tool>(d);
  ASSERT_EQ(runs.size(), 1u);  // one at a time, in the model's order
  EXPECT_EQ(runs[0].call_id, "c1");
  EXPECT_EQ(runs[0].name, "list_files");
  EXPECT_EQ(f.phase(), turn_phase::running_tool);

  auto e = f.on_tool_result("c1", "a.txt\n", false, 12ms);
  auto outputs = emits(e, "tool:output");
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(outputs[0].payload, (json{{"callId", "c1"}, {"name", "list_files"}, {"content", "a.txt\n"}, {"isError", false},
                                      {"durationMs", 12}, {"turnId", "turn-1"}}));
  runs = all<run_tool>(e);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].call_id, "c3");  // c2 was rejected: never run

  auto g = f.on_tool_result("c3", "exit code: 1\n", true, 5ms);
  EXPECT_EQ(emits(g, "tool:output")[0].payload["isError"], true);
  auto llm = all<call_llm>(g);
  ASSERT_EQ(llm.size(), 1u);
  const auto& msgs = llm[0].messages;
  ASSERT_EQ(msgs.size(), 5u);  // user, assistant(calls), 3 results in the model's order
  EXPECT_EQ(msgs[2].tool_call_id, "c1");
  EXPECT_EQ(msgs[2].content, "a.txt\n");
  EXPECT_EQ(msgs[3].tool_call_id, "c2");
  EXPECT_TRUE(msgs[3].is_error);
  EXPECT_NE(msgs[3].content.find("rejected"), std::string::npos);
  EXPECT_EQ(msgs[4].tool_call_id, "c3");
  EXPECT_TRUE(msgs[4].is_error);
  EXPECT_EQ(all<append_history>(g).size(), 3u);

  auto h = f.on_llm_reply(text_reply("done"));
  EXPECT_EQ(terminals(h), 1);
  EXPECT_EQ(all<end_turn>(h).size(), 1u);
}

TEST(TurnFsm, EveryApprovalCombinationEndsTheTurnExactlyOnce) {
  for (int mask = 0; mask < 8; ++mask) {
    turn_fsm f({}, sandbox_tools());
    std::vector<action> acts = f.on_user_message("go");
    append(acts, f.on_llm_reply(calls_reply({tc("a", "run_command", {{"command", "1"}}), tc("b", "run_command", {{"command", "2"}}),
                                             tc("c", "run_command", {{"command", "3"}})})));
    for (int i = 0; i < 3; ++i) append(acts, f.on_approval(std::string(1, static_cast<char>('a' + i)), (mask >> i) & 1));
    int expected_runs = __builtin_popcount(static_cast<unsigned>(mask));
    // Answer each run_tool as it appears (they come one at a time).
    std::size_t seen = 0;
    for (int guard = 0; guard < 10; ++guard) {
      auto rt = all<run_tool>(acts);
      if (seen >= rt.size()) break;
      append(acts, f.on_tool_result(rt[seen].call_id, "out", false, 1ms));
      ++seen;
    }
    EXPECT_EQ(static_cast<int>(all<run_tool>(acts).size()), expected_runs) << mask;
    EXPECT_EQ(emits(acts, "tool:output").size(), static_cast<std::size_t>(expected_runs));
    ASSERT_EQ(f.phase(), turn_phase::waiting_llm) << mask;  // also when everything was rejected
    append(acts, f.on_llm_reply(text_reply("summary")));
    EXPECT_EQ(terminals(acts), 1) << mask;
    EXPECT_EQ(all<end_turn>(acts).size(), 1u) << mask;
    EXPECT_EQ(f.phase(), turn_phase::idle);
  }
}

TEST(TurnFsm, UnknownRepeatedOrNotYetPresentedCallIdGetsNoPendingCallAndRunsNothing) {
  turn_fsm f({}, sandbox_tools());
  auto idle = f.on_approval("c1", true);
  ASSERT_FALSE(std::get<ack>(idle[0]).ok);
  EXPECT_EQ(std::get<ack>(idle[0]).error->code, errc::no_pending_call);
  f.on_user_message("go");
  f.on_llm_reply(calls_reply({tc("c1", "run_command", {{"command", "a"}}), tc("c2", "run_command", {{"command", "b"}})}));
  for (const char* id : {"nope", "c2", ""}) {
    auto r = f.on_approval(id, true);
    ASSERT_FALSE(std::get<ack>(r[0]).ok) << id;
    EXPECT_EQ(std::get<ack>(r[0]).error->code, errc::no_pending_call);
    auto err = emits(r, "agent:error");
    ASSERT_EQ(err.size(), 1u);
    EXPECT_EQ(err[0].payload["code"], "NO_PENDING_CALL");
    EXPECT_EQ(err[0].payload["callId"], id);
    EXPECT_TRUE(all<run_tool>(r).empty());
    EXPECT_TRUE(emits(r, "tool:approval_required").empty());
  }
  EXPECT_EQ(f.pending_call_id(), "c1");
  f.on_approval("c1", true);
  auto again = f.on_approval("c1", true);  // repeated
  EXPECT_EQ(std::get<ack>(again[0]).error->code, errc::no_pending_call);
  EXPECT_TRUE(all<run_tool>(again).empty());
  auto last = f.on_approval("c2", true);
  EXPECT_EQ(all<run_tool>(last).size(), 1u);
  auto during_run = f.on_approval("c2", false);  // repeated while running
  EXPECT_EQ(std::get<ack>(during_run[0]).error->code, errc::no_pending_call);
  EXPECT_TRUE(all<run_tool>(during_run).empty());
}

TEST(TurnFsm, UnknownToolAndBadArgumentsAreErrorsNotApprovals) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("go");
  auto a = f.on_llm_reply(calls_reply({tc("u", "rm_everything", json::object()),
                                       tc("v", "read_file", json::object()),
                                       tc("w", "run_command", {{"command", "ls"}, {"timeout_ms", "soon"}}),
                                       tc("x", "list_files", json::object())}));
  auto errs = emits(a, "agent:error");
  ASSERT_EQ(errs.size(), 3u);
  EXPECT_EQ(errs[0].payload["code"], "TOOL_FAILED");
  EXPECT_EQ(errs[0].payload["callId"], "u");
  EXPECT_NE(errs[0].payload["message"].get<std::string>().find("unknown tool \"rm_everything\""), std::string::npos);
  EXPECT_EQ(errs[1].payload["code"], "INVALID_PAYLOAD");
  EXPECT_NE(errs[1].payload["message"].get<std::string>().find("missing required argument \"path\""), std::string::npos);
  EXPECT_NE(errs[2].payload["message"].get<std::string>().find("\"timeout_ms\" must be an integer, got string"), std::string::npos);
  auto asks = emits(a, "tool:approval_required");
  ASSERT_EQ(asks.size(), 1u);
  EXPECT_EQ(asks[0].payload["callId"], "x");
  EXPECT_EQ(asks[0].payload["queuePosition"], 1);
  EXPECT_EQ(asks[0].payload["totalInQueue"], 1);
  EXPECT_EQ(terminals(a), 0);  // the turn goes on
  auto b = f.on_approval("x", true);
  auto c = f.on_tool_result("x", "files", false, 1ms);
  auto llm = all<call_llm>(c);
  ASSERT_EQ(llm.size(), 1u);
  const auto& m = llm[0].messages;
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[2].tool_call_id, "u");
  EXPECT_TRUE(m[2].is_error);
  EXPECT_EQ(m[5].tool_call_id, "x");
  EXPECT_FALSE(m[5].is_error);
}

TEST(TurnFsm, OnlyInvalidCallsGoStraightBackToTheModel) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("go");
  auto a = f.on_llm_reply(calls_reply({tc("u", "nope", json::object())}));
  EXPECT_TRUE(emits(a, "tool:approval_required").empty());
  EXPECT_EQ(all<call_llm>(a).size(), 1u);
  EXPECT_EQ(f.phase(), turn_phase::waiting_llm);
}

TEST(TurnFsm, AtMostMaxToolRounds) {
  turn_options o;
  o.max_tool_rounds = 2;
  turn_fsm f(o, sandbox_tools());
  f.on_user_message("loop");
  for (int round = 0; round < 2; ++round) {
    const std::string id = "r" + std::to_string(round);
    auto a = f.on_llm_reply(calls_reply({tc(id, "run_command", {{"command", "x"}})}));
    ASSERT_EQ(emits(a, "tool:approval_required").size(), 1u) << round;
    f.on_approval(id, true);
    auto r = f.on_tool_result(id, "ok", false, 1ms);
    ASSERT_EQ(all<call_llm>(r).size(), 1u);
  }
  auto last = f.on_llm_reply(calls_reply({tc("r2", "run_command", {{"command", "x"}})}, "still going"));
  EXPECT_TRUE(emits(last, "tool:approval_required").empty());
  EXPECT_TRUE(all<run_tool>(last).empty());
  auto resp = emits(last, "agent:response");
  ASSERT_EQ(resp.size(), 1u);
  EXPECT_NE(resp[0].payload.get<std::string>().find("limit of 2 tool rounds"), std::string::npos);
  EXPECT_EQ(all<end_turn>(last).size(), 1u);
  // The unanswered calls are not kept in history.
  EXPECT_TRUE(f.history().back().tool_calls.empty());
  // The next message gets a fresh budget.
  f.on_user_message("again");
  auto a = f.on_llm_reply(calls_reply({tc("n1", "run_command", {{"command", "x"}})}));
  EXPECT_EQ(emits(a, "tool:approval_required").size(), 1u);
}

TEST(TurnFsm, LlmFailureEndsTheTurnWithAgentErrorAndTheQueueContinues) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  f.on_user_message("b");
  auto r = f.on_llm_failed(errc::llm_unavailable, "provider answered 503");
  auto err = emits(r, "agent:error");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].payload,
            (json{{"code", "LLM_UNAVAILABLE"}, {"message", "provider answered 503"}, {"turnId", "turn-1"}}));
  ASSERT_EQ(all<end_turn>(r).size(), 1u);
  EXPECT_FALSE(all<end_turn>(r)[0].ok);
  EXPECT_EQ(all<call_llm>(r).size(), 1u);  // "b" started
  // A stale failure or reply outside waiting_llm changes nothing.
  f.on_llm_reply(calls_reply({tc("k", "run_command", {{"command", "x"}})}));
  EXPECT_TRUE(f.on_llm_failed(errc::llm_error, "late").empty());
  EXPECT_TRUE(f.on_llm_reply(text_reply("late")).empty());
  EXPECT_EQ(f.phase(), turn_phase::awaiting_approval);
}

TEST(TurnFsm, EmptyModelReplyIsAnError) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  auto r = f.on_llm_reply(text_reply(""));
  EXPECT_EQ(emits(r, "agent:error")[0].payload["code"], "LLM_ERROR");
  EXPECT_EQ(terminals(r), 1);
  EXPECT_EQ(f.phase(), turn_phase::idle);
}

TEST(TurnFsm, ToolTimeoutIsReportedAndFedBack) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  f.on_llm_reply(calls_reply({tc("t", "run_command", {{"command", "sleep 100"}})}));
  f.on_approval("t", true);
  EXPECT_TRUE(f.on_tool_timeout("other", 30000ms).empty());
  auto r = f.on_tool_timeout("t", 30000ms);
  auto err = emits(r, "agent:error");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].payload["code"], "TOOL_TIMEOUT");
  EXPECT_EQ(err[0].payload["callId"], "t");
  auto out = emits(r, "tool:output");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].payload["isError"].get<bool>());
  EXPECT_EQ(out[0].payload["durationMs"], 30000);
  auto llm = all<call_llm>(r);
  ASSERT_EQ(llm.size(), 1u);
  EXPECT_NE(llm[0].messages.back().content.find("timed out"), std::string::npos);
  // A result arriving after the timeout is stale.
  EXPECT_TRUE(f.on_tool_result("t", "late", false, 1ms).empty());
  EXPECT_EQ(terminals(f.on_llm_reply(text_reply("it timed out"))), 1);
}

TEST(ToolOutputCut, FitsUnchangedOtherwiseCutAtACharacterBoundaryWithANote) {
  auto same = cut_tool_output("hello", 5);
  EXPECT_FALSE(same.truncated);
  EXPECT_EQ(same.text, "hello");
  EXPECT_FALSE(cut_tool_output(std::string(100000, 'x'), 0).truncated);  // 0: never cut
  // "é" is two bytes (C3 A9): a cut after 4 bytes would split the second one.
  auto cut = cut_tool_output("ab\xC3\xA9\xC3\xA9" "cd", 5);
  ASSERT_TRUE(cut.truncated);
  EXPECT_EQ(cut.total, 8u);
  EXPECT_EQ(cut.text.substr(0, 5), "ab\xC3\xA9\n");
  EXPECT_NE(cut.text.find("the first 4 of 8 bytes"), std::string::npos);
  EXPECT_NE(cut.text.find("MAX_TOOL_OUTPUT_BYTES"), std::string::npos);
}

TEST(TurnFsm, ToolOutputOverTheCapIsCutForTheClientTheHistoryAndTheModel) {
  turn_options opts;
  opts.max_tool_output_bytes = 1024;
  turn_fsm f(opts, sandbox_tools());
  f.on_user_message("a");
  f.on_llm_reply(calls_reply({tc("t", "run_command", {{"command", "yes | head -c 100000"}})}));
  f.on_approval("t", true);
  auto r = f.on_tool_result("t", std::string(100000, 'y'), false, 5ms);
  auto out = emits(r, "tool:output");
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(out[0].payload.value("truncated", false));
  EXPECT_EQ(out[0].payload["totalBytes"], 100000);
  const auto shown = out[0].payload["content"].get<std::string>();
  EXPECT_LT(shown.size(), 1200u);
  EXPECT_NE(shown.find("the first 1024 of 100000 bytes"), std::string::npos);
  auto llm = all<call_llm>(r);
  ASSERT_EQ(llm.size(), 1u);
  EXPECT_EQ(llm[0].messages.back().content, shown);  // the model reads what the user saw
  bool in_history = false;
  for (const auto& h : all<append_history>(r))
    in_history = in_history || h.message.content.find("the first 1024 of 100000 bytes") != std::string::npos;
  EXPECT_TRUE(in_history);
  // A short result is not marked.
  f.on_llm_reply(calls_reply({tc("u", "run_command", {{"command", "true"}})}));
  f.on_approval("u", true);
  auto small = emits(f.on_tool_result("u", "ok", false, 1ms), "tool:output");
  ASSERT_EQ(small.size(), 1u);
  EXPECT_FALSE(small[0].payload.contains("truncated"));
}

TEST(TurnFsm, ALimitRefusalCarriesWhenToRetry) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  auto r = f.on_llm_failed(errc::rate_limited, "budget spent", 1500ms);
  auto err = emits(r, "agent:error");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].payload["code"], "RATE_LIMITED");
  EXPECT_EQ(err[0].payload["retryAfterMs"], 1500);
  EXPECT_EQ(terminals(r), 1);
}

TEST(TurnFsm, StaleToolResultIsIgnored) {
  turn_fsm f({}, sandbox_tools());
  EXPECT_TRUE(f.on_tool_result("x", "y", false, 1ms).empty());
  f.on_user_message("a");
  f.on_llm_reply(calls_reply({tc("t", "run_command", {{"command", "x"}})}));
  EXPECT_TRUE(f.on_tool_result("t", "before approval", false, 1ms).empty());
  f.on_approval("t", true);
  EXPECT_TRUE(f.on_tool_result("u", "wrong id", false, 1ms).empty());
  EXPECT_EQ(f.phase(), turn_phase::running_tool);
}

TEST(TurnFsm, CallIdsAreUniqueInTheSession) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  auto r1 = f.on_llm_reply(calls_reply({tc("call_1", "run_command", {{"command", "x"}}), tc("call_1", "run_command", {{"command", "y"}}),
                                        tc("", "run_command", {{"command", "z"}})}));
  const auto calls = all<append_history>(r1)[0].message.tool_calls;
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].id, "call_1");
  EXPECT_NE(calls[1].id, "call_1");
  EXPECT_FALSE(calls[2].id.empty());
  EXPECT_NE(calls[1].id, calls[2].id);
  EXPECT_EQ(emits(r1, "tool:approval_required")[0].payload["callId"], "call_1");
  for (const auto& c : calls) f.on_approval(c.id, false);
  f.on_llm_reply(text_reply("ok"));
  // Next turn: the model reuses "call_1"; a late approval for the old call cannot hit the new one.
  f.on_user_message("b");
  auto r2 = f.on_llm_reply(calls_reply({tc("call_1", "run_command", {{"command", "x"}})}));
  const std::string fresh = emits(r2, "tool:approval_required")[0].payload["callId"];
  EXPECT_NE(fresh, "call_1");
  EXPECT_EQ(std::get<ack>(f.on_approval("call_1", true)[0]).error->code, errc::no_pending_call);
  EXPECT_EQ(all<run_tool>(f.on_approval(fresh, true)).size(), 1u);
}

TEST(TurnFsm, AbortEndsCurrentAndQueuedTurns) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("a");
  f.on_user_message("b");
  f.on_llm_reply(calls_reply({tc("t", "run_command", {{"command", "x"}})}));
  f.on_approval("t", true);
  auto r = f.abort(errc::sandbox_unavailable, "session ended");
  ASSERT_EQ(all<cancel_tool>(r).size(), 1u);
  EXPECT_EQ(all<cancel_tool>(r)[0].call_id, "t");
  EXPECT_EQ(all<end_turn>(r).size(), 2u);
  EXPECT_EQ(terminals(r), 2);
  EXPECT_EQ(f.phase(), turn_phase::idle);
  EXPECT_EQ(f.queued(), 0u);
  EXPECT_TRUE(f.abort(errc::internal, "again").empty());
}

TEST(TurnFsm, HistoryReset) {
  turn_fsm f({}, sandbox_tools(), {chat_message::user("old"), chat_message::assistant("old reply")});
  f.on_user_message("a");
  auto busy = f.on_history_reset();
  ASSERT_EQ(busy.size(), 1u);
  EXPECT_FALSE(std::get<ack>(busy[0]).ok);
  f.on_llm_reply(text_reply("r"));
  auto r = f.on_history_reset();
  EXPECT_EQ(all<clear_history>(r).size(), 1u);
  EXPECT_EQ(emits(r, "system:message").size(), 1u);
  EXPECT_TRUE(f.history().empty());
  auto next = f.on_user_message("fresh");
  EXPECT_EQ(all<call_llm>(next)[0].messages.size(), 1u);
}

TEST(TurnFsm, HistoryIsBoundedAtTurnBoundaries) {
  turn_options o;
  o.max_history_messages = 5;
  turn_fsm f(o, sandbox_tools());
  for (int i = 0; i < 10; ++i) {
    f.on_user_message("m" + std::to_string(i));
    f.on_llm_reply(text_reply("r"));
    EXPECT_LE(f.history().size(), 5u);
    EXPECT_EQ(f.history().front().role, role::user);
  }
  EXPECT_EQ(f.history().back().content, "r");
}

TEST(CheckArguments, SchemaSubset) {
  const json schema = {{"type", "object"},
                       {"properties",
                        {{"s", {{"type", "string"}}},
                         {"i", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}}},
                         {"n", {{"type", "number"}}},
                         {"b", {{"type", "boolean"}}},
                         {"e", {{"type", "string"}, {"enum", {"a", "b"}}}},
                         {"u", {{"type", {"string", "null"}}}}}},
                       {"required", {"s"}},
                       {"additionalProperties", false}};
  EXPECT_FALSE(check_arguments(schema, {{"s", "x"}, {"i", 3}, {"n", 1.5}, {"b", true}, {"e", "a"}, {"u", nullptr}}));
  EXPECT_FALSE(check_arguments(schema, {{"s", "x"}, {"i", 3.0}}));  // integral float is an integer
  EXPECT_EQ(*check_arguments(schema, json::array()), "arguments must be a JSON object, got array");
  EXPECT_EQ(*check_arguments(schema, json::object()), "missing required argument \"s\"");
  EXPECT_EQ(*check_arguments(schema, {{"s", 1}}), "argument \"s\" must be a string, got integer");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"i", 2.5}}), "argument \"i\" must be an integer, got number");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"i", 0}}), "argument \"i\" must be at least 1");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"i", 11}}), "argument \"i\" must be at most 10");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"e", "c"}}), "argument \"e\" must be one of [\"a\",\"b\"]");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"u", 1}}), "argument \"u\" must be a string or null, got integer");
  EXPECT_EQ(*check_arguments(schema, {{"s", "x"}, {"zzz", 1}}), "unknown argument \"zzz\"");
  EXPECT_FALSE(check_arguments(json{{"type", "object"}}, {{"anything", 1}}));  // open schema
}

TEST(ParsePayloads, ApprovalAndMessage) {
  auto ok = parse_approval(json{{"callId", "c1"}, {"approved", true}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->call_id, "c1");
  EXPECT_TRUE(ok->approved);
  for (const json& bad : {json("c1"), json{{"approved", true}}, json{{"callId", 1}, {"approved", true}},
                          json{{"callId", ""}, {"approved", true}}, json{{"callId", "c"}, {"approved", "yes"}},
                          json{{"callId", std::string(500, 'x')}, {"approved", false}}}) {
    auto r = parse_approval(bad);
    ASSERT_FALSE(r) << bad.dump();
    EXPECT_EQ(r.error().code, errc::invalid_payload);
    EXPECT_EQ(r.error().message.rfind("tool:approval: ", 0), 0u);
  }
  EXPECT_EQ(*parse_user_message("hi", 10), "hi");
  EXPECT_EQ(*parse_user_message(json{{"text", "hi"}}, 10), "hi");
  EXPECT_FALSE(parse_user_message("  ", 10));
  EXPECT_FALSE(parse_user_message(json{{"txt", "hi"}}, 10));
  EXPECT_FALSE(parse_user_message(5, 10));
  auto big = parse_user_message(std::string(11, 'x'), 10);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("MAX_MESSAGE_BYTES"), std::string::npos);
}

// ---- streaming and cancellation (issue 16)

namespace {

// The history as the next LLM request would send it must be one every provider accepts: each
// assistant tool call answered by exactly one tool result, right after it.
void expect_whole_history(const std::vector<chat_message>& h) {
  for (std::size_t i = 0; i < h.size(); ++i) {
    if (h[i].role != role::assistant || h[i].tool_calls.empty()) continue;
    std::size_t k = i + 1;
    for (const auto& c : h[i].tool_calls) {
      ASSERT_LT(k, h.size()) << "no result for " << c.id;
      EXPECT_EQ(h[k].role, role::tool);
      EXPECT_EQ(h[k].tool_call_id, c.id);
      ++k;
    }
  }
}

// The model asks for three calls (c2 a long run_command), all approved; c1 has run ("a.txt").
// Leaves `f` running c2.
void run_to_the_second_of_three_calls(turn_fsm& f) {
  f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/"}}), tc("c2", "run_command", {{"command", "sleep 600"}}),
                              tc("c3", "list_files", {{"path", "/tmp"}})}));
  f.on_approval("c1", true);
  f.on_approval("c2", true);
  f.on_approval("c3", true);
  f.on_tool_result("c1", "a.txt", false, 3ms);
}

}  // namespace

TEST(TurnFsmCancel, TurnIdsAreIssuedPerMessageWithThePrefix) {
  turn_options o;
  o.turn_id_prefix = "tAbC";
  turn_fsm f(o, sandbox_tools());
  auto a = f.on_user_message("one");
  auto b = f.on_user_message("two");  // queued
  EXPECT_EQ(all<ack>(a)[0].turn_id, "tAbC-1");
  EXPECT_EQ(all<ack>(b)[0].turn_id, "tAbC-2");
  EXPECT_EQ(f.turn_id(), "tAbC-1");
  auto r = f.on_llm_reply(text_reply("done"));
  EXPECT_EQ(f.turn_id(), "tAbC-2");  // the queued one started
  EXPECT_EQ(emits(r, "agent:thinking")[0].payload["turnId"], "tAbC-2");
}

TEST(TurnFsmCancel, WhileWaitingForTheModelAbortsItAndKeepsTheStreamedText) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("write a poem");
  f.on_llm_delta("Roses are ");
  f.on_llm_delta("red");
  auto r = f.on_cancel(std::nullopt);
  ASSERT_FALSE(r.empty());
  ASSERT_TRUE(std::holds_alternative<ack>(r[0]));
  EXPECT_TRUE(std::get<ack>(r[0]).ok);
  EXPECT_EQ(std::get<ack>(r[0]).turn_id, "turn-1");
  EXPECT_EQ(all<abort_llm>(r).size(), 1u);
  EXPECT_TRUE(all<cancel_tool>(r).empty());
  auto cancelled = emits(r, "agent:cancelled");
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_EQ(cancelled[0].payload, (json{{"turnId", "turn-1"}, {"phase", "waiting_llm"}}));
  EXPECT_TRUE(emits(r, "agent:error").empty());
  EXPECT_TRUE(emits(r, "agent:response").empty());
  ASSERT_EQ(all<end_turn>(r).size(), 1u);
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].message.role, role::assistant);
  EXPECT_EQ(hist[0].message.content, "Roses are red\n\n[stopped by the user]");
  EXPECT_EQ(f.phase(), turn_phase::idle);
  // The model's late answer is stale.
  EXPECT_TRUE(f.on_llm_reply(text_reply("late")).empty());
  // Cancelling again: the turn has ended.
  auto again = f.on_cancel(std::nullopt);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_FALSE(std::get<ack>(again[0]).ok);
  EXPECT_EQ(std::get<ack>(again[0]).error->code, errc::no_active_turn);
  auto by_id = f.on_cancel(std::string_view("turn-1"));
  EXPECT_EQ(std::get<ack>(by_id[0]).error->code, errc::no_active_turn);
  EXPECT_NE(std::get<ack>(by_id[0]).error->message.find("already ended"), std::string::npos);
}

TEST(TurnFsmCancel, NothingRunningAndForeignIdsGetTheirCodes) {
  turn_fsm f({}, sandbox_tools());
  auto idle = f.on_cancel(std::nullopt);
  ASSERT_EQ(idle.size(), 1u);
  EXPECT_EQ(std::get<ack>(idle[0]).error->code, errc::no_active_turn);
  f.on_user_message("hi");
  for (std::string_view foreign : {"turn-2", "turn-99", "tOther-1", "turn-", "turn-1x", "x"}) {
    auto r = f.on_cancel(foreign);
    ASSERT_EQ(r.size(), 1u) << foreign;
    EXPECT_EQ(std::get<ack>(r[0]).error->code, errc::turn_not_found) << foreign;
  }
  EXPECT_EQ(f.phase(), turn_phase::waiting_llm);  // untouched
}

TEST(TurnFsmCancel, AwaitingApprovalAnswersEveryCallAndKeepsHistoryWhole) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("look");
  f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/"}}), tc("c2", "read_file", json::object()),
                              tc("c3", "run_command", {{"command", "ls"}})}));
  f.on_approval("c1", false);  // c2 is invalid (no path): c3 awaits
  ASSERT_EQ(f.pending_call_id(), "c3");
  auto r = f.on_cancel(std::string_view("turn-1"));
  EXPECT_TRUE(std::get<ack>(r[0]).ok);
  EXPECT_TRUE(all<abort_llm>(r).empty());
  EXPECT_TRUE(all<cancel_tool>(r).empty());
  EXPECT_TRUE(all<run_tool>(r).empty());
  EXPECT_EQ(emits(r, "agent:cancelled")[0].payload["phase"], "awaiting_approval");
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 4u);
  EXPECT_EQ(hist[0].message.content, "The user rejected this tool call; it was not run.");
  EXPECT_NE(hist[1].message.content.find("missing required argument"), std::string::npos);
  EXPECT_EQ(hist[2].message.content, cancelled_call_text);
  EXPECT_TRUE(hist[2].message.is_error);
  EXPECT_EQ(hist[3].message.role, role::assistant);
  EXPECT_EQ(hist[3].message.content, cancelled_note);
  expect_whole_history(f.history());
  // A late approval finds nothing.
  EXPECT_EQ(std::get<ack>(f.on_approval("c3", true)[0]).error->code, errc::no_pending_call);
}

TEST(TurnFsmCancel, RunningToolIsCancelledAndEarlierResultsKept) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("do two things");
  run_to_the_second_of_three_calls(f);
  ASSERT_EQ(f.phase(), turn_phase::running_tool);
  auto r = f.on_cancel(std::nullopt);
  auto ct = all<cancel_tool>(r);
  ASSERT_EQ(ct.size(), 1u);
  EXPECT_EQ(ct[0].call_id, "c2");
  EXPECT_EQ(emits(r, "agent:cancelled")[0].payload["phase"], "running_tool");
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 4u);
  EXPECT_EQ(hist[0].message.content, "a.txt");
  EXPECT_FALSE(hist[0].message.is_error);
  EXPECT_EQ(hist[1].message.content, cancelled_running_text);
  EXPECT_TRUE(hist[1].message.is_error);
  EXPECT_EQ(hist[2].message.content, cancelled_call_text);
  expect_whole_history(f.history());
  // The killed tool's late result is stale: no tool:output, no LLM call.
  EXPECT_TRUE(f.on_tool_result("c2", "Terminated", true, 10ms).empty());
  EXPECT_TRUE(f.on_tool_timeout("c2", 10ms).empty());
}

TEST(TurnFsmCancel, QueuedTurnsCanBeDroppedAndTheNextStartsAfterACancel) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("first");
  f.on_user_message("second");
  f.on_user_message("third");
  auto q = f.on_cancel(std::string_view("turn-2"));
  EXPECT_TRUE(std::get<ack>(q[0]).ok);
  EXPECT_EQ(emits(q, "agent:cancelled")[0].payload, (json{{"turnId", "turn-2"}, {"queued", true}}));
  EXPECT_EQ(all<end_turn>(q).size(), 1u);  // its request lease
  EXPECT_TRUE(all<abort_llm>(q).empty());
  EXPECT_EQ(f.queued(), 1u);
  EXPECT_EQ(f.phase(), turn_phase::waiting_llm);
  auto r = f.on_cancel(std::nullopt);  // the running "first"
  EXPECT_EQ(emits(r, "agent:cancelled")[0].payload["turnId"], "turn-1");
  // "third" starts at once, with the whole history before it.
  auto next = all<call_llm>(r);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].messages.back().content, "third");
  EXPECT_EQ(f.turn_id(), "turn-3");
  expect_whole_history(next[0].messages);
}

TEST(TurnFsmCancel, AFailedStreamKeepsTheShownTextMarked) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("hi");
  f.on_llm_delta("Hello wo");
  auto r = f.on_llm_failed(errc::llm_unavailable, "openai: the reply stream ended before [DONE]");
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].message.content, "Hello wo\n\n[interrupted: LLM_UNAVAILABLE]");
  // Without streamed text nothing is added (as before streaming).
  f.on_user_message("again");
  auto r2 = f.on_llm_failed(errc::llm_error, "bad");
  EXPECT_TRUE(all<append_history>(r2).empty());
  // Deltas outside an LLM call are ignored.
  f.on_llm_delta("stray");
  f.on_user_message("third");
  auto r3 = f.on_llm_reply(text_reply("ok"));
  EXPECT_EQ(all<append_history>(r3)[0].message.content, "ok");
}

TEST(TurnFsmCancel, AbortAlsoAbortsTheModelCall) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("hi");
  auto r = f.abort(errc::internal, "session ended");
  EXPECT_EQ(all<abort_llm>(r).size(), 1u);
}

// ---- the turn deadline (TURN_DEADLINE_MS): the clock runs while the turn works

namespace {

std::vector<turn_clock::change> clock_changes(const std::vector<action>& acts) {
  std::vector<turn_clock::change> v;
  for (auto& c : all<turn_clock>(acts)) v.push_back(c.what);
  return v;
}

}  // namespace

TEST(TurnFsmDeadline, TheClockRunsWhileWorkingAndPausesWhileTheUserDecides) {
  using change = turn_clock::change;
  turn_fsm f({}, sandbox_tools());
  EXPECT_EQ(clock_changes(f.on_user_message("look")), std::vector{change::start});
  // Two calls to decide: paused at the first, still paused at the second.
  auto r = f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/"}}), tc("c2", "list_files", {{"path", "/tmp"}})}));
  EXPECT_EQ(clock_changes(r), std::vector{change::pause});
  EXPECT_EQ(clock_changes(f.on_approval("c1", true)), std::vector{change::pause});
  // Every call decided: the round runs on the clock.
  EXPECT_EQ(clock_changes(f.on_approval("c2", false)), std::vector{change::resume});
  ASSERT_EQ(f.phase(), turn_phase::running_tool);
  EXPECT_TRUE(clock_changes(f.on_tool_result("c1", "a", false, 1ms)).empty());  // back to the model, still running
  EXPECT_EQ(clock_changes(f.on_llm_reply(text_reply("done"))), std::vector{change::stop});
  // A queued turn starts its own clock after the previous one stops.
  f.on_user_message("one");
  f.on_user_message("two");
  EXPECT_EQ(clock_changes(f.on_llm_reply(text_reply("1"))), (std::vector{change::stop, change::start}));
  EXPECT_EQ(clock_changes(f.abort(errc::internal, "session ended")), std::vector{change::stop});
}

TEST(TurnFsmDeadline, WhileWaitingForTheModelAbortsItWithTurnTimeoutAndAWholeHistory) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("hi");
  f.on_llm_delta("Hel");
  auto r = f.on_turn_deadline("turn-1", 300000ms);
  EXPECT_EQ(all<abort_llm>(r).size(), 1u);
  EXPECT_TRUE(emits(r, "agent:cancelled").empty());
  auto err = emits(r, "agent:error");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].payload["code"], "TURN_TIMEOUT");
  EXPECT_EQ(err[0].payload["turnId"], "turn-1");
  EXPECT_EQ(err[0].payload["message"],
            "the turn ran past its time limit of 300000 ms (TURN_DEADLINE_MS) while waiting for the model; it was stopped");
  EXPECT_EQ(terminals(r), 1);
  ASSERT_EQ(all<end_turn>(r).size(), 1u);
  EXPECT_FALSE(all<end_turn>(r)[0].ok);
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].message.content, "Hel\n\n" + std::string(deadline_note));
  EXPECT_EQ(f.phase(), turn_phase::idle);
  EXPECT_TRUE(f.on_llm_reply(text_reply("late")).empty());
  // Late timers of an ended turn change nothing.
  EXPECT_TRUE(f.on_turn_deadline("turn-1", 300000ms).empty());
  // The next turn sends a history every provider accepts: user / assistant alternate.
  auto next = all<call_llm>(f.on_user_message("again"));
  ASSERT_EQ(next.size(), 1u);
  ASSERT_EQ(next[0].messages.size(), 3u);
  EXPECT_EQ(next[0].messages[1].role, role::assistant);
  expect_whole_history(next[0].messages);
}

TEST(TurnFsmDeadline, RunningToolIsCancelledEveryCallAnsweredAndTheQueueGoesOn) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("do two things");
  f.on_user_message("then this");  // queued
  run_to_the_second_of_three_calls(f);
  auto r = f.on_turn_deadline("turn-1", 1000ms);
  auto ct = all<cancel_tool>(r);
  ASSERT_EQ(ct.size(), 1u);
  EXPECT_EQ(ct[0].call_id, "c2");
  auto err = emits(r, "agent:error");
  ASSERT_EQ(err.size(), 1u);
  EXPECT_EQ(err[0].payload["code"], "TURN_TIMEOUT");
  EXPECT_NE(err[0].payload["message"].get<std::string>().find("running tool run_command"), std::string::npos);
  auto hist = all<append_history>(r);
  ASSERT_GE(hist.size(), 4u);
  EXPECT_EQ(hist[0].message.content, "a.txt");
  EXPECT_EQ(hist[1].message.content, deadline_running_text);
  EXPECT_TRUE(hist[1].message.is_error);
  EXPECT_EQ(hist[2].message.content, deadline_call_text);
  EXPECT_EQ(hist[3].message.content, deadline_note);
  // The queued message starts at once with its own turn and a fresh clock.
  EXPECT_EQ(f.turn_id(), "turn-2");
  auto next = all<call_llm>(r);
  ASSERT_EQ(next.size(), 1u);
  expect_whole_history(next[0].messages);
  EXPECT_TRUE(f.on_tool_result("c2", "Terminated", true, 10ms).empty());
}

TEST(TurnFsmDeadline, WaitingOnTheUserOrAnotherTurnIsNotStuck) {
  turn_fsm f({}, sandbox_tools());
  EXPECT_TRUE(f.on_turn_deadline("turn-1", 10ms).empty());  // idle
  f.on_user_message("look");
  f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/"}})}));
  ASSERT_EQ(f.phase(), turn_phase::awaiting_approval);
  EXPECT_TRUE(f.on_turn_deadline("turn-1", 10ms).empty());
  EXPECT_EQ(f.phase(), turn_phase::awaiting_approval);
  f.on_approval("c1", true);
  EXPECT_TRUE(f.on_turn_deadline("turn-7", 10ms).empty());  // not this turn
  EXPECT_TRUE(f.on_turn_deadline("", 10ms).empty());
  EXPECT_EQ(f.phase(), turn_phase::running_tool);
}

// ---- the request budget (MAX_HISTORY_TOKENS): whole old turns go, the running turn stays

TEST(TurnFsmBudget, RequestsFitTheBudgetAndStartWithAUserMessage) {
  turn_options o;
  o.max_history_tokens = 100;  // ~400 bytes
  turn_fsm f(o, sandbox_tools());
  const std::string chunk(120, 'x');  // 30 tokens
  for (int i = 0; i < 6; ++i) {
    f.on_user_message(chunk);
    f.on_llm_reply(calls_reply({tc("c" + std::to_string(i), "list_files", {{"path", "/"}})}));
    f.on_approval("c" + std::to_string(i), true);
    auto r = f.on_tool_result("c" + std::to_string(i), chunk, false, 1ms);
    auto llm = all<call_llm>(r);
    ASSERT_EQ(llm.size(), 1u);
    // The running turn (user, call, result) is sent whole; older turns only if they fit.
    const auto& msgs = llm[0].messages;
    EXPECT_EQ(msgs.front().role, role::user) << i;
    expect_whole_history(msgs);
    std::size_t tokens = 0;
    for (const auto& m : msgs) tokens += estimate_tokens(m);
    EXPECT_LE(tokens, 100u) << i;
    f.on_llm_reply(text_reply(chunk));
  }
  // A single turn over the budget is kept whole (cutting into it would orphan its results).
  const std::string huge(1000, 'y');
  f.on_user_message(huge);
  f.on_llm_reply(calls_reply({tc("big", "list_files", {{"path", "/"}})}));
  f.on_approval("big", true);
  auto r = f.on_tool_result("big", huge, false, 1ms);
  const auto msgs = all<call_llm>(r).at(0).messages;
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].content, huge);
  EXPECT_EQ(msgs[2].tool_call_id, "big");
}

TEST(TurnFsmBudget, AResumedHistoryIsTrimmedAtTurnBoundaries) {
  turn_options o;
  o.max_history_tokens = 20;
  std::vector<chat_message> h{chat_message::user(std::string(40, 'a')),
                              chat_message::assistant("", {tc("c1", "list_files", json::object())}),
                              chat_message::tool_result("c1", "list_files", std::string(40, 'b')),
                              chat_message::assistant(std::string(40, 'c')), chat_message::user(std::string(40, 'd')),
                              chat_message::assistant(std::string(40, 'e'))};
  turn_fsm f(o, sandbox_tools(), h);
  ASSERT_EQ(f.history().size(), 2u);
  EXPECT_EQ(f.history()[0].content, std::string(40, 'd'));
  EXPECT_EQ(estimate_tokens(chat_message::user("abcde")), 2u);
}

// ---- the approval's request lease (end_step): held while the step it began works, released
// when the turn waits on the user again or ends; a refused approval releases its own at once.

TEST(TurnFsmSteps, AnApprovedStepEndsWhenTheNextApprovalIsAskedOrTheTurnEnds) {
  turn_fsm f({}, sandbox_tools());
  auto a = f.on_user_message("do things");
  EXPECT_TRUE(all<end_step>(a).empty());  // a message is a turn, not a step
  a = f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/workspace"}})}));
  EXPECT_TRUE(all<end_step>(a).empty());  // no approval began a step yet

  auto b = f.on_approval("c1", true);
  EXPECT_EQ(all<run_tool>(b).size(), 1u);
  EXPECT_TRUE(all<end_step>(b).empty());  // the tool runs under the approval's lease
  b = f.on_tool_result("c1", "a.txt", false, 5ms);
  EXPECT_EQ(all<call_llm>(b).size(), 1u);
  EXPECT_TRUE(all<end_step>(b).empty());  // and so does the model's next answer

  // The model asks again: the step is over before the client is asked.
  auto c = f.on_llm_reply(calls_reply({tc("c2", "read_file", {{"path", "a.txt"}})}));
  ASSERT_EQ(all<end_step>(c).size(), 1u);
  std::size_t step_at = 0, ask_at = 0;
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (std::holds_alternative<end_step>(c[i])) step_at = i;
    if (auto* e = std::get_if<emit>(&c[i]); e && e->event == "tool:approval_required") ask_at = i;
  }
  EXPECT_LT(step_at, ask_at);

  f.on_approval("c2", true);
  f.on_tool_result("c2", "hello", false, 5ms);
  auto d = f.on_llm_reply(text_reply("done"));
  EXPECT_EQ(all<end_turn>(d).size(), 1u);
  EXPECT_EQ(all<end_step>(d).size(), 1u);
}

TEST(TurnFsmSteps, ARefusedApprovalEndsOnlyItsOwnStep) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("do things");
  f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/workspace"}})}));
  auto stray = f.on_approval("nope", true);  // NO_PENDING_CALL while the turn waits on the user
  EXPECT_EQ(all<end_step>(stray).size(), 1u);
  f.on_approval("c1", true);  // runs c1
  stray = f.on_approval("c1", true);  // again, while c1 runs: refused, its own lease goes
  EXPECT_EQ(all<end_step>(stray).size(), 1u);
  auto done = f.on_tool_result("c1", "a.txt", false, 5ms);
  EXPECT_TRUE(all<end_step>(done).empty());  // c1's step still works (the model is asked)
  done = f.on_llm_reply(text_reply("done"));
  EXPECT_EQ(all<end_step>(done).size(), 1u);
}

TEST(TurnFsmSteps, AStepEndsWithItsTurnBeforeTheNextQueuedTurnStarts) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("first");
  f.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/workspace"}})}));
  f.on_approval("c1", true);
  f.on_user_message("second");  // queued behind the running turn
  auto a = f.on_cancel(std::nullopt);  // stops the first turn mid-tool
  EXPECT_EQ(all<cancel_tool>(a).size(), 1u);
  EXPECT_EQ(all<end_step>(a).size(), 1u);
  EXPECT_EQ(all<call_llm>(a).size(), 1u);  // the second turn started in the same step
  std::size_t step_at = 0, llm_at = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::holds_alternative<end_step>(a[i])) step_at = i;
    if (std::holds_alternative<call_llm>(a[i])) llm_at = i;
  }
  EXPECT_LT(step_at, llm_at);
  auto b = f.abort(errc::internal, "session ended");
  EXPECT_TRUE(all<end_step>(b).empty());  // no approval began a step in the second turn
}

// The user left with no recovery pending: nothing runs on for them, every slot goes, and the
// history a resume reads is whole.
TEST(TurnFsmDisconnect, RunningToolIsKilledTheQueueDroppedAndEverySlotReleasedWithoutAnEvent) {
  turn_fsm f({}, sandbox_tools());
  f.on_user_message("do two things");
  f.on_user_message("queued one");
  f.on_user_message("queued two");
  run_to_the_second_of_three_calls(f);
  ASSERT_EQ(f.phase(), turn_phase::running_tool);
  auto r = f.on_disconnect();
  auto ct = all<cancel_tool>(r);
  ASSERT_EQ(ct.size(), 1u);
  EXPECT_EQ(ct[0].call_id, "c2");
  EXPECT_TRUE(all<emit>(r).empty());
  EXPECT_TRUE(all<call_llm>(r).empty()) << "a queued message must not start for a user who is gone";
  EXPECT_EQ(all<end_turn>(r).size(), 3u);  // the running turn and both queued ones
  EXPECT_EQ(all<end_step>(r).size(), 1u);  // the approvals' step
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 4u);
  EXPECT_EQ(hist[0].message.content, "a.txt");
  EXPECT_EQ(hist[1].message.content, disconnect_running_text);
  EXPECT_EQ(hist[2].message.content, disconnect_call_text);
  EXPECT_EQ(hist[3].message.content, disconnect_note);
  expect_whole_history(f.history());
  EXPECT_EQ(f.phase(), turn_phase::idle);
  EXPECT_EQ(f.queued(), 0u);
  EXPECT_TRUE(f.on_tool_result("c2", "Terminated", true, 10ms).empty());
}

TEST(TurnFsmDisconnect, WaitingForTheModelOrTheUserOrNothing) {
  turn_fsm f({}, sandbox_tools());
  EXPECT_TRUE(f.on_disconnect().empty());  // idle: nothing to stop
  f.on_user_message("hello");
  f.on_llm_delta("Half an ans");
  auto r = f.on_disconnect();
  EXPECT_EQ(all<abort_llm>(r).size(), 1u);
  EXPECT_EQ(all<end_turn>(r).size(), 1u);
  auto hist = all<append_history>(r);
  ASSERT_EQ(hist.size(), 1u);
  EXPECT_EQ(hist[0].message.content, "Half an ans\n\n" + std::string(disconnect_note));
  // Awaiting an approval nobody can give now: the call is answered as not run.
  turn_fsm g({}, sandbox_tools());
  g.on_user_message("list");
  g.on_llm_reply(calls_reply({tc("c1", "list_files", {{"path", "/"}})}));
  ASSERT_EQ(g.phase(), turn_phase::awaiting_approval);
  auto a = g.on_disconnect();
  EXPECT_TRUE(all<cancel_tool>(a).empty());
  EXPECT_TRUE(all<emit>(a).empty());
  EXPECT_EQ(all<append_history>(a)[0].message.content, disconnect_call_text);
  expect_whole_history(g.history());
  EXPECT_EQ(g.pending_call_id(), std::nullopt);
}
