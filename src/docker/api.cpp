#include "berth/docker/api.hpp"
#include "berth/core/json.hpp"

#include <charconv>
#include <cmath>

namespace berth::docker {
using nlohmann::json;

namespace {

core::error fail(std::string msg) { return core::make_error(core::errc::sandbox_unavailable, std::move(msg)); }

std::string str_or(const json& j, const char* key, std::string dflt = {}) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
}

std::map<std::string, std::string> string_map(const json& j) {
  std::map<std::string, std::string> out;
  if (!j.is_object()) return out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

bool parse_uint(std::string_view s, unsigned& out) {
  if (s.empty() || s.size() > 6) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

}  // namespace

std::string api_version::to_string() const { return std::to_string(major) + "." + std::to_string(minor); }

std::optional<api_version> parse_api_version(std::string_view s) {
  const auto dot = s.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  api_version v;
  if (!parse_uint(s.substr(0, dot), v.major) || !parse_uint(s.substr(dot + 1), v.minor)) return std::nullopt;
  return v;
}

core::result<api_version> negotiate_version(std::string_view daemon_api, std::string_view daemon_min) {
  const auto api = parse_api_version(daemon_api);
  if (!api) return fail("docker: daemon reports an unreadable API version '" + std::string(daemon_api.substr(0, 16)) + "'");
  if (!daemon_min.empty()) {
    const auto dmin = parse_api_version(daemon_min);
    if (!dmin) return fail("docker: daemon reports an unreadable minimum API version '" + std::string(daemon_min.substr(0, 16)) + "'");
    if (*dmin > client_max_version) {
      return fail("docker: daemon requires API >= " + dmin->to_string() + ", this client speaks up to " +
                  client_max_version.to_string());
    }
  }
  const api_version chosen = std::min(*api, client_max_version);
  if (chosen < client_min_version) {
    return fail("docker: daemon API " + api->to_string() + " is older than the minimum supported " +
                client_min_version.to_string());
  }
  return chosen;
}

std::vector<std::string> sandbox_server_command() {
  return {"/usr/local/bin/berth-sandbox", "mcp", "--user", std::string(sandbox_user)};
}

std::vector<std::string> sandbox_main_command() {
  auto cmd = sandbox_server_command();
  cmd.insert(cmd.begin(), {"/usr/local/bin/berth-sandbox", "supervise"});
  return cmd;
}

void make_sandbox_server_main(container_spec& spec) {
  spec.cmd = sandbox_main_command();
  spec.open_stdin = true;
  spec.docker_init = false;
}

std::map<std::string, std::string> pool_labels(std::string_view replica, std::string_view pool) {
  return {{"berth.managed", "true"}, {"berth.replica", std::string(replica)}, {"berth.pool", std::string(pool)}};
}

container_spec hardened_spec(const core::config& cfg, std::string_view pool_name) {
  container_spec s;
  s.image = cfg.sandbox_image;
  s.labels = pool_labels(cfg.replica_id, pool_name);
  s.memory_bytes = cfg.container_memory_bytes;
  s.nano_cpus = static_cast<std::int64_t>(std::llround(cfg.container_cpus * 1e9));
  s.pids_limit = cfg.container_pids;
  s.network_mode = cfg.container_network.empty() ? "none" : cfg.container_network;
  s.runtime = cfg.sandbox_runtime;
  return s;
}

json create_body(const container_spec& spec) {
  json labels = json::object();
  for (const auto& [k, v] : spec.labels) labels[k] = v;
  json env = json::array();
  for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
  json host{
      {"CapDrop", json::array({"ALL"})},
      {"CapAdd", spec.cap_add},
      {"SecurityOpt", json::array({"no-new-privileges:true"})},
      {"NetworkMode", spec.network_mode},
      {"Init", spec.docker_init},
      {"ReadonlyRootfs", true},
      {"Privileged", false},
      {"AutoRemove", false},
      {"RestartPolicy", {{"Name", "no"}}},
      // noexec on /tmp keeps dropped binaries out; /workspace stays exec so tools can run scripts.
      {"Tmpfs",
       {{"/tmp", "rw,nosuid,nodev,noexec,size=" + spec.tmp_size + ",mode=1777"},
        {"/workspace", "rw,nosuid,nodev,exec,size=" + spec.workspace_size + ",uid=" + spec.workspace_owner +
                           ",gid=" + spec.workspace_owner + ",mode=0755"}}},
      // What a sandbox writes is the MCP traffic (the user's files and command output): it is not
      // logged on the host, and without a log file dockerd holds two descriptors less per sandbox.
      {"LogConfig", {{"Type", "none"}}},
  };
  if (spec.memory_bytes > 0) {
    host["Memory"] = spec.memory_bytes;
    host["MemorySwap"] = spec.memory_bytes;  // no swap beyond the memory cap
  }
  if (spec.nano_cpus > 0) host["NanoCpus"] = spec.nano_cpus;
  if (spec.pids_limit > 0) host["PidsLimit"] = spec.pids_limit;
  if (!spec.runtime.empty()) host["Runtime"] = spec.runtime;
  json body{
      {"Image", spec.image},
      {"User", spec.user},
      {"WorkingDir", "/workspace"},
      {"Labels", labels},
      {"Env", env},
      {"Tty", false},
      {"OpenStdin", spec.open_stdin},
      {"StdinOnce", false},  // a client that detaches leaves stdin open for the next one
      {"AttachStdin", false},
      {"AttachStdout", false},
      {"AttachStderr", false},
      {"NetworkDisabled", spec.network_mode == "none"},
      {"HostConfig", host},
  };
  if (!spec.cmd.empty()) body["Cmd"] = spec.cmd;
  return body;
}

json exec_body(const exec_spec& spec) {
  json body{{"AttachStdin", spec.attach_stdin}, {"AttachStdout", true}, {"AttachStderr", true},
            {"Tty", false}, {"Cmd", spec.cmd}};
  if (!spec.user.empty()) body["User"] = spec.user;
  if (!spec.working_dir.empty()) body["WorkingDir"] = spec.working_dir;
  if (!spec.env.empty()) {
    json env = json::array();
    for (const auto& [k, v] : spec.env) env.push_back(k + "=" + v);
    body["Env"] = env;
  }
  return body;
}

std::string url_encode(std::string_view s) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

std::string label_filters(const std::map<std::string, std::string>& labels,
                          const std::map<std::string, std::vector<std::string>>& extra) {
  json f = json::object();
  json l = json::array();
  for (const auto& [k, v] : labels) l.push_back(v.empty() ? k : k + "=" + v);
  if (!l.empty()) f["label"] = l;
  for (const auto& [k, vs] : extra) f[k] = vs;
  return url_encode(f.dump());
}

std::string versioned(const api_version& v, std::string_view path) {
  return "/v" + v.to_string() + std::string(path);
}

core::result<version_info> parse_version(std::string_view body) {
  const json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object()) return fail("docker: /version answered non-JSON");
  version_info v{str_or(j, "ApiVersion"), str_or(j, "MinAPIVersion"), str_or(j, "Version"), str_or(j, "Os"),
                 str_or(j, "Arch")};
  if (v.api_version.empty()) return fail("docker: /version has no ApiVersion");
  return v;
}

core::result<container_info> parse_inspect(std::string_view body) {
  json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object()) return fail("docker: inspect answered non-JSON");
  container_info c;
  c.id = str_or(j, "Id");
  if (c.id.empty()) return fail("docker: inspect has no Id");
  c.name = str_or(j, "Name");
  if (!c.name.empty() && c.name.front() == '/') c.name.erase(0, 1);
  if (auto st = j.find("State"); st != j.end() && st->is_object()) {
    c.state = str_or(*st, "Status");
    if (auto r = st->find("Running"); r != st->end() && r->is_boolean()) c.running = r->get<bool>();
    if (auto e = st->find("ExitCode"); e != st->end() && e->is_number_integer()) c.exit_code = e->get<int>();
    if (auto o = st->find("OOMKilled"); o != st->end() && o->is_boolean()) c.oom_killed = o->get<bool>();
  }
  if (auto cfg = j.find("Config"); cfg != j.end() && cfg->is_object()) {
    c.image = str_or(*cfg, "Image");
    if (auto l = cfg->find("Labels"); l != cfg->end()) c.labels = string_map(*l);
  }
  c.raw = std::move(j);
  return c;
}

core::result<std::vector<container_info>> parse_list(std::string_view body) {
  const json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_array()) return fail("docker: container list answered non-JSON");
  std::vector<container_info> out;
  out.reserve(j.size());
  for (const auto& e : j) {
    if (!e.is_object()) continue;
    container_info c;
    c.id = str_or(e, "Id");
    if (c.id.empty()) continue;
    if (auto n = e.find("Names"); n != e.end() && n->is_array() && !n->empty() && n->front().is_string()) {
      c.name = n->front().get<std::string>();
      if (!c.name.empty() && c.name.front() == '/') c.name.erase(0, 1);
    }
    c.image = str_or(e, "Image");
    c.state = str_or(e, "State");
    c.running = c.state == "running";
    if (auto t = e.find("Created"); t != e.end() && t->is_number_integer()) c.created = t->get<std::int64_t>();
    if (auto l = e.find("Labels"); l != e.end()) c.labels = string_map(*l);
    out.push_back(std::move(c));
  }
  return out;
}

core::result<std::string> parse_created_id(std::string_view body) {
  const json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object()) return fail("docker: create answered non-JSON");
  std::string id = str_or(j, "Id");
  if (id.empty()) return fail("docker: create answered without Id");
  return id;
}

core::result<exec_info> parse_exec_inspect(std::string_view body) {
  const json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object()) return fail("docker: exec inspect answered non-JSON");
  exec_info e;
  if (auto r = j.find("Running"); r != j.end() && r->is_boolean()) e.running = r->get<bool>();
  if (auto c = j.find("ExitCode"); c != j.end() && c->is_number_integer() && !e.running) e.exit_code = c->get<int>();
  if (auto p = j.find("Pid"); p != j.end() && p->is_number_integer()) e.pid = p->get<std::int64_t>();
  return e;
}

core::result<wait_result> parse_wait(std::string_view body) {
  const json j = core::parse_json(body);
  if (j.is_discarded() || !j.is_object()) return fail("docker: wait answered non-JSON");
  wait_result w;
  if (auto s = j.find("StatusCode"); s != j.end() && s->is_number_integer()) w.status_code = s->get<int>();
  if (auto e = j.find("Error"); e != j.end() && e->is_object()) w.error = str_or(*e, "Message");
  return w;
}

core::result<docker_event> parse_event(std::string_view line) {
  const json j = core::parse_json(line);
  if (j.is_discarded() || !j.is_object()) return fail("docker: unreadable event line");
  docker_event ev;
  ev.type = str_or(j, "Type");
  ev.action = str_or(j, "Action", str_or(j, "status"));
  if (auto a = j.find("Actor"); a != j.end() && a->is_object()) {
    ev.id = str_or(*a, "ID");
    if (auto at = a->find("Attributes"); at != a->end()) ev.attributes = string_map(*at);
  }
  if (ev.id.empty()) ev.id = str_or(j, "id");
  if (auto t = j.find("timeNano"); t != j.end() && t->is_number_integer()) ev.time_nano = t->get<std::int64_t>();
  return ev;
}

std::string daemon_message(std::string_view body) {
  const json j = core::parse_json(body);
  if (!j.is_discarded() && j.is_object()) {
    std::string m = str_or(j, "message");
    if (!m.empty()) return m.substr(0, 512);
  }
  std::string s(body.substr(0, 256));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

bool is_success(op o, unsigned status) noexcept {
  if (status >= 200 && status < 300) return true;
  switch (o) {
    case op::start:
    case op::stop: return status == 304;           // already started / already stopped
    case op::kill: return status == 404 || status == 409;  // gone / not running
    case op::remove: return status == 404;         // already removed
    case op::other: return false;
  }
  return false;
}

}  // namespace berth::docker

namespace berth::docker {
core::result<std::string> socket_path_from_host(std::string_view docker_host) {
  constexpr std::string_view unix_scheme = "unix://";
  std::string_view rest = docker_host;
  if (rest.substr(0, unix_scheme.size()) == unix_scheme) rest.remove_prefix(unix_scheme.size());
  if (rest.empty() || rest.front() != '/' || rest.find("://") != std::string_view::npos) {
    return core::make_error(core::errc::sandbox_unavailable,
                            "DOCKER_HOST='" + std::string(docker_host.substr(0, 128)) +
                                "' is not supported: use unix:///path/to/docker.sock");
  }
  return std::string(rest);
}
}  // namespace berth::docker
