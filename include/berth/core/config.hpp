#pragma once
// Berth configuration: every setting from the environment (and an optional .env file).
// Parsing is pure (a map in, a config or one precise error out) so it is tested without a process.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <boost/system/result.hpp>

#include "berth/core/client_address.hpp"

namespace berth::core {

struct config {
  // network
  std::string host = "0.0.0.0";
  std::uint16_t port = 3000;
  std::string socketio_path = "/socket.io/";
  std::string replica_id;  // defaults to the hostname
  // host:port under which the load balancer reaches this replica; a hash of it prefixes every
  // Engine.IO sid (sticky routing). Empty: this host's IPv4 address and `port`.
  std::string route_address;
  std::size_t max_connections = 50000;
  std::vector<std::string> cors_origins;  // empty: no CORS headers; "*" allows any
  // engine.io
  std::chrono::milliseconds ping_interval{25000};
  std::chrono::milliseconds ping_timeout{20000};
  std::chrono::milliseconds connect_timeout{45000};
  std::chrono::milliseconds upgrade_timeout{10000};
  std::size_t max_http_buffer_size = 1000000;
  // dependencies
  std::string redis_url = "redis://127.0.0.1:6379";
  // Redis Sentinel: when set, the master of `redis_sentinel_master` is found through these
  // sentinels ("host:port,host:port", validated when the client is built) and REDIS_URL's
  // host/port are ignored (its password and db still apply).
  std::string redis_sentinels;
  std::string redis_sentinel_master = "mymaster";
  std::string redis_sentinel_password;  // secret: AUTH on the sentinels
  std::string redis_password;           // secret: AUTH on Redis when REDIS_URL carries none
  std::string docker_host = "unix:///var/run/docker.sock";
  // pool
  std::string sandbox_image = "berth-sandbox:latest";
  bool enable_container_pool = true;
  bool pool_prepare_mcp = true;  // idle containers get their sandbox MCP exec opened in advance
  std::size_t pool_min_size = 10;
  std::size_t pool_max_size = 100;
  std::chrono::milliseconds pool_idle_timeout{900000};
  std::chrono::milliseconds acquire_timeout{30000};
  // A released container is scrubbed (berth/reset) and reused, at most pool_max_uses sessions and
  // for at most pool_max_age; false: destroyed at release, as before recycling existed.
  bool pool_recycle = true;
  std::size_t pool_max_uses = 100;
  std::chrono::milliseconds pool_max_age{3600000};
  // Cluster-wide cap on sandbox containers (every replica's, counted in Redis); 0: no cap.
  std::size_t max_containers = 1000;
  std::uint64_t container_memory_bytes = 512ull * 1024 * 1024;
  double container_cpus = 1.0;
  std::int64_t container_pids = 256;
  std::string container_network = "none";
  // OCI runtime of sandbox containers as the daemon names it (e.g. runsc for gVisor); empty: the
  // daemon's default.
  std::string sandbox_runtime;
  // sessions and limits
  std::size_t max_requests_per_user = 5;
  std::chrono::milliseconds session_idle_timeout{900000};
  // A session with no socket for this long hibernates: /workspace is saved in Redis (at most
  // workspace_save_max_bytes of tar.gz) and its container goes back to the pool.
  std::chrono::milliseconds session_detach_grace{30000};
  // Connection state recovery (Socket.IO 4.6+): how long a disconnected socket's missed events
  // are kept (in Redis) for its client to recover them (0: off), and at most how many per socket.
  std::chrono::milliseconds recovery_max_disconnection{120000};
  std::size_t recovery_max_packets = 1000;
  std::size_t workspace_save_max_bytes = 2u * 1024u * 1024u;
  // Without auth: live sessions one client address may hold (0: no cap).
  std::size_t max_sessions_per_address = 100;
  // How often one replica (a Redis lock picks which) removes orphaned containers: labelled
  // berth.managed, owner replica's heartbeat gone, referenced by no live session.
  std::chrono::milliseconds orphan_reap_interval{60000};
  std::size_t max_message_bytes = 100000;
  std::string auth_jwt_secret;   // at least min_jwt_secret_bytes when set
  std::string auth_jwt_audience;  // when set, a token's "aud" must name it
  std::string auth_jwt_issuer;    // when set, a token's "iss" must equal it
  bool allow_user_api_key = false;
  // abuse limits (docs/HARDENING.md); 0 turns a limit off
  trusted_proxies proxies;  // TRUSTED_PROXIES: peers whose X-Forwarded-For is believed
  std::size_t max_connections_per_address = 500;  // TCP connections open at once per peer (trusted proxies exempt)
  std::size_t max_engineio_sessions_per_address = 500;     // Engine.IO sessions open at once per client address
  std::uint32_t new_engineio_sessions_per_address_per_minute = 600;  // token bucket per client address
  std::uint32_t socket_events_per_second = 20;    // token bucket per Socket.IO socket
  std::uint32_t socket_event_burst = 100;
  // A socket sending at least 10x its rate for this many consecutive seconds is disconnected.
  std::uint32_t socket_flood_disconnect_seconds = 5;
  // Events one user may send per second over all their sockets on this replica (token bucket).
  std::uint32_t user_events_per_second = 40;
  std::uint32_t user_event_burst = 200;
  // LLM tokens (input + output, as the provider reports them) one user may spend per minute
  // across the cluster (counted in Redis); past it a turn ends with RATE_LIMITED.
  std::uint64_t llm_tokens_per_user_per_minute = 500'000;
  // A tool's result is cut to this many bytes before it reaches the history, the LLM or the client.
  std::uint64_t max_tool_output_bytes = 64 * 1024;
  // Bytes one connection may hold (partial inbound message + binary attachments + outbound
  // queue); also the outbound queue's own bound. Worst case: this x MAX_CONNECTIONS, hence:
  std::uint64_t max_connection_buffer_bytes = 8'000'000;
  // Bytes all connections together may hold; past it new sessions get 503 and connections
  // that want to buffer more inbound data are closed.
  std::uint64_t max_process_buffer_bytes = 256ull * 1024 * 1024;
  // llm / agent
  std::string llm_provider = "local";
  std::string llm_model;
  std::string gemini_api_key;
  std::string openai_api_key;
  std::string openai_base_url = "https://api.openai.com/v1";
  std::string anthropic_api_key;
  std::string anthropic_base_url = "https://api.anthropic.com";
  std::string gemini_base_url = "https://generativelanguage.googleapis.com";
  std::uint32_t max_output_tokens = 8192;
  std::uint32_t max_history_tokens = 30000;
  std::uint32_t history_ttl_seconds = 86400;
  // agent:delta pacing per socket: a burst of 8, then one event per interval with the text
  // merged (0: one event per piece the model sends).
  std::chrono::milliseconds stream_delta_interval{20};
  std::uint32_t max_tool_rounds = 8;
  std::chrono::milliseconds tool_timeout{30000};
  // A turn that works (waits on the model, runs tools) longer than this in total is stopped with
  // agent:error TURN_TIMEOUT; time awaiting the user's approval does not count. 0: no deadline.
  std::chrono::milliseconds turn_deadline{300000};
  std::string mcp_config_path;  // MCP_CONFIG_FILE: mcp-config.json with extra MCP servers
  std::string llm_ca_file;  // extra CA bundle for LLM HTTPS (e.g. a corporate proxy)
  // process
  std::string log_level = "info";
  std::string log_format = "text";
  unsigned threads = 1;
  std::string static_dir;   // chat UI files; empty: built-in default path
  std::string client_bundle_dir;  // socket.io-client dist/ folder
  std::string diagnostics_namespace;  // e.g. "/diagnostics": echo/ack/binary handlers for e2e tests; empty = off
  std::chrono::milliseconds shutdown_grace{5000};
};

// Shortest AUTH_JWT_SECRET accepted (RFC 7518 3.2: an HS256 key of at least 256 bits).
inline constexpr std::size_t min_jwt_secret_bytes = 32;

// One line that names the variable, the value and what is allowed.
struct config_error {
  std::string variable;
  std::string value;
  std::string allowed;
  std::string to_string() const;
};

using env_map = std::map<std::string, std::string>;

// Parses a .env file body: KEY=VALUE lines, '#' comments, optional quotes, optional `export `.
env_map parse_dotenv(std::string_view body);

// Builds a config from variables; unknown variables are ignored, invalid ones are an error.
boost::system::result<config, config_error> parse_config(const env_map& vars);

// The process environment overlaid on .env (the environment wins, as docker compose does).
env_map load_environment(const std::string& dotenv_path = ".env");

// Names of every variable parse_config reads, for .env.example and the tests that keep it honest.
const std::vector<std::string>& known_variables();

// Found by ADL from result<config, config_error>::value(): reports the error if value() is misused.
[[noreturn]] void throw_exception_from_error(const config_error& e, const boost::source_location& loc);

}  // namespace berth::core
