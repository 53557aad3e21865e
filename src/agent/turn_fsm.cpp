#include "berth/agent/turn_fsm.hpp"

#include <algorithm>

#include "berth/core/history_budget.hpp"

namespace berth::agent {

using nlohmann::json;
using core::errc;

namespace {

constexpr std::size_t max_call_id_bytes = 128;
const char* const rejected_text = "The user rejected this tool call; it was not run.";

json error_payload(const core::error& e, const std::string* call_id = nullptr) {
  json j = core::error_body(e);
  if (call_id != nullptr) j["callId"] = *call_id;
  return j;
}

std::string shorten(std::string_view s, std::size_t n = 100) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n)) + "...";
}

}  // namespace

std::string_view to_string(turn_phase p) noexcept {
  switch (p) {
    case turn_phase::idle: return "idle";
    case turn_phase::waiting_llm: return "waiting_llm";
    case turn_phase::awaiting_approval: return "awaiting_approval";
    case turn_phase::running_tool: return "running_tool";
  }
  return "unknown";
}

turn_fsm::turn_fsm(turn_options opts, std::vector<tool_spec> tools, std::vector<chat_message> history)
    : opts_(opts), tools_(std::move(tools)), history_(std::move(history)) {
  trim_history();
  for (const auto& m : history_)
    for (const auto& c : m.tool_calls) used_ids_.insert(c.id);
}

std::optional<std::string> turn_fsm::pending_call_id() const {
  if (phase_ != turn_phase::awaiting_approval) return std::nullopt;
  return calls_[presented_].call.id;
}

std::string turn_fsm::next_turn_id() { return opts_.turn_id_prefix + "-" + std::to_string(++turns_); }

json turn_fsm::error_json(const core::error& e, const std::string* call_id) const {
  json j = error_payload(e, call_id);
  if (!turn_id_.empty()) j["turnId"] = turn_id_;
  return j;
}

std::vector<action> turn_fsm::on_user_message(std::string text) {
  std::vector<action> out;
  if (phase_ != turn_phase::idle) {
    if (queue_.size() >= opts_.max_queued_messages) {
      out.push_back(ack{false, core::make_error(errc::too_many_requests,
                                                "too many queued messages (" + std::to_string(queue_.size()) + ")"),
                        std::nullopt});
      return out;
    }
    queue_.push_back({std::move(text), next_turn_id()});
    out.push_back(ack{true, std::nullopt, queue_.back().turn_id});
    return out;
  }
  queued_message m{std::move(text), next_turn_id()};
  out.push_back(ack{true, std::nullopt, m.turn_id});
  start_turn(std::move(m), out);
  return out;
}

void turn_fsm::start_turn(queued_message m, std::vector<action>& out) {
  rounds_ = 0;
  calls_.clear();
  turn_id_ = std::move(m.turn_id);
  push_history(chat_message::user(std::move(m.text)), out);
  out.push_back(emit{"agent:thinking", json{{"turnId", turn_id_}}});
  out.push_back(turn_clock{turn_clock::change::start});
  ask_llm(out);
}

void turn_fsm::ask_llm(std::vector<action>& out) {
  phase_ = turn_phase::waiting_llm;
  partial_.clear();
  out.push_back(call_llm{history_, tools_});
}

void turn_fsm::on_llm_delta(std::string_view text) {
  if (phase_ == turn_phase::waiting_llm) partial_.append(text);
}

std::vector<action> turn_fsm::on_cancel(std::optional<std::string_view> turn_id) {
  std::vector<action> out;
  if (!turn_id || (*turn_id == turn_id_ && phase_ != turn_phase::idle)) {
    if (phase_ == turn_phase::idle) {
      out.push_back(ack{false, core::make_error(errc::no_active_turn, "agent:cancel: no turn is running"), std::nullopt});
      return out;
    }
    out.push_back(ack{true, std::nullopt, turn_id_});
    stop_running(stop_cause::user, out);
    return out;
  }
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (it->turn_id != *turn_id) continue;
    out.push_back(ack{true, std::nullopt, it->turn_id});
    out.push_back(emit{"agent:cancelled", json{{"turnId", it->turn_id}, {"queued", true}}});
    queue_.erase(it);
    out.push_back(end_turn{false});  // its request lease
    return out;
  }
  const std::string id(turn_id->substr(0, max_call_id_bytes));
  // Ids are prefix-n: one of ours with n already issued has ended; anything else is not ours.
  const std::string mine = opts_.turn_id_prefix + "-";
  bool ended = false;
  if (id.size() > mine.size() && id.compare(0, mine.size(), mine) == 0) {
    std::uint64_t n = 0;
    bool digits = id.size() - mine.size() <= 18;
    for (std::size_t i = mine.size(); digits && i < id.size(); ++i) {
      digits = id[i] >= '0' && id[i] <= '9';
      n = n * 10 + static_cast<std::uint64_t>(id[i] - '0');
    }
    ended = digits && n >= 1 && n <= turns_;
  }
  if (ended)
    out.push_back(ack{false, core::make_error(errc::no_active_turn, "agent:cancel: turn \"" + id + "\" has already ended"),
                      std::nullopt});
  else
    out.push_back(ack{false, core::make_error(errc::turn_not_found,
                                              "agent:cancel: no turn \"" + shorten(id, 64) + "\" in this session"),
                      std::nullopt});
  return out;
}

std::vector<action> turn_fsm::on_turn_deadline(std::string_view turn_id, std::chrono::milliseconds limit) {
  std::vector<action> out;
  // Waiting on the user is not being stuck: the clock was paused, so a timer that fires now is late.
  if (phase_ == turn_phase::idle || phase_ == turn_phase::awaiting_approval || turn_id != turn_id_) return out;
  const std::string what =
      phase_ == turn_phase::waiting_llm ? "waiting for the model" : "running tool " + calls_[running_].call.name;
  stop_running(stop_cause::deadline, out,
               "the turn ran past its time limit of " + std::to_string(limit.count()) + " ms (TURN_DEADLINE_MS) while " +
                   what + "; it was stopped");
  return out;
}

std::vector<action> turn_fsm::on_disconnect() {
  std::vector<action> out;
  // The queue first: stopping the running turn would start the next one.
  for (; !queue_.empty(); queue_.pop_front()) out.push_back(end_turn{false});
  if (phase_ != turn_phase::idle) stop_running(stop_cause::disconnect, out);
  return out;
}

// Ends the running turn so the history stays one the providers accept: every tool call of the
// round gets a result, and an assistant message (after what was streamed) says it was stopped.
void turn_fsm::stop_running(stop_cause why, std::vector<action>& out, const std::string& error_message) {
  struct stop_texts {
    std::string_view note, not_run, killed;
  };
  const stop_texts texts = why == stop_cause::user       ? stop_texts{cancelled_note, cancelled_call_text, cancelled_running_text}
                           : why == stop_cause::deadline ? stop_texts{deadline_note, deadline_call_text, deadline_running_text}
                                                         : stop_texts{disconnect_note, disconnect_call_text, disconnect_running_text};
  const turn_phase was = phase_;
  if (was == turn_phase::waiting_llm) out.push_back(abort_llm{});
  if (was == turn_phase::running_tool) out.push_back(cancel_tool{calls_[running_].call.id});
  if (was == turn_phase::awaiting_approval || was == turn_phase::running_tool) {
    for (std::size_t i = 0; i < calls_.size(); ++i) {
      const auto& cs = calls_[i];
      const auto& c = cs.call;
      std::string content;
      if (!cs.needs_approval) content = "Error: " + cs.error;
      else if (cs.approved.has_value() && !*cs.approved) content = rejected_text;
      else if (was == turn_phase::running_tool && i < running_ && *cs.approved) content = cs.result;
      else if (was == turn_phase::running_tool && i == running_) content = texts.killed;
      else content = texts.not_run;
      const bool is_error = !(was == turn_phase::running_tool && i < running_ && cs.needs_approval &&
                              cs.approved.value_or(false) && !cs.result_is_error);
      push_history(chat_message::tool_result(c.id, c.name, std::move(content), is_error), out);
    }
  }
  std::string text = was == turn_phase::waiting_llm ? std::move(partial_) : std::string();
  text += (text.empty() ? "" : "\n\n") + std::string(texts.note);
  push_history(chat_message::assistant(std::move(text)), out);
  partial_.clear();
  if (why == stop_cause::user) out.push_back(emit{"agent:cancelled", json{{"turnId", turn_id_}, {"phase", to_string(was)}}});
  if (why == stop_cause::deadline) out.push_back(emit{"agent:error", error_json(core::make_error(errc::turn_timeout, error_message))});
  end(out, false);
}

std::vector<action> turn_fsm::on_llm_reply(const llm_reply& reply) {
  std::vector<action> out;
  if (phase_ != turn_phase::waiting_llm) return out;  // stale (after abort): nothing to do
  if (reply.tool_calls.empty()) {
    if (reply.text.empty()) {
      out.push_back(emit{"agent:error", error_json(core::make_error(errc::llm_error, "the model returned an empty reply"))});
      end(out, false);
      return out;
    }
    push_history(chat_message::assistant(reply.text), out);
    out.push_back(emit{"agent:response", reply.text});
    end(out, true);
    return out;
  }
  if (rounds_ >= opts_.max_tool_rounds) {
    // The model still wants tools: stop here. Its calls are not kept in history (they would have
    // no results, which providers reject).
    std::string text = reply.text;
    if (!text.empty()) text += "\n\n";
    text += "[stopped: the limit of " + std::to_string(opts_.max_tool_rounds) + " tool rounds per message was reached]";
    push_history(chat_message::assistant(text), out);
    out.push_back(emit{"agent:response", text});
    end(out, true);
    return out;
  }
  ++rounds_;
  calls_.clear();
  std::vector<tool_call> normalised;
  for (const auto& tc : reply.tool_calls) {
    call_state cs;
    cs.call = tc;
    cs.call.id = unique_call_id(tc.id);
    const auto spec = std::find_if(tools_.begin(), tools_.end(), [&](const tool_spec& t) { return t.name == tc.name; });
    if (spec == tools_.end()) {
      cs.needs_approval = false;
      cs.error = "unknown tool \"" + shorten(tc.name, 64) + "\"";
    } else if (auto problem = check_arguments(spec->input_schema, tc.args)) {
      cs.needs_approval = false;
      cs.error = tc.name + ": " + *problem;
    }
    normalised.push_back(cs.call);
    calls_.push_back(std::move(cs));
  }
  push_history(chat_message::assistant(reply.text, std::move(normalised)), out);
  for (auto& cs : calls_) {
    if (cs.needs_approval) continue;
    const bool unknown = cs.error.rfind("unknown tool", 0) == 0;
    const auto code = unknown ? errc::tool_failed : errc::invalid_payload;
    out.push_back(emit{"agent:error", error_json(core::make_error(code, cs.error), &cs.call.id)});
  }
  presented_ = 0;
  present_next(out);
  return out;
}

void turn_fsm::present_next(std::vector<action>& out) {
  std::size_t total = 0;
  for (const auto& c : calls_) total += c.needs_approval ? 1 : 0;
  std::size_t position = 0;
  for (std::size_t i = 0; i < calls_.size(); ++i) {
    if (!calls_[i].needs_approval) continue;
    ++position;
    if (i < presented_ || calls_[i].approved) continue;
    presented_ = i;
    phase_ = turn_phase::awaiting_approval;
    end_step_if_open(out);
    out.push_back(turn_clock{turn_clock::change::pause});
    const auto& c = calls_[i].call;
    out.push_back(emit{"tool:approval_required", json{{"name", c.name},
                                                      {"args", c.args},
                                                      {"callId", c.id},
                                                      {"queuePosition", position},
                                                      {"totalInQueue", total},
                                                      {"turnId", turn_id_}}});
    return;
  }
  running_ = 0;
  if (phase_ == turn_phase::awaiting_approval) out.push_back(turn_clock{turn_clock::change::resume});
  run_next(out);
}

std::vector<action> turn_fsm::on_approval(std::string_view call_id, bool approved) {
  std::vector<action> out;
  if (phase_ != turn_phase::awaiting_approval || calls_[presented_].call.id != call_id) {
    const std::string id(call_id.substr(0, max_call_id_bytes));
    const std::string msg = "no tool call awaiting approval with callId \"" + shorten(id, 64) + "\"";
    out.push_back(ack{false, core::make_error(errc::no_pending_call, msg), std::nullopt});
    out.push_back(emit{"agent:error", error_payload(core::make_error(errc::no_pending_call, msg), &id)});
    out.push_back(end_step{});  // this approval's own step: a step still open goes on
    return out;
  }
  step_open_ = true;
  out.push_back(ack{true, std::nullopt, std::nullopt});
  calls_[presented_].approved = approved;
  ++presented_;
  present_next(out);
  return out;
}

void turn_fsm::run_next(std::vector<action>& out) {
  for (std::size_t i = running_; i < calls_.size(); ++i) {
    if (calls_[i].needs_approval && calls_[i].approved.value_or(false)) {
      running_ = i;
      phase_ = turn_phase::running_tool;
      out.push_back(run_tool{calls_[i].call.id, calls_[i].call.name, calls_[i].call.args});
      return;
    }
  }
  // Every call of the round is decided and done: the results, in the model's order, go back.
  for (const auto& cs : calls_) {
    const auto& c = cs.call;
    if (!cs.needs_approval) {
      push_history(chat_message::tool_result(c.id, c.name, "Error: " + cs.error, true), out);
    } else if (!cs.approved.value_or(false)) {
      push_history(chat_message::tool_result(c.id, c.name, rejected_text, true), out);
    } else {
      push_history(chat_message::tool_result(c.id, c.name, cs.result, cs.result_is_error), out);
    }
  }
  calls_.clear();
  ask_llm(out);
}

std::vector<action> turn_fsm::on_tool_result(std::string_view call_id, std::string content, bool is_error,
                                             std::chrono::milliseconds duration) {
  std::vector<action> out;
  if (phase_ != turn_phase::running_tool || calls_[running_].call.id != call_id) return out;  // stale
  finish_tool(std::move(content), is_error, duration, out);
  return out;
}

std::vector<action> turn_fsm::on_tool_timeout(std::string_view call_id, std::chrono::milliseconds after) {
  std::vector<action> out;
  if (phase_ != turn_phase::running_tool || calls_[running_].call.id != call_id) return out;
  const auto& c = calls_[running_].call;
  const std::string msg = "tool " + c.name + " timed out after " + std::to_string(after.count()) + " ms";
  out.push_back(emit{"agent:error", error_json(core::make_error(errc::tool_timeout, msg), &c.id)});
  finish_tool(msg, true, after, out);
  return out;
}

cut_output cut_tool_output(std::string text, std::size_t max_bytes) {
  cut_output out{std::move(text), false, 0};
  out.total = out.text.size();
  if (max_bytes == 0 || out.total <= max_bytes) return out;
  std::size_t keep = max_bytes;
  // Back to the first byte of a character, so the kept part is valid UTF-8 when the whole was.
  while (keep > 0 && (static_cast<unsigned char>(out.text[keep]) & 0xC0) == 0x80) --keep;
  out.text.resize(keep);
  out.text += "\n[output cut: the first " + std::to_string(keep) + " of " + std::to_string(out.total) +
              " bytes are shown (MAX_TOOL_OUTPUT_BYTES)]";
  out.truncated = true;
  return out;
}

void turn_fsm::finish_tool(std::string content, bool is_error, std::chrono::milliseconds duration,
                           std::vector<action>& out) {
  const auto& c = calls_[running_].call;
  auto cut = cut_tool_output(std::move(content), opts_.max_tool_output_bytes);
  json payload{{"callId", c.id},
               {"name", c.name},
               {"content", cut.text},
               {"isError", is_error},
               {"durationMs", duration.count()},
               {"turnId", turn_id_}};
  if (cut.truncated) {
    payload["truncated"] = true;
    payload["totalBytes"] = cut.total;
  }
  out.push_back(emit{"tool:output", std::move(payload)});
  calls_[running_].result = std::move(cut.text);
  calls_[running_].result_is_error = is_error;
  ++running_;
  run_next(out);
}

std::vector<action> turn_fsm::on_llm_failed(errc code, std::string message,
                                            std::optional<std::chrono::milliseconds> retry_after) {
  std::vector<action> out;
  if (phase_ != turn_phase::waiting_llm) return out;
  // Text the user already saw stays in the history, marked, so the next request reads what
  // happened (and the conversation still alternates user / assistant).
  if (!partial_.empty())
    push_history(chat_message::assistant(std::move(partial_) + "\n\n[interrupted: " + std::string(core::to_string(code)) + "]"),
                 out);
  partial_.clear();
  out.push_back(emit{"agent:error", error_json(core::error{code, std::move(message), retry_after})});
  end(out, false);
  return out;
}

std::vector<action> turn_fsm::on_history_reset() {
  std::vector<action> out;
  if (phase_ != turn_phase::idle) {
    out.push_back(ack{false, core::make_error(errc::invalid_payload, "history:reset: a turn is in progress"), std::nullopt});
    return out;
  }
  history_.clear();
  out.push_back(clear_history{});
  out.push_back(emit{"system:message", "Conversation history cleared."});
  out.push_back(ack{true, std::nullopt, std::nullopt});
  return out;
}

std::vector<action> turn_fsm::abort(errc code, std::string message) {
  std::vector<action> out;
  if (phase_ == turn_phase::running_tool) out.push_back(cancel_tool{calls_[running_].call.id});
  if (phase_ == turn_phase::waiting_llm) out.push_back(abort_llm{});
  if (phase_ != turn_phase::idle) {
    out.push_back(turn_clock{turn_clock::change::stop});
    out.push_back(emit{"agent:error", error_json(core::make_error(code, message))});
    phase_ = turn_phase::idle;
    calls_.clear();
    partial_.clear();
    turn_id_.clear();
    out.push_back(end_turn{false});
    end_step_if_open(out);
  }
  while (!queue_.empty()) {
    json j = error_payload(core::make_error(code, message));
    j["turnId"] = queue_.front().turn_id;
    queue_.pop_front();
    out.push_back(emit{"agent:error", std::move(j)});
    out.push_back(end_turn{false});
  }
  return out;
}

void turn_fsm::end(std::vector<action>& out, bool ok) {
  phase_ = turn_phase::idle;
  out.push_back(turn_clock{turn_clock::change::stop});
  calls_.clear();
  partial_.clear();
  turn_id_.clear();
  out.push_back(end_turn{ok});
  end_step_if_open(out);
  if (!queue_.empty()) {
    auto next = std::move(queue_.front());
    queue_.pop_front();
    start_turn(std::move(next), out);
  }
}

void turn_fsm::end_step_if_open(std::vector<action>& out) {
  if (!std::exchange(step_open_, false)) return;
  out.push_back(end_step{});
}

void turn_fsm::push_history(chat_message m, std::vector<action>& out) {
  history_.push_back(m);
  out.push_back(append_history{std::move(m)});
  trim_history();
}

void turn_fsm::trim_history() {
  if (opts_.max_history_tokens > 0) {
    std::vector<core::budget_item> items;
    items.reserve(history_.size());
    for (const auto& h : history_) items.push_back({estimate_tokens(h), h.role == role::user});
    // Never into the running turn: its start is the newest user message, which turns_to_drop keeps.
    if (auto drop = core::turns_to_drop(items, opts_.max_history_tokens); drop > 0)
      history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  if (history_.size() <= opts_.max_history_messages) return;
  // Drop whole old turns: cut at the first user message that leaves at most the maximum, so a
  // tool call is never separated from its result.
  const std::size_t min_cut = history_.size() - opts_.max_history_messages;
  for (std::size_t i = min_cut; i < history_.size(); ++i) {
    if (history_[i].role == role::user) {
      if (i > 0) history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(i));
      return;
    }
  }
}

std::string turn_fsm::unique_call_id(const std::string& proposed) {
  // Provider ids are kept when usable; otherwise (empty, odd bytes, reused in this session: some
  // models restart at "call_1" every turn) a fresh one is made, so a late approval can never hit a
  // newer call.
  auto usable = [&](const std::string& s) {
    return !s.empty() && s.size() <= max_call_id_bytes &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x21 && c <= 0x7e; }) && used_ids_.count(s) == 0;
  };
  std::string id = proposed;
  while (!usable(id)) id = "call_" + std::to_string(++id_seq_);
  used_ids_.insert(id);
  return id;
}

std::size_t estimate_tokens(const chat_message& m) {
  std::size_t bytes = m.content.size() + m.name.size() + m.tool_call_id.size();
  for (const auto& c : m.tool_calls) bytes += c.id.size() + c.name.size() + c.args.dump().size();
  return (bytes + 3) / 4;
}

// ---- argument checking ----

namespace {

bool type_matches(const json& v, std::string_view type) {
  if (type == "string") return v.is_string();
  if (type == "integer")
    return v.is_number_integer() || (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<long long>(v.get<double>())));
  if (type == "number") return v.is_number();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return true;  // unknown type keyword: do not block
}

std::string json_type(const json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

}  // namespace

std::optional<std::string> check_arguments(const json& schema, const json& args) {
  if (!args.is_object()) return "arguments must be a JSON object, got " + json_type(args);
  if (!schema.is_object()) return std::nullopt;
  static const json empty = json::object();
  const json& props = schema.contains("properties") && schema["properties"].is_object() ? schema["properties"] : empty;
  if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
    for (const auto& r : *req)
      if (r.is_string() && !args.contains(r.get<std::string>()))
        return "missing required argument \"" + r.get<std::string>() + "\"";
  }
  const bool closed = schema.contains("additionalProperties") && schema["additionalProperties"] == false;
  for (auto it = args.begin(); it != args.end(); ++it) {
    auto p = props.find(it.key());
    if (p == props.end()) {
      if (closed) return "unknown argument \"" + shorten(it.key(), 64) + "\"";
      continue;
    }
    if (!p->is_object()) continue;
    const std::string name = "argument \"" + it.key() + "\"";
    if (auto t = p->find("type"); t != p->end()) {
      bool ok = false;
      std::string wanted;
      if (t->is_string()) {
        ok = type_matches(*it, t->get<std::string>());
        wanted = t->get<std::string>();
      } else if (t->is_array()) {
        for (const auto& alt : *t)
          if (alt.is_string()) {
            ok = ok || type_matches(*it, alt.get<std::string>());
            wanted += (wanted.empty() ? "" : " or ") + alt.get<std::string>();
          }
      } else {
        ok = true;
      }
      if (!ok) return name + " must be " + (wanted == "integer" || wanted == "array" || wanted == "object" ? "an " : "a ") + wanted + ", got " + json_type(*it);
    }
    if (auto e = p->find("enum"); e != p->end() && e->is_array()) {
      if (std::find(e->begin(), e->end(), *it) == e->end()) return name + " must be one of " + shorten(e->dump(), 200);
    }
    if (it->is_number()) {
      const double v = it->get<double>();
      if (auto mn = p->find("minimum"); mn != p->end() && mn->is_number() && v < mn->get<double>())
        return name + " must be at least " + mn->dump();
      if (auto mx = p->find("maximum"); mx != p->end() && mx->is_number() && v > mx->get<double>())
        return name + " must be at most " + mx->dump();
    }
  }
  return std::nullopt;
}

core::result<approval> parse_approval(const json& payload) {
  auto bad = [](std::string m) { return core::make_error(errc::invalid_payload, "tool:approval: " + std::move(m)); };
  if (!payload.is_object()) return bad(std::string("expected an object {callId, approved}, got ") + payload.type_name());
  auto id = payload.find("callId");
  if (id == payload.end() || !id->is_string()) return bad("callId must be a string");
  const auto& s = id->get_ref<const std::string&>();
  if (s.empty() || s.size() > max_call_id_bytes) return bad("callId must be 1-" + std::to_string(max_call_id_bytes) + " bytes");
  auto ap = payload.find("approved");
  if (ap == payload.end() || !ap->is_boolean()) return bad("approved must be a boolean");
  return approval{s, ap->get<bool>()};
}

core::result<std::string> parse_user_message(const json& payload, std::size_t max_bytes) {
  const json* text = &payload;
  if (payload.is_object()) {
    auto t = payload.find("text");
    if (t == payload.end()) return core::make_error(errc::invalid_payload, "message: expected a string or {text}");
    text = &*t;
  }
  if (!text->is_string())
    return core::make_error(errc::invalid_payload, std::string("message: text must be a string, got ") + text->type_name());
  const auto& s = text->get_ref<const std::string&>();
  if (s.find_first_not_of(" \t\r\n") == std::string::npos) return core::make_error(errc::invalid_payload, "message: text is empty");
  if (s.size() > max_bytes)
    return core::make_error(errc::invalid_payload, "message: " + std::to_string(s.size()) + " bytes exceeds MAX_MESSAGE_BYTES (" +
                                                       std::to_string(max_bytes) + ")");
  return s;
}

}  // namespace berth::agent
