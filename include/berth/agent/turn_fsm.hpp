#pragma once
// The agent turn loop of PROTOCOL.md as a sans-I/O state machine: events in (a user message, an
// LLM reply or failure, an approval, a tool result or timeout), actions out (emit a client event,
// call the LLM, run a tool, append to history, ack, end the turn). The shell (session) performs
// the actions and feeds the outcomes back. Rules enforced here:
//  - one turn at a time; messages arriving meanwhile queue (bounded) and start in order;
//  - tool calls are presented one at a time (queuePosition k of totalInQueue, 1-based);
//  - approved calls run (one after another, in the model's order) once every call is decided;
//    results (and rejections) go back to the LLM; at most max_tool_rounds rounds;
//  - every turn ends with agent:response or agent:error, then end_turn;
//  - an approval for a callId that is not the one awaiting a decision (repeated, unknown, stale,
//    not yet presented) gets NO_PENDING_CALL and runs nothing;
//  - every turn has a turnId (turn_id_prefix + "-" + n), given in the message's ack and in the
//    turn's events; agent:cancel ends the running turn (abort_llm / cancel_tool, history made
//    whole: every tool call gets a result and an assistant message says the user stopped it,
//    after any text already streamed; agent:cancelled; end_turn) or drops a queued one. Nothing
//    to cancel: NO_ACTIVE_TURN; an id this session never issued: TURN_NOT_FOUND.
//  - the turn deadline (TURN_DEADLINE_MS) counts the time a turn works, not the time it waits on
//    the user: the machine says when the clock runs (turn_clock: from the turn's start, paused
//    while a tool call awaits approval, resumed when the round runs on, stopped at its end); the
//    shell times it and feeds on_turn_deadline back. Past it the turn stops as a cancel does
//    (abort_llm / cancel_tool, history made whole) but ends with agent:error TURN_TIMEOUT.
//  - the user leaving (on_disconnect) stops the running turn the same way, with nothing emitted,
//    and drops the queued messages: a tool never runs on for a user who is gone, and every
//    limiter slot the session held goes with its end_turn / end_step.
// Lifetime: one per session. Thread-safety: none (drive it from the session's strand).
#include <chrono>
#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "berth/agent/types.hpp"
#include "berth/core/errors.hpp"

namespace berth::agent {

// ---- actions ----
struct emit {  // a Socket.IO event to the session's client(s)
  std::string event;
  nlohmann::json payload;  // null for events without payload (agent:thinking)
};
struct call_llm {
  std::vector<chat_message> messages;  // the whole conversation (history + this turn)
  std::vector<tool_spec> tools;
};
struct run_tool {
  std::string call_id;
  std::string name;
  nlohmann::json args;
};
struct cancel_tool {  // stop a running tool (MCP cancellation: the sandbox kills its process group)
  std::string call_id;
};
struct abort_llm {};  // stop the LLM request in flight; whatever it still returns is stale
struct append_history {  // persist (e.g. to Redis) in this order
  chat_message message;
};
struct clear_history {};
struct ack {  // the Socket.IO ack of the client event that caused this step
  bool ok = true;
  std::optional<core::error> error;
  std::optional<std::string> turn_id;  // a message's (or a cancelled) turn: sent as turnId
};
// The turn-deadline clock (see above). start: a new turn, nothing used yet; pause: the turn waits
// on the user; resume: it works again; stop: it is over. Pausing or resuming twice changes nothing.
struct turn_clock {
  enum class change { start, pause, resume, stop };
  change what = change::start;
};
struct end_turn {  // the turn of one user message is over (release its request lease)
  bool ok = true;
};
// The step a tool:approval began is over: the turn waits on the user again (the next approval),
// or it ended, or the approval was refused. The approval's request lease is released; until
// then it counts against MAX_REQUESTS_PER_USER, as the tool and the LLM call it started run.
struct end_step {};
using action = std::variant<emit, call_llm, run_tool, cancel_tool, abort_llm, append_history, clear_history, ack,
                            end_turn, end_step, turn_clock>;

struct turn_options {
  unsigned max_tool_rounds = 8;           // MAX_TOOL_ROUNDS
  std::size_t max_queued_messages = 16;   // beyond: TOO_MANY_REQUESTS
  std::size_t max_history_messages = 400; // older turns are dropped from the in-memory history
  // MAX_HISTORY_TOKENS: what each LLM request sends fits it (estimate_tokens), whole old turns
  // dropped (core::turns_to_drop); the running turn is kept whole. 0: no token bound.
  std::size_t max_history_tokens = 0;
  // MAX_TOOL_OUTPUT_BYTES: a tool result longer than this is cut (at a UTF-8 boundary) before it
  // reaches the history, the LLM or the client, with a note saying so. 0: never cut.
  std::size_t max_tool_output_bytes = 0;
  std::string turn_id_prefix = "turn";    // the shell gives a random one per session
};

// A tool result cut to `max_bytes` (whole UTF-8 characters), with the note the model and the user
// read; `total` is the size before. Unchanged when it fits or max_bytes is 0.
struct cut_output {
  std::string text;
  bool truncated = false;
  std::size_t total = 0;
};
cut_output cut_tool_output(std::string text, std::size_t max_bytes);

// Texts the history keeps for a stopped turn (the provider reads them in the next request).
inline constexpr std::string_view cancelled_note = "[stopped by the user]";
inline constexpr std::string_view cancelled_call_text = "The user stopped the turn; this tool call was not run.";
inline constexpr std::string_view cancelled_running_text =
    "The user stopped the turn while this tool call was running; it was killed.";
// The same for a turn stopped by its deadline.
inline constexpr std::string_view deadline_note = "[stopped: the turn ran past its time limit]";
inline constexpr std::string_view deadline_call_text = "The turn ran past its time limit; this tool call was not run.";
inline constexpr std::string_view deadline_running_text =
    "The turn ran past its time limit while this tool call was running; it was killed.";
// The same for a turn stopped because the user disconnected.
inline constexpr std::string_view disconnect_note = "[stopped: the user disconnected]";
inline constexpr std::string_view disconnect_call_text = "The user disconnected; this tool call was not run.";
inline constexpr std::string_view disconnect_running_text =
    "The user disconnected while this tool call was running; it was killed.";

enum class turn_phase { idle, waiting_llm, awaiting_approval, running_tool };
std::string_view to_string(turn_phase p) noexcept;

class turn_fsm {
 public:
  turn_fsm(turn_options opts, std::vector<tool_spec> tools, std::vector<chat_message> history = {});

  std::vector<action> on_user_message(std::string text);
  std::vector<action> on_llm_reply(const llm_reply& reply);
  // retry_after: when the user may try again, where that is known (a limit, not a failure).
  std::vector<action> on_llm_failed(core::errc code, std::string message,
                                    std::optional<std::chrono::milliseconds> retry_after = std::nullopt);
  std::vector<action> on_approval(std::string_view call_id, bool approved);
  std::vector<action> on_tool_result(std::string_view call_id, std::string content, bool is_error,
                                     std::chrono::milliseconds duration);
  std::vector<action> on_tool_timeout(std::string_view call_id, std::chrono::milliseconds after);
  std::vector<action> on_history_reset();
  // Text the model streamed so far in this LLM call (kept so a cancel can record it).
  void on_llm_delta(std::string_view text);
  // agent:cancel {turnId?}: see the rules above. Without an id, the running turn.
  std::vector<action> on_cancel(std::optional<std::string_view> turn_id);
  // The turn `turn_id` used up its deadline (`limit`, for the message). Ignored when that turn is
  // over or waits on the user (a late timer): the shell's clock may lag the machine by one step.
  std::vector<action> on_turn_deadline(std::string_view turn_id, std::chrono::milliseconds limit);
  // The user is gone and nobody will see this turn (the socket closed with no recovery pending):
  // queued messages are dropped (end_turn each), the running turn stops as a cancel does, history
  // made whole, but with no event.
  std::vector<action> on_disconnect();
  // Ends the current turn with agent:error{code} and drops every queued message (each gets its
  // end_turn), e.g. on session:end.
  std::vector<action> abort(core::errc code, std::string message);

  void set_tools(std::vector<tool_spec> tools) { tools_ = std::move(tools); }
  turn_phase phase() const noexcept { return phase_; }
  std::size_t queued() const noexcept { return queue_.size(); }
  const std::vector<chat_message>& history() const noexcept { return history_; }
  // The call awaiting a decision, if any.
  std::optional<std::string> pending_call_id() const;
  // The running turn's id ("" when idle).
  const std::string& turn_id() const noexcept { return turn_id_; }

 private:
  struct call_state {
    tool_call call;
    bool needs_approval = true;  // false: invalid, answered with an error without asking
    std::optional<bool> approved;
    std::string error;  // invalid calls: why
    std::string result;  // executed calls: the tool's output
    bool result_is_error = false;
  };

  struct queued_message {
    std::string text;
    std::string turn_id;
  };
  void start_turn(queued_message m, std::vector<action>& out);
  enum class stop_cause { user, deadline, disconnect };
  void stop_running(stop_cause why, std::vector<action>& out, const std::string& error_message = {});
  std::string next_turn_id();
  nlohmann::json error_json(const core::error& e, const std::string* call_id = nullptr) const;
  void ask_llm(std::vector<action>& out);
  void present_next(std::vector<action>& out);
  void run_next(std::vector<action>& out);
  void finish_tool(std::string content, bool is_error, std::chrono::milliseconds duration,
                   std::vector<action>& out);
  void end(std::vector<action>& out, bool ok);
  void end_step_if_open(std::vector<action>& out);
  void push_history(chat_message m, std::vector<action>& out);
  void trim_history();  // to max_history_tokens, then max_history_messages: whole old turns
  std::string unique_call_id(const std::string& proposed);

  turn_options opts_;
  std::vector<tool_spec> tools_;
  std::vector<chat_message> history_;
  std::deque<queued_message> queue_;
  std::string turn_id_;        // the running turn's
  std::uint64_t turns_ = 0;    // ids issued
  std::string partial_;        // text streamed in the current LLM call
  turn_phase phase_ = turn_phase::idle;
  unsigned rounds_ = 0;
  std::vector<call_state> calls_;  // this round
  std::size_t presented_ = 0;      // index into calls_ of the call awaiting approval
  std::size_t running_ = 0;        // index into calls_ of the running call
  std::set<std::string> used_ids_;
  std::uint64_t id_seq_ = 0;
  bool step_open_ = false;  // an approval began a step that has not ended (end_step)
};

// The token estimate of one message for the request budget: ceil(bytes / 4) of its text, tool
// call names, ids and arguments (the stored history uses the same ratio on its JSON).
std::size_t estimate_tokens(const chat_message& m);

// JSON Schema subset used to check tool arguments before asking the user: type object,
// properties with primitive types (string, integer, number, boolean, object, array, null),
// required, additionalProperties:false, enum, minimum/maximum. Returns the first problem.
std::optional<std::string> check_arguments(const nlohmann::json& schema, const nlohmann::json& args);

// Client payload parsing (INVALID_PAYLOAD with a precise message).
struct approval {
  std::string call_id;
  bool approved = false;
};
core::result<approval> parse_approval(const nlohmann::json& payload);
// `message` payload: a string or {text}; non-empty, at most max_bytes.
core::result<std::string> parse_user_message(const nlohmann::json& payload, std::size_t max_bytes);

}  // namespace berth::agent
