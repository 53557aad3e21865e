#include "berth/core/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace berth::core {
namespace {

std::string trim(std::string_view s) {
  const auto* ws = " \t\r\n";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  std::string l(s);
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (l == "true" || l == "1" || l == "yes" || l == "on") return true;
  if (l == "false" || l == "0" || l == "no" || l == "off") return false;
  return std::nullopt;
}

// "512m", "1g", "1048576" -> bytes.
std::optional<std::uint64_t> parse_bytes(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t mult = 1;
  char last = static_cast<char>(std::tolower(static_cast<unsigned char>(s.back())));
  if (last == 'k' || last == 'm' || last == 'g') {
    mult = last == 'k' ? 1024ull : last == 'm' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
    s.remove_suffix(1);
  }
  auto v = parse_int<std::uint64_t>(s);
  if (!v || *v > std::numeric_limits<std::uint64_t>::max() / mult) return std::nullopt;
  return *v * mult;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    auto end = s.find(',', start);
    if (end == std::string_view::npos) end = s.size();
    auto item = trim(s.substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

// A table of setters keeps parse_config and known_variables() from drifting apart.
using setter = std::function<std::optional<config_error>(config&, const std::string&, const std::string&)>;

template <class Int>
setter integer(Int config::*field, Int min, Int max) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    auto n = parse_int<Int>(v);
    if (!n || *n < min || *n > max)
      return config_error{name, v, "an integer from " + std::to_string(min) + " to " + std::to_string(max)};
    c.*field = *n;
    return std::nullopt;
  };
}

setter millis(std::chrono::milliseconds config::*field, std::int64_t min, std::int64_t max) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    auto n = parse_int<std::int64_t>(v);
    if (!n || *n < min || *n > max)
      return config_error{name, v, "milliseconds from " + std::to_string(min) + " to " + std::to_string(max)};
    c.*field = std::chrono::milliseconds(*n);
    return std::nullopt;
  };
}

setter text(std::string config::*field, bool allow_empty = true) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    if (!allow_empty && v.empty()) return config_error{name, v, "a non-empty value"};
    c.*field = v;
    return std::nullopt;
  };
}

setter one_of(std::string config::*field, std::vector<std::string> allowed) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    if (std::find(allowed.begin(), allowed.end(), v) == allowed.end()) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : "|") + a;
      return config_error{name, v, "one of " + list};
    }
    c.*field = v;
    return std::nullopt;
  };
}

setter byte_size(std::uint64_t config::*field, std::uint64_t min, std::uint64_t max, bool zero_is_off) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    auto b = parse_bytes(v);
    if (!b || ((*b != 0 || !zero_is_off) && *b < min) || *b > max)
      return config_error{name, v, std::string(zero_is_off ? "0 (off) or " : "") + "bytes (suffix k, m or g) from " +
                                       std::to_string(min) + " to " + std::to_string(max)};
    c.*field = *b;
    return std::nullopt;
  };
}

setter boolean(bool config::*field) {
  return [=](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
    auto b = parse_bool(v);
    if (!b) return config_error{name, v, "true or false"};
    c.*field = *b;
    return std::nullopt;
  };
}

const std::vector<std::pair<std::string, setter>>& setters() {
  static const std::vector<std::pair<std::string, setter>> table = {
      {"PORT", integer<std::uint16_t>(&config::port, 0, 65535)},
      {"HOST", text(&config::host, false)},
      {"SOCKETIO_PATH",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         if (v.size() < 2 || v.front() != '/' || v.back() != '/')
           return config_error{name, v, "a path that starts and ends with '/'"};
         c.socketio_path = v;
         return std::nullopt;
       }},
      {"REPLICA_ID", text(&config::replica_id, false)},
      {"ROUTE_ADDRESS",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         const auto colon = v.rfind(':');
         const auto port = colon == std::string::npos ? std::optional<std::uint16_t>{}
                                                      : parse_int<std::uint16_t>(std::string_view(v).substr(colon + 1));
         if (colon == 0 || !port || *port == 0) return config_error{name, v, "HOST:PORT (the address the load balancer uses)"};
         c.route_address = v;
         return std::nullopt;
       }},
      {"MAX_CONNECTIONS", integer<std::size_t>(&config::max_connections, 1, 10'000'000)},
      {"CORS_ORIGINS",
       [](config& c, const std::string&, const std::string& v) -> std::optional<config_error> {
         c.cors_origins = split_list(v);
         return std::nullopt;
       }},
      {"PING_INTERVAL_MS", millis(&config::ping_interval, 10, 3'600'000)},
      {"PING_TIMEOUT_MS", millis(&config::ping_timeout, 10, 3'600'000)},
      {"CONNECT_TIMEOUT_MS", millis(&config::connect_timeout, 10, 3'600'000)},
      {"UPGRADE_TIMEOUT_MS", millis(&config::upgrade_timeout, 10, 3'600'000)},
      {"MAX_HTTP_BUFFER_SIZE", integer<std::size_t>(&config::max_http_buffer_size, 1024, 100'000'000)},
      {"REDIS_URL",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         // The value may carry a password: never echo it.
         if (v.rfind("redis://", 0) != 0 && v.rfind("unix://", 0) != 0)
           return config_error{name, v.find('@') == std::string::npos ? v : "(hidden: it contains a password)",
                               "redis://[:password@]host[:port][/db] or unix:///path.sock"};
         c.redis_url = v;
         return std::nullopt;
       }},
      {"REDIS_SENTINELS", text(&config::redis_sentinels)},
      {"REDIS_SENTINEL_MASTER", text(&config::redis_sentinel_master, false)},
      {"REDIS_SENTINEL_PASSWORD", text(&config::redis_sentinel_password)},
      {"REDIS_PASSWORD", text(&config::redis_password)},
      {"DOCKER_HOST",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         if (v.rfind("unix://", 0) != 0 || v.size() <= 7)
           return config_error{name, v, "unix:///path/to/docker.sock"};
         c.docker_host = v;
         return std::nullopt;
       }},
      {"SANDBOX_IMAGE", text(&config::sandbox_image, false)},
      {"ENABLE_CONTAINER_POOL", boolean(&config::enable_container_pool)},
      {"POOL_PREPARE_MCP", boolean(&config::pool_prepare_mcp)},
      {"POOL_MIN_SIZE", integer<std::size_t>(&config::pool_min_size, 0, 10000)},
      {"POOL_MAX_SIZE", integer<std::size_t>(&config::pool_max_size, 1, 10000)},
      {"POOL_IDLE_TIMEOUT_MS", millis(&config::pool_idle_timeout, 1000, 86'400'000)},
      {"ACQUIRE_TIMEOUT_MS", millis(&config::acquire_timeout, 1, 3'600'000)},
      {"POOL_RECYCLE", boolean(&config::pool_recycle)},
      {"POOL_MAX_USES", integer<std::size_t>(&config::pool_max_uses, 1, 1'000'000)},
      {"POOL_MAX_AGE_MS", millis(&config::pool_max_age, 1000, 30LL * 86'400'000)},
      {"MAX_CONTAINERS", integer<std::size_t>(&config::max_containers, 0, 1'000'000)},
      {"CONTAINER_MEMORY",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         auto b = parse_bytes(v);
         if (!b || *b < 6 * 1024 * 1024) return config_error{name, v, "bytes (suffix k, m or g) of at least 6m"};
         c.container_memory_bytes = *b;
         return std::nullopt;
       }},
      {"CONTAINER_CPUS",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         char* end = nullptr;
         double d = std::strtod(v.c_str(), &end);
         if (v.empty() || end != v.c_str() + v.size() || !(d >= 0.01 && d <= 1024))
           return config_error{name, v, "a number of CPUs from 0.01 to 1024"};
         c.container_cpus = d;
         return std::nullopt;
       }},
      {"CONTAINER_PIDS", integer<std::int64_t>(&config::container_pids, 8, 1'000'000)},
      {"CONTAINER_NETWORK", text(&config::container_network, false)},
      {"SANDBOX_RUNTIME", text(&config::sandbox_runtime)},
      {"MAX_REQUESTS_PER_USER", integer<std::size_t>(&config::max_requests_per_user, 1, 10000)},
      {"SESSION_IDLE_TIMEOUT_MS", millis(&config::session_idle_timeout, 1000, 30LL * 86'400'000)},
      {"SESSION_DETACH_GRACE_MS", millis(&config::session_detach_grace, 0, 30LL * 86'400'000)},
      {"RECOVERY_MAX_DISCONNECTION_MS", millis(&config::recovery_max_disconnection, 0, 86'400'000)},
      {"RECOVERY_MAX_PACKETS", integer<std::size_t>(&config::recovery_max_packets, 0, 1'000'000)},
      {"WORKSPACE_SAVE_MAX_BYTES", integer<std::size_t>(&config::workspace_save_max_bytes, 1024, 64u * 1024u * 1024u)},
      {"MAX_SESSIONS_PER_ADDRESS", integer<std::size_t>(&config::max_sessions_per_address, 0, 1'000'000)},
      {"ORPHAN_REAP_INTERVAL_MS", millis(&config::orphan_reap_interval, 1000, 86'400'000)},
      {"MAX_MESSAGE_BYTES", integer<std::size_t>(&config::max_message_bytes, 1, 100'000'000)},
      {"AUTH_JWT_SECRET",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         // The error line names the length only: the secret itself is never printed.
         if (v.size() < min_jwt_secret_bytes)
           return config_error{name, "(hidden, " + std::to_string(v.size()) + " bytes)",
                               "at least " + std::to_string(min_jwt_secret_bytes) + " bytes (e.g. openssl rand -hex 32)"};
         c.auth_jwt_secret = v;
         return std::nullopt;
       }},
      {"AUTH_JWT_AUDIENCE", text(&config::auth_jwt_audience)},
      {"AUTH_JWT_ISSUER", text(&config::auth_jwt_issuer)},
      {"TRUSTED_PROXIES",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         std::string bad;
         auto parsed = trusted_proxies::parse(v, &bad);
         if (!parsed)
           return config_error{name, v, "comma-separated addresses or CIDRs such as 172.16.0.0/12,10.0.0.5 (\"" + bad + "\" is not one)"};
         c.proxies = std::move(*parsed);
         return std::nullopt;
       }},
      {"MAX_CONNECTIONS_PER_ADDRESS", integer<std::size_t>(&config::max_connections_per_address, 0, 10'000'000)},
      {"MAX_ENGINEIO_SESSIONS_PER_ADDRESS", integer<std::size_t>(&config::max_engineio_sessions_per_address, 0, 10'000'000)},
      {"NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE", integer<std::uint32_t>(&config::new_engineio_sessions_per_address_per_minute, 0, 10'000'000)},
      {"SOCKET_EVENTS_PER_SECOND", integer<std::uint32_t>(&config::socket_events_per_second, 0, 1'000'000)},
      {"SOCKET_EVENT_BURST", integer<std::uint32_t>(&config::socket_event_burst, 1, 10'000'000)},
      {"SOCKET_FLOOD_DISCONNECT_SECONDS", integer<std::uint32_t>(&config::socket_flood_disconnect_seconds, 0, 3600)},
      {"USER_EVENTS_PER_SECOND", integer<std::uint32_t>(&config::user_events_per_second, 0, 1'000'000)},
      {"USER_EVENT_BURST", integer<std::uint32_t>(&config::user_event_burst, 1, 10'000'000)},
      {"LLM_TOKENS_PER_USER_PER_MINUTE", integer<std::uint64_t>(&config::llm_tokens_per_user_per_minute, 0, 1'000'000'000'000)},
      {"MAX_TOOL_OUTPUT_BYTES", byte_size(&config::max_tool_output_bytes, 1024, 1ull << 30, false)},
      {"MAX_CONNECTION_BUFFER_BYTES", byte_size(&config::max_connection_buffer_bytes, 1024, 1ull << 40, false)},
      {"MAX_PROCESS_BUFFER_BYTES", byte_size(&config::max_process_buffer_bytes, 1024, 1ull << 44, true)},
      {"ALLOW_USER_API_KEY", boolean(&config::allow_user_api_key)},
      {"LLM_PROVIDER", one_of(&config::llm_provider, {"local", "gemini", "openai", "anthropic"})},
      {"LLM_MODEL", text(&config::llm_model)},
      {"GEMINI_API_KEY", text(&config::gemini_api_key)},
      {"GEMINI_BASE_URL", text(&config::gemini_base_url, false)},
      {"OPENAI_API_KEY", text(&config::openai_api_key)},
      {"OPENAI_BASE_URL", text(&config::openai_base_url, false)},
      {"ANTHROPIC_API_KEY", text(&config::anthropic_api_key)},
      {"ANTHROPIC_BASE_URL", text(&config::anthropic_base_url, false)},
      {"MAX_OUTPUT_TOKENS", integer<std::uint32_t>(&config::max_output_tokens, 1, 1'000'000)},
      {"STREAM_DELTA_INTERVAL_MS", millis(&config::stream_delta_interval, 0, 10'000)},
      {"MAX_HISTORY_TOKENS", integer<std::uint32_t>(&config::max_history_tokens, 100, 10'000'000)},
      {"HISTORY_TTL_SECONDS", integer<std::uint32_t>(&config::history_ttl_seconds, 1, 365u * 86400)},
      {"MAX_TOOL_ROUNDS", integer<std::uint32_t>(&config::max_tool_rounds, 1, 100)},
      {"TOOL_TIMEOUT_MS", millis(&config::tool_timeout, 10, 3'600'000)},
      {"TURN_DEADLINE_MS", millis(&config::turn_deadline, 0, 86'400'000)},
      {"MCP_CONFIG_FILE", text(&config::mcp_config_path)},
      {"LLM_CA_FILE", text(&config::llm_ca_file)},
      {"LOG_LEVEL", one_of(&config::log_level, {"trace", "debug", "info", "warn", "error", "off"})},
      {"LOG_FORMAT", one_of(&config::log_format, {"text", "json"})},
      {"THREADS", integer<unsigned>(&config::threads, 1, 256)},
      {"STATIC_DIR", text(&config::static_dir)},
      {"CLIENT_BUNDLE_DIR", text(&config::client_bundle_dir)},
      {"DIAGNOSTICS_NAMESPACE",
       [](config& c, const std::string& name, const std::string& v) -> std::optional<config_error> {
         if (v.size() < 2 || v.front() != '/') return config_error{name, v, "a namespace such as /diagnostics"};
         c.diagnostics_namespace = v;
         return std::nullopt;
       }},
      {"SHUTDOWN_GRACE_MS", millis(&config::shutdown_grace, 0, 600'000)},
  };
  return table;
}

}  // namespace

std::string config_error::to_string() const {
  return "invalid configuration: " + variable + "=\"" + value + "\" (allowed: " + allowed + ")";
}

void throw_exception_from_error(const config_error& e, const boost::source_location&) {
  throw std::invalid_argument(e.to_string());
}

env_map parse_dotenv(std::string_view body) {
  env_map out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto eol = body.find('\n', pos);
    if (eol == std::string_view::npos) eol = body.size();
    std::string line = trim(body.substr(pos, eol - pos));
    pos = eol + 1;
    if (line.empty() || line.front() == '#') continue;
    if (line.rfind("export ", 0) == 0) line = trim(std::string_view(line).substr(7));
    auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string key = trim(std::string_view(line).substr(0, eq));
    std::string value = trim(std::string_view(line).substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    } else if (auto hash = value.find(" #"); hash != std::string::npos) {
      value = trim(std::string_view(value).substr(0, hash));
    }
    out[key] = value;
  }
  return out;
}

boost::system::result<config, config_error> parse_config(const env_map& vars) {
  config c;
  for (const auto& [name, set] : setters()) {
    auto it = vars.find(name);
    if (it == vars.end()) continue;
    // Empty optional values mean "unset" (as in a copied .env.example); required text stays required.
    if (it->second.empty() && name != "HOST" && name != "REPLICA_ID" && name != "SANDBOX_IMAGE") continue;
    if (auto err = set(c, name, it->second)) return *err;
  }
  if (c.replica_id.empty()) {
    char buf[256] = {};
    c.replica_id = ::gethostname(buf, sizeof buf - 1) == 0 && buf[0] ? buf : "berth";
  }
  if ((!c.auth_jwt_audience.empty() || !c.auth_jwt_issuer.empty()) && c.auth_jwt_secret.empty())
    return config_error{c.auth_jwt_audience.empty() ? "AUTH_JWT_ISSUER" : "AUTH_JWT_AUDIENCE",
                        c.auth_jwt_audience.empty() ? c.auth_jwt_issuer : c.auth_jwt_audience,
                        "only together with AUTH_JWT_SECRET (tokens are checked only when it is set)"};
  if (c.max_connection_buffer_bytes < c.max_http_buffer_size)
    return config_error{"MAX_CONNECTION_BUFFER_BYTES", std::to_string(c.max_connection_buffer_bytes),
                        "at least MAX_HTTP_BUFFER_SIZE (" + std::to_string(c.max_http_buffer_size) +
                            "): one connection must be able to hold one whole message"};
  if (c.pool_min_size > c.pool_max_size)
    return config_error{"POOL_MIN_SIZE", std::to_string(c.pool_min_size),
                        "at most POOL_MAX_SIZE (" + std::to_string(c.pool_max_size) + ")"};
  // A parked session must hibernate before the janitor may end it for being idle.
  if (c.session_detach_grace >= c.session_idle_timeout)
    return config_error{"SESSION_DETACH_GRACE_MS", std::to_string(c.session_detach_grace.count()),
                        "less than SESSION_IDLE_TIMEOUT_MS (" + std::to_string(c.session_idle_timeout.count()) + ")"};
  return c;
}

env_map load_environment(const std::string& dotenv_path) {
  env_map vars;
  if (std::ifstream in(dotenv_path); in) {
    std::stringstream ss;
    ss << in.rdbuf();
    vars = parse_dotenv(ss.str());
  }
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  return vars;
}

const std::vector<std::string>& known_variables() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const auto& [name, _] : setters()) v.push_back(name);
    return v;
  }();
  return names;
}

}  // namespace berth::core
