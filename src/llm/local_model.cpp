#include "berth/llm/local_model.hpp"
#include "berth/core/json.hpp"

#include <algorithm>
#include <cctype>
#include <optional>

#include "berth/llm/codec.hpp"

namespace berth::llm {
namespace {
using nlohmann::json;

constexpr std::size_t max_summary_chars = 8000;  // per tool result, keeps answers bounded

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool starts_with_word(std::string_view lowered, std::string_view word) {
  return lowered.substr(0, word.size()) == word &&
         (lowered.size() == word.size() || !std::isalnum(static_cast<unsigned char>(lowered[word.size()])));
}

// Removes politeness and trailing punctuation so "Please, list all files in /workspace!" parses.
std::string_view strip_polite(std::string_view s) {
  s = trim(s);
  for (bool changed = true; changed;) {
    changed = false;
    const std::string l = lower(s);
    for (std::string_view p : {"please", "can you", "could you", "would you", "kindly", "hey", "ok", "now"}) {
      if (starts_with_word(l, p)) {
        s = trim(s.substr(p.size()));
        while (!s.empty() && (s.front() == ',' || s.front() == ':')) s = trim(s.substr(1));
        changed = true;
        break;
      }
    }
  }
  const std::string l = lower(s);
  if (l.size() >= 6 && l.substr(l.size() - 6) == "please") s = trim(s.substr(0, s.size() - 6));
  while (!s.empty() && (s.back() == '?' || s.back() == '!' || s.back() == ',')) s = trim(s.substr(0, s.size() - 1));
  return s;
}

std::string unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2) {
    const char a = s.front(), b = s.back();
    if ((a == '"' && b == '"') || (a == '\'' && b == '\'') || (a == '`' && b == '`')) s = s.substr(1, s.size() - 2);
  }
  return std::string(s);
}

// A path as the user wrote it, normalised: quotes and sentence punctuation removed, relative
// paths placed under /workspace.
std::string clean_path(std::string_view raw) {
  std::string_view s = trim(raw);
  while (!s.empty() && (s.back() == '.' || s.back() == ',' || s.back() == ';' || s.back() == ':') && s.size() > 1 &&
         s != "..")
    s.remove_suffix(1);
  std::string p = unquote(s);
  if (p.empty() || p == "." || p == "./") return "/workspace";
  if (p.rfind("./", 0) == 0) p.erase(0, 2);
  if (p.front() != '/') p = "/workspace/" + p;
  return p;
}

// Drops leading filler words before a path: "the file", "file named", "contents of", ...
std::string_view skip_fillers(std::string_view s) {
  for (bool changed = true; changed;) {
    changed = false;
    s = trim(s);
    const std::string l = lower(s);
    for (std::string_view w : {"the", "a", "new", "file", "files", "named", "called", "contents", "content", "of", "in",
                               "at", "all", "directory", "folder", "dir"}) {
      if (starts_with_word(l, w) && s.size() > w.size()) {
        s = s.substr(w.size());
        changed = true;
        break;
      }
    }
  }
  return trim(s);
}

// The offered tool for a base name: exact, or namespaced ("sandbox__read_file", "sandbox.read_file").
const tool_spec* find_tool(const llm_request& req, std::string_view base) {
  for (const auto& t : req.tools)
    if (t.name == base) return &t;
  for (const auto& t : req.tools)
    if (t.name.size() > base.size() && t.name.compare(t.name.size() - base.size(), base.size(), base) == 0 &&
        !std::isalnum(static_cast<unsigned char>(t.name[t.name.size() - base.size() - 1])))
      return &t;
  return nullptr;
}

std::string base_name(std::string_view tool) {
  for (std::string_view b : {"list_files", "read_file", "write_file", "run_command"})
    if (tool.size() >= b.size() && tool.substr(tool.size() - b.size()) == b) return std::string(b);
  return std::string(tool);
}

bool schema_has(const tool_spec& t, std::string_view prop) {
  return t.input_schema.is_object() && t.input_schema.contains("properties") &&
         t.input_schema["properties"].is_object() && t.input_schema["properties"].contains(prop);
}

struct intent {
  std::string tool;  // base name
  json args;
  std::string say;
};

std::optional<intent> parse_run(std::string_view s, const std::string& l) {
  const bool verb = starts_with_word(l, "run") || starts_with_word(l, "execute") || starts_with_word(l, "exec");
  if (auto a = s.find('`'); a != std::string_view::npos && (verb || l.find(" run ") != std::string::npos)) {
    // "run `cmd`" or "run ```cmd```"
    std::size_t ticks = 0;
    while (a + ticks < s.size() && s[a + ticks] == '`') ++ticks;
    auto b = s.find(std::string(ticks, '`'), a + ticks);
    if (b != std::string_view::npos) {
      std::string cmd(trim(s.substr(a + ticks, b - a - ticks)));
      if (!cmd.empty()) return intent{"run_command", {{"command", cmd}}, "I'll run `" + cmd + "` in your sandbox."};
    }
  }
  if (!verb) {
    if (!s.empty() && s.front() == '$') {
      std::string cmd(trim(s.substr(1)));
      if (!cmd.empty()) return intent{"run_command", {{"command", cmd}}, "I'll run `" + cmd + "` in your sandbox."};
    }
    return std::nullopt;
  }
  std::string_view rest = trim(s.substr(l.find_first_of(" :") == std::string::npos ? s.size() : l.find_first_of(" :")));
  if (!rest.empty() && rest.front() == ':') rest = trim(rest.substr(1));
  const std::string lr = lower(rest);
  for (std::string_view w : {"the command", "command"})
    if (starts_with_word(lr, w)) {
      rest = trim(rest.substr(w.size()));
      if (!rest.empty() && rest.front() == ':') rest = trim(rest.substr(1));
      break;
    }
  std::string cmd = unquote(rest);
  if (cmd.empty()) return std::nullopt;
  return intent{"run_command", {{"command", cmd}}, "I'll run `" + cmd + "` in your sandbox."};
}

std::optional<intent> parse_write(std::string_view s, const std::string& l) {
  auto make = [](std::string path, std::string content) {
    return intent{"write_file", {{"path", path}, {"content", content}}, "I'll write " + path + "."};
  };
  for (std::string_view verb : {"write", "save", "put", "append"}) {
    if (!starts_with_word(l, verb) || verb == "append") continue;
    // "write <content> to <path>": the last " to " (or " into ") splits content from path.
    std::size_t cut = std::string::npos, sep = 0;
    for (std::string_view k : {" to ", " into ", " in "}) {
      auto p = l.rfind(k);
      if (p != std::string::npos && p > verb.size() && (cut == std::string::npos || p > cut)) cut = p, sep = k.size();
    }
    if (cut == std::string::npos) return std::nullopt;
    std::string content = unquote(s.substr(verb.size(), cut - verb.size()));
    std::string_view path = skip_fillers(s.substr(cut + sep));
    if (path.empty()) return std::nullopt;
    return make(clean_path(path), content);
  }
  if (starts_with_word(l, "create") || starts_with_word(l, "make")) {
    // "create <path> with <content>" / "create a file X containing Y"
    std::size_t cut = std::string::npos, sep = 0;
    for (std::string_view k : {" with content ", " with contents ", " with text ", " with ", " containing "}) {
      auto p = l.find(k);
      if (p != std::string::npos && (cut == std::string::npos || p < cut)) cut = p, sep = k.size();
    }
    const std::size_t verb = starts_with_word(l, "create") ? 6 : 4;
    std::string_view path = skip_fillers(s.substr(verb, cut == std::string::npos ? std::string_view::npos : cut - verb));
    if (path.empty()) return std::nullopt;
    std::string content = cut == std::string::npos ? "" : unquote(s.substr(cut + sep));
    return make(clean_path(path), content);
  }
  return std::nullopt;
}

std::optional<intent> parse_list(std::string_view s, const std::string& l) {
  bool listing = starts_with_word(l, "list") || starts_with_word(l, "ls") || l.find("what files") != std::string::npos ||
                 l.find("which files") != std::string::npos || starts_with_word(l, "show files") ||
                 l.find("show me the files") != std::string::npos || l.find("show me files") != std::string::npos ||
                 l.find("show the files") != std::string::npos;
  if (!listing) return std::nullopt;
  std::string path = "/workspace";
  // The path is the first word that looks like one, else whatever follows " in ".
  std::size_t i = 0;
  bool found = false;
  while (i < s.size() && !found) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    std::size_t j = i;
    while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
    std::string_view w = s.substr(i, j - i);
    std::string_view u = w;
    while (!u.empty() && (u.front() == '"' || u.front() == '\'' || u.front() == '`')) u.remove_prefix(1);
    if (!u.empty() && (u.front() == '/' || u.substr(0, 2) == "./" || u.find('/') != std::string_view::npos)) {
      path = clean_path(w);
      found = true;
    }
    i = j;
  }
  if (!found) {
    if (auto p = l.rfind(" in "); p != std::string::npos) {
      std::string_view rest = skip_fillers(s.substr(p + 4));
      const std::string lr = lower(rest);
      if (!rest.empty() && lr != "workspace" && lr != "the workspace" && lr != "my workspace" && lr != "sandbox" &&
          rest.find(' ') == std::string_view::npos)
        path = clean_path(rest);
    }
  }
  json args{{"path", path}};
  if (l.find("recursive") != std::string::npos || l.find("subdirector") != std::string::npos) args["recursive"] = true;
  return intent{"list_files", std::move(args), "I'll list the files in " + path + "."};
}

std::optional<intent> parse_read(std::string_view s, const std::string& l) {
  for (std::string_view verb : {"show me", "read", "show", "cat", "open", "display", "print", "view", "what's in",
                                "what is in", "get"}) {
    if (!starts_with_word(l, verb)) continue;
    std::string_view path = skip_fillers(s.substr(verb.size()));
    // A bare path is one word ("read this and that" is not a request); quoted paths may hold spaces.
    const bool quoted = !path.empty() && (path.front() == '"' || path.front() == '\'' || path.front() == '`');
    if (path.empty() || (!quoted && path.find(' ') != std::string_view::npos)) return std::nullopt;
    std::string p = clean_path(path);
    return intent{"read_file", {{"path", p}}, "I'll read " + p + "."};
  }
  return std::nullopt;
}

// "call <tool> with {json}" / "use <tool> {json}": an explicit call of any offered tool by its
// exact name (e.g. one of an extra MCP server's tools, which the phrases above do not know).
std::optional<intent> parse_explicit_call(std::string_view s, const std::string& l, const llm_request& req) {
  std::size_t verb = 0;
  for (std::string_view v : {"call", "use"})
    if (starts_with_word(l, v)) verb = v.size();
  if (verb == 0) return std::nullopt;
  std::string_view rest = trim(s.substr(verb));
  for (std::string_view w : {"the tool ", "tool "})
    if (lower(rest.substr(0, w.size())) == w) rest = trim(rest.substr(w.size()));
  const auto end = rest.find_first_of(" \t{");
  const std::string name(rest.substr(0, end));
  const bool offered = std::any_of(req.tools.begin(), req.tools.end(), [&](const tool_spec& t) { return t.name == name; });
  if (!offered) return std::nullopt;
  rest = trim(end == std::string_view::npos ? std::string_view{} : rest.substr(end));
  if (lower(rest.substr(0, 5)) == "with ") rest = trim(rest.substr(5));
  json args = json::object();
  if (!rest.empty()) {
    args = core::parse_json(rest);
    if (args.is_discarded() || !args.is_object()) return std::nullopt;
  }
  return intent{name, std::move(args), "I'll call " + name + "."};
}

std::string help_text(std::string_view note = {}) {
  std::string out;
  if (!note.empty()) out += std::string(note) + "\n\n";
  out +=
      "I'm the built-in local assistant (berth-local): I work offline and act on your sandbox's /workspace. "
      "Try:\n"
      "- \"List all files in /workspace\"\n"
      "- \"Read notes.txt\" or \"Show me /workspace/notes.txt\"\n"
      "- \"Write hello world to notes.txt\" or \"Create notes.txt with hello world\"\n"
      "- \"Run `ls -la`\" or \"run: python3 --version\"\n"
      "- \"Call <tool> with {JSON arguments}\" for any other offered tool\n"
      "Every tool call waits for your approval.";
  return out;
}

std::string bounded(std::string_view s) {
  if (s.size() <= max_summary_chars) return std::string(s);
  return std::string(s.substr(0, max_summary_chars)) + "\n... (truncated, " + std::to_string(s.size()) + " bytes)";
}

std::string summarise(const tool_call* call, const chat_message& result) {
  const std::string tool = base_name(call ? call->name : result.name);
  const json& a = call ? call->args : json::object();
  auto arg = [&](const char* k) { return a.contains(k) && a[k].is_string() ? a[k].get<std::string>() : std::string(); };
  std::string body(trim(result.content));
  if (result.is_error) return "The " + (call ? call->name : result.name) + " call failed: " + bounded(body);
  if (tool == "list_files") {
    const std::string path = arg("path").empty() ? "/workspace" : arg("path");
    if (body.empty()) return path + " is empty.";
    return "Here are the files in " + path + ":\n" + bounded(body);
  }
  if (tool == "read_file") return "Here is " + arg("path") + ":\n```\n" + bounded(body) + "\n```";
  if (tool == "write_file") return "Done: I wrote " + arg("path") + "." + (body.empty() ? "" : " " + bounded(body));
  if (tool == "run_command")
    return "I ran `" + arg("command") + "`:\n```\n" + (body.empty() ? "(no output)" : bounded(body)) + "\n```";
  return (call ? call->name : result.name) + " returned:\n" + bounded(body);
}

std::uint64_t approx_tokens(std::size_t chars) { return (chars + 3) / 4; }

}  // namespace

llm_reply local_complete(const llm_request& req) {
  llm_reply out;
  out.model = std::string(local_model_name);
  std::size_t input_chars = req.system_prompt.size();
  std::size_t calls_so_far = 0;
  for (const auto& m : req.messages) {
    input_chars += m.content.size();
    calls_so_far += m.tool_calls.size();
  }
  out.usage.input_tokens = approx_tokens(input_chars);

  const auto& msgs = req.messages;
  if (!msgs.empty() && msgs.back().role == role::tool) {
    // Summary mode: the trailing tool results answer the last assistant tool calls.
    std::size_t first = msgs.size();
    while (first > 0 && msgs[first - 1].role == role::tool) --first;
    const chat_message* asked = first > 0 && msgs[first - 1].role == role::assistant ? &msgs[first - 1] : nullptr;
    std::string text;
    for (std::size_t i = first; i < msgs.size(); ++i) {
      const tool_call* call = nullptr;
      if (asked)
        for (const auto& c : asked->tool_calls)
          if (c.id == msgs[i].tool_call_id) call = &c;
      if (!text.empty()) text += "\n\n";
      text += summarise(call, msgs[i]);
    }
    out.text = std::move(text);
  } else if (!msgs.empty() && msgs.back().role == role::user) {
    std::string_view s = strip_polite(msgs.back().content);
    const std::string l = lower(s);
    std::optional<intent> it = parse_explicit_call(s, l, req);
    if (!it) it = parse_run(s, l);
    if (!it) it = parse_write(s, l);
    if (!it) it = parse_list(s, l);
    if (!it) it = parse_read(s, l);
    if (!it) {
      out.text = help_text();
    } else if (const tool_spec* t = find_tool(req, it->tool)) {
      if (it->tool == "list_files" && it->args.contains("recursive") && !schema_has(*t, "recursive"))
        it->args.erase("recursive");
      out.text = it->say;
      out.tool_calls.push_back({"call_local_" + std::to_string(calls_so_far + 1), t->name, std::move(it->args)});
      out.stop_reason = stop_reason::tool_use;
    } else {
      out.text = help_text("I would use the " + it->tool + " tool, but it is not available in this session.");
    }
  } else {
    out.text = help_text();
  }
  // Honour MAX_OUTPUT_TOKENS like a real model would (approximately 4 characters per token).
  const std::size_t cap = static_cast<std::size_t>(req.max_output_tokens) * 4;
  if (out.tool_calls.empty() && out.text.size() > cap) {
    out.text.resize(cap);
    out.stop_reason = stop_reason::max_tokens;
  }
  out.raw_stop_reason = std::string(to_string(out.stop_reason));
  out.usage.output_tokens = approx_tokens(out.text.size());
  return out;
}

}  // namespace berth::llm
