// mcp-config.json parsing: start-up configuration written by the operator, so every mistake gets
// an error naming the exact JSON path and what is allowed.
#include <set>

#include "berth/mcp/config.hpp"

#include <nlohmann/json.hpp>

namespace berth::mcp {

using nlohmann::json;
using core::errc;

namespace {

core::error bad(const std::string& path, const std::string& what) {
  return core::make_error(errc::internal, "mcp-config: " + path + ": " + what);
}

bool valid_server_name(const std::string& n) {
  if (n.empty() || n.size() > 32) return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  return true;
}

std::optional<core::error> string_map(const json& j, const std::string& path, std::map<std::string, std::string>& out) {
  if (!j.is_object()) return bad(path, std::string("expected an object of strings, got ") + j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it->is_string()) return bad(path + "." + it.key(), std::string("expected a string, got ") + it->type_name());
    out[it.key()] = it->get<std::string>();
  }
  return std::nullopt;
}

core::result<server_config> parse_server(const std::string& name, const json& j) {
  const std::string path = "mcpServers." + name;
  if (!valid_server_name(name)) return bad(path, "server names are 1-32 characters of [A-Za-z0-9_-]");
  // The built-in server's name: its tools keep their plain names, and calls are routed by server name.
  if (name == "sandbox") return bad(path, "\"sandbox\" is reserved for the built-in sandbox server");
  if (!j.is_object()) return bad(path, std::string("expected an object, got ") + j.type_name());
  static const std::set<std::string> known{"transport", "command", "args", "env", "url", "headers", "enabled"};
  for (auto it = j.begin(); it != j.end(); ++it)
    if (known.count(it.key()) == 0)
      return bad(path + "." + it.key(),
                 "unknown key (allowed: transport, command, args, env, url, headers, enabled)");
  server_config s;
  s.name = name;
  auto tr = j.find("transport");
  if (tr == j.end()) return bad(path + ".transport", "missing (\"stdio-docker\" or \"http\")");
  if (!tr->is_string()) return bad(path + ".transport", std::string("expected a string, got ") + tr->type_name());
  const auto& t = tr->get_ref<const std::string&>();
  if (t == "stdio-docker") {
    s.transport = transport_kind::stdio_docker;
  } else if (t == "http") {
    s.transport = transport_kind::http;
  } else {
    return bad(path + ".transport", "expected \"stdio-docker\" or \"http\", got \"" + t.substr(0, 40) + "\"");
  }
  if (auto en = j.find("enabled"); en != j.end()) {
    if (!en->is_boolean()) return bad(path + ".enabled", std::string("expected a boolean, got ") + en->type_name());
    s.enabled = en->get<bool>();
  }
  if (s.transport == transport_kind::stdio_docker) {
    for (const char* k : {"url", "headers"})
      if (j.contains(k)) return bad(path + "." + k, "only valid with transport \"http\"");
    auto cmd = j.find("command");
    if (cmd == j.end()) return bad(path + ".command", "missing (required for transport \"stdio-docker\")");
    if (cmd->is_string()) {
      if (cmd->get_ref<const std::string&>().empty()) return bad(path + ".command", "must not be empty");
      // A command line string runs through the container's shell, like a Dockerfile's CMD.
      s.command = {"/bin/sh", "-c", cmd->get<std::string>()};
    } else if (cmd->is_array()) {
      if (cmd->empty()) return bad(path + ".command", "must not be empty");
      for (std::size_t i = 0; i < cmd->size(); ++i) {
        if (!(*cmd)[i].is_string())
          return bad(path + ".command[" + std::to_string(i) + "]", std::string("expected a string, got ") + (*cmd)[i].type_name());
        s.command.push_back((*cmd)[i].get<std::string>());
      }
    } else {
      return bad(path + ".command", std::string("expected a string or an array of strings, got ") + cmd->type_name());
    }
    if (auto args = j.find("args"); args != j.end()) {
      if (!args->is_array()) return bad(path + ".args", std::string("expected an array of strings, got ") + args->type_name());
      if (cmd->is_string()) return bad(path + ".args", "use an array \"command\" together with \"args\"");
      for (std::size_t i = 0; i < args->size(); ++i) {
        if (!(*args)[i].is_string())
          return bad(path + ".args[" + std::to_string(i) + "]", std::string("expected a string, got ") + (*args)[i].type_name());
        s.command.push_back((*args)[i].get<std::string>());
      }
    }
    if (auto env = j.find("env"); env != j.end())
      if (auto e = string_map(*env, path + ".env", s.env)) return *e;
  } else {
    for (const char* k : {"command", "args", "env"})
      if (j.contains(k)) return bad(path + "." + k, "only valid with transport \"stdio-docker\"");
    auto url = j.find("url");
    if (url == j.end()) return bad(path + ".url", "missing (required for transport \"http\")");
    if (!url->is_string()) return bad(path + ".url", std::string("expected a string, got ") + url->type_name());
    s.url = url->get<std::string>();
    const bool scheme_ok = s.url.rfind("http://", 0) == 0 || s.url.rfind("https://", 0) == 0;
    const auto host_start = s.url.find("://") + 3;
    if (!scheme_ok || s.url.size() <= host_start || s.url[host_start] == '/')
      return bad(path + ".url", "expected an http:// or https:// URL with a host");
    if (auto h = j.find("headers"); h != j.end())
      if (auto e = string_map(*h, path + ".headers", s.headers)) return *e;
  }
  return s;
}

}  // namespace

core::result<mcp_config> parse_mcp_config(std::string_view text) {
  json j;
  try {
    // Start-up input from the operator: the exception's text carries the byte position.
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    return core::make_error(errc::internal, std::string("mcp-config: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) return bad("(root)", std::string("expected an object, got ") + j.type_name());
  auto servers = j.find("mcpServers");
  if (servers == j.end()) return bad("mcpServers", "missing");
  if (!servers->is_object()) return bad("mcpServers", std::string("expected an object, got ") + servers->type_name());
  mcp_config cfg;
  for (auto it = servers->begin(); it != servers->end(); ++it) {
    auto s = parse_server(it.key(), *it);
    if (!s) return s.error();
    cfg.servers.push_back(std::move(*s));
  }
  return cfg;
}

}  // namespace berth::mcp
