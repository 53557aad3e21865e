#include "berth/mcp/tools.hpp"

#include <algorithm>

#include "berth/core/logging.hpp"

namespace berth::mcp {

using nlohmann::json;
using core::errc;
using core::make_error;
using core::log_prefix;

core::result<std::vector<tool_descriptor>> map_tools_list(const json& result) {
  if (!result.is_object()) return make_error(errc::tool_failed, "tools/list: result is not an object");
  auto it = result.find("tools");
  if (it == result.end() || !it->is_array()) return make_error(errc::tool_failed, "tools/list: result.tools is not an array");
  std::vector<tool_descriptor> out;
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& t = (*it)[i];
    const std::string where = "tools/list: tools[" + std::to_string(i) + "]";
    if (!t.is_object()) return make_error(errc::tool_failed, where + " is not an object");
    auto name = t.find("name");
    if (name == t.end() || !name->is_string() || name->get_ref<const std::string&>().empty())
      return make_error(errc::tool_failed, where + ".name must be a non-empty string");
    tool_descriptor d;
    d.name = name->get<std::string>();
    if (auto x = t.find("title"); x != t.end() && x->is_string()) d.title = x->get<std::string>();
    if (auto x = t.find("description"); x != t.end() && x->is_string()) d.description = x->get<std::string>();
    auto schema = t.find("inputSchema");
    if (schema == t.end() || !schema->is_object())
      return make_error(errc::tool_failed, where + " (" + log_prefix(d.name, 64) + ").inputSchema must be an object");
    d.input_schema = *schema;
    out.push_back(std::move(d));
  }
  return out;
}

core::result<tool_call_outcome> map_tool_call_result(const json& result) {
  if (!result.is_object()) return make_error(errc::tool_failed, "tools/call: result is not an object");
  tool_call_outcome o;
  if (auto e = result.find("isError"); e != result.end()) {
    if (!e->is_boolean()) return make_error(errc::tool_failed, "tools/call: isError must be a boolean");
    o.is_error = e->get<bool>();
  }
  if (auto s = result.find("structuredContent"); s != result.end()) o.structured = *s;
  auto content = result.find("content");
  if (content == result.end() || !content->is_array()) {
    // Only structured output: show it to the model as JSON.
    if (!o.structured.is_null()) {
      o.text = o.structured.dump(-1, ' ', false, json::error_handler_t::replace);
      return o;
    }
    return make_error(errc::tool_failed, "tools/call: result.content is not an array");
  }
  bool first = true;
  for (std::size_t i = 0; i < content->size(); ++i) {
    const json& part = (*content)[i];
    if (!part.is_object() || !part.contains("type") || !part["type"].is_string())
      return make_error(errc::tool_failed, "tools/call: content[" + std::to_string(i) + "] has no string type");
    const auto& type = part["type"].get_ref<const std::string&>();
    std::string piece;
    if (type == "text") {
      if (!part.contains("text") || !part["text"].is_string())
        return make_error(errc::tool_failed, "tools/call: content[" + std::to_string(i) + "].text is not a string");
      piece = part["text"].get<std::string>();
    } else if (type == "resource" && part.contains("resource") && part["resource"].is_object() &&
               part["resource"].contains("text") && part["resource"]["text"].is_string()) {
      piece = part["resource"]["text"].get<std::string>();
    } else {
      std::string mime;
      if (auto m = part.find("mimeType"); m != part.end() && m->is_string()) mime = " " + m->get<std::string>();
      piece = "[" + log_prefix(type, 32) + mime + " content omitted]";
    }
    if (!first) o.text.push_back('\n');
    o.text += piece;
    first = false;
  }
  return o;
}

namespace {
std::string sanitise(std::string_view s) {
  std::string out;
  for (char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    out.push_back(ok ? c : '_');
  }
  if (out.size() > 64) out.resize(64);
  return out;
}
}  // namespace

void tool_namespace::add_server(const std::string& server, const std::vector<tool_descriptor>& tools) {
  remove_server(server);
  servers_.emplace_back(server, tools);
  rebuild();
}

void tool_namespace::remove_server(const std::string& server) {
  std::erase_if(servers_, [&](const auto& s) { return s.first == server; });
  rebuild();
}

void tool_namespace::rebuild() {
  entries_.clear();
  auto taken = [&](std::string_view n) {
    return std::any_of(entries_.begin(), entries_.end(), [&](const entry& e) { return e.exposed_name == n; });
  };
  for (const auto& [server, tools] : servers_) {
    for (const auto& t : tools) {
      std::string name = t.name;
      if (taken(name) || sanitise(name) != name) {
        name = sanitise(server + "__" + t.name);
        const std::string base = name.substr(0, 60);
        for (int k = 2; taken(name) && k < 10000; ++k) name = base + "_" + std::to_string(k);
      }
      entries_.push_back(entry{name, server, t});
    }
  }
}

const tool_namespace::entry* tool_namespace::find(std::string_view exposed_name) const {
  for (const auto& e : entries_)
    if (e.exposed_name == exposed_name) return &e;
  return nullptr;
}

}  // namespace berth::mcp
