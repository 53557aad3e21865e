#include <gtest/gtest.h>

#include "berth/core/config.hpp"

using namespace berth::core;

TEST(config, defaults_match_the_architecture_table) {
  auto c = parse_config({});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 3000);
  EXPECT_EQ(c->pool_min_size, 10u);
  EXPECT_EQ(c->pool_max_size, 100u);
  EXPECT_EQ(c->max_requests_per_user, 5u);
  EXPECT_EQ(c->ping_interval.count(), 25000);
  EXPECT_EQ(c->ping_timeout.count(), 20000);
  EXPECT_EQ(c->max_http_buffer_size, 1000000u);
  EXPECT_EQ(c->llm_provider, "local");
  EXPECT_EQ(c->orphan_reap_interval.count(), 60000);
  EXPECT_TRUE(c->pool_prepare_mcp);
  EXPECT_FALSE(c->replica_id.empty());
}

TEST(config, orphan_reap_interval) {
  auto c = parse_config({{"ORPHAN_REAP_INTERVAL_MS", "5000"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->orphan_reap_interval.count(), 5000);
}

TEST(config, reads_values) {
  auto c = parse_config({{"PORT", "4000"}, {"POOL_MIN_SIZE", "2"}, {"ENABLE_CONTAINER_POOL", "false"},
                         {"POOL_PREPARE_MCP", "false"}, {"CORS_ORIGINS", "http://a.example, http://b.example"}, {"CONTAINER_MEMORY", "256m"},
                         {"LLM_PROVIDER", "anthropic"}, {"REPLICA_ID", "r1"}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 4000);
  EXPECT_EQ(c->pool_min_size, 2u);
  EXPECT_FALSE(c->enable_container_pool);
  EXPECT_FALSE(c->pool_prepare_mcp);
  ASSERT_EQ(c->cors_origins.size(), 2u);
  EXPECT_EQ(c->cors_origins[1], "http://b.example");
  EXPECT_EQ(c->container_memory_bytes, 256ull * 1024 * 1024);
  EXPECT_EQ(c->llm_provider, "anthropic");
  EXPECT_EQ(c->replica_id, "r1");
}

TEST(config, invalid_values_name_variable_value_and_allowed) {
  struct bad {
    const char* name;
    const char* value;
  } cases[] = {{"PORT", "70000"},          {"PORT", "abc"},           {"POOL_MAX_SIZE", "0"},
               {"ENABLE_CONTAINER_POOL", "maybe"}, {"LLM_PROVIDER", "gpt"}, {"REDIS_URL", "http://x"},
               {"DOCKER_HOST", "tcp://1.2.3.4"}, {"CONTAINER_MEMORY", "1k"}, {"CONTAINER_CPUS", "-1"},
               {"PING_INTERVAL_MS", "5"},    {"LOG_FORMAT", "xml"},     {"SOCKETIO_PATH", "socket.io"},
               {"ORPHAN_REAP_INTERVAL_MS", "999"}};
  for (const auto& b : cases) {
    auto c = parse_config({{b.name, b.value}});
    ASSERT_FALSE(c) << b.name << "=" << b.value;
    EXPECT_EQ(c.error().variable, b.name);
    EXPECT_EQ(c.error().value, b.value);
    auto line = c.error().to_string();
    EXPECT_NE(line.find(b.name), std::string::npos);
    EXPECT_NE(line.find("allowed"), std::string::npos);
  }
}

TEST(config, a_bad_redis_url_with_a_password_is_not_echoed) {
  auto c = parse_config({{"REDIS_URL", "http://:hunter2@redis:6379"}});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().variable, "REDIS_URL");
  EXPECT_EQ(c.error().to_string().find("hunter2"), std::string::npos) << c.error().to_string();
}

TEST(config, redis_sentinel_settings) {
  auto d = parse_config({}).value();
  EXPECT_TRUE(d.redis_sentinels.empty());
  EXPECT_EQ(d.redis_sentinel_master, "mymaster");
  auto c = parse_config({{"REDIS_SENTINELS", "s1:26379,s2"},
                         {"REDIS_SENTINEL_MASTER", "berth"},
                         {"REDIS_SENTINEL_PASSWORD", "sp"},
                         {"REDIS_PASSWORD", "rp"},
                         {"REDIS_URL", "redis://ignored/2"}})
               .value();
  EXPECT_EQ(c.redis_sentinels, "s1:26379,s2");
  EXPECT_EQ(c.redis_sentinel_master, "berth");
  EXPECT_EQ(c.redis_sentinel_password, "sp");
  EXPECT_EQ(c.redis_password, "rp");
  // Empty values (a copied .env.example) keep the defaults.
  EXPECT_EQ(parse_config({{"REDIS_SENTINEL_MASTER", ""}}).value().redis_sentinel_master, "mymaster");
}

TEST(config, min_above_max_is_rejected) {
  auto c = parse_config({{"POOL_MIN_SIZE", "20"}, {"POOL_MAX_SIZE", "10"}});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().variable, "POOL_MIN_SIZE");
}

TEST(config, empty_optional_values_mean_default) {
  auto c = parse_config({{"PORT", ""}, {"GEMINI_API_KEY", ""}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->port, 3000);
}

TEST(dotenv, parses_comments_quotes_and_export) {
  auto m = parse_dotenv("# comment\nPORT=1234\nexport HOST = 127.0.0.1\nA=\"quoted # not comment\"\nB=x # trailing\n\nbad line\n");
  EXPECT_EQ(m["PORT"], "1234");
  EXPECT_EQ(m["HOST"], "127.0.0.1");
  EXPECT_EQ(m["A"], "quoted # not comment");
  EXPECT_EQ(m["B"], "x");
  EXPECT_EQ(m.count("bad line"), 0u);
}

TEST(config, known_variables_cover_the_architecture_list) {
  const auto& names = known_variables();
  for (const char* n : {"PORT", "HOST", "REPLICA_ID", "REDIS_URL", "DOCKER_HOST", "SANDBOX_IMAGE",
                        "ENABLE_CONTAINER_POOL", "POOL_MIN_SIZE", "POOL_MAX_SIZE", "POOL_IDLE_TIMEOUT_MS",
                        "ACQUIRE_TIMEOUT_MS", "MAX_REQUESTS_PER_USER", "SESSION_IDLE_TIMEOUT_MS", "CONTAINER_MEMORY",
                        "CONTAINER_CPUS", "CONTAINER_PIDS", "CONTAINER_NETWORK", "LLM_PROVIDER", "LLM_MODEL",
                        "GEMINI_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                        "MAX_OUTPUT_TOKENS", "MAX_HISTORY_TOKENS", "HISTORY_TTL_SECONDS", "MAX_TOOL_ROUNDS",
                        "TOOL_TIMEOUT_MS", "PING_INTERVAL_MS", "PING_TIMEOUT_MS", "MAX_HTTP_BUFFER_SIZE",
                        "MAX_CONNECTIONS", "CORS_ORIGINS", "AUTH_JWT_SECRET", "LOG_LEVEL", "LOG_FORMAT", "THREADS"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
}

TEST(config, abuse_limit_defaults_and_values) {
  auto d = parse_config({});
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->proxies.empty());  // X-Forwarded-For is believed from nobody by default
  EXPECT_EQ(d->max_connections_per_address, 500u);
  EXPECT_EQ(d->max_engineio_sessions_per_address, 500u);
  EXPECT_EQ(d->new_engineio_sessions_per_address_per_minute, 600u);
  EXPECT_EQ(d->socket_events_per_second, 20u);
  EXPECT_EQ(d->socket_event_burst, 100u);
  EXPECT_EQ(d->socket_flood_disconnect_seconds, 5u);
  EXPECT_EQ(d->max_connection_buffer_bytes, 8'000'000u);
  EXPECT_EQ(d->max_process_buffer_bytes, 256ull * 1024 * 1024);

  auto c = parse_config({{"TRUSTED_PROXIES", "172.16.0.0/12, 10.0.0.5"},
                         {"MAX_CONNECTIONS_PER_ADDRESS", "0"},
                         {"NEW_ENGINEIO_SESSIONS_PER_ADDRESS_PER_MINUTE", "30"},
                         {"SOCKET_EVENTS_PER_SECOND", "5"},
                         {"MAX_CONNECTION_BUFFER_BYTES", "2m"},
                         {"MAX_PROCESS_BUFFER_BYTES", "0"}});
  ASSERT_TRUE(c) << c.error().to_string();
  EXPECT_EQ(c->proxies.networks().size(), 2u);
  EXPECT_EQ(c->max_connections_per_address, 0u);
  EXPECT_EQ(c->new_engineio_sessions_per_address_per_minute, 30u);
  EXPECT_EQ(c->socket_events_per_second, 5u);
  EXPECT_EQ(c->max_connection_buffer_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(c->max_process_buffer_bytes, 0u);
}

TEST(config, abuse_limit_errors) {
  auto bad_proxy = parse_config({{"TRUSTED_PROXIES", "10.0.0.0/8,nginx"}});
  ASSERT_FALSE(bad_proxy);
  EXPECT_EQ(bad_proxy.error().variable, "TRUSTED_PROXIES");
  EXPECT_NE(bad_proxy.error().allowed.find("\"nginx\""), std::string::npos);
  EXPECT_FALSE(parse_config({{"MAX_CONNECTION_BUFFER_BYTES", "0"}}));
  EXPECT_FALSE(parse_config({{"MAX_PROCESS_BUFFER_BYTES", "12"}}));
  // A connection must be able to hold one whole message.
  auto small = parse_config({{"MAX_CONNECTION_BUFFER_BYTES", "100000"}, {"MAX_HTTP_BUFFER_SIZE", "200000"}});
  ASSERT_FALSE(small);
  EXPECT_EQ(small.error().variable, "MAX_CONNECTION_BUFFER_BYTES");
}

TEST(config, short_jwt_secret_is_refused_without_printing_it) {
  auto c = parse_config({{"AUTH_JWT_SECRET", "correct horse battery staple"}});  // 28 bytes
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().variable, "AUTH_JWT_SECRET");
  const auto line = c.error().to_string();
  EXPECT_EQ(line.find("horse"), std::string::npos) << line;
  EXPECT_NE(line.find("28 bytes"), std::string::npos) << line;
  EXPECT_NE(line.find("at least 32 bytes"), std::string::npos) << line;
  auto ok = parse_config({{"AUTH_JWT_SECRET", std::string(32, 'k')}, {"AUTH_JWT_AUDIENCE", "berth"}, {"AUTH_JWT_ISSUER", "https://idp.example"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->auth_jwt_audience, "berth");
  EXPECT_EQ(ok->auth_jwt_issuer, "https://idp.example");
}

TEST(config, jwt_audience_without_secret_is_a_mistake) {
  auto c = parse_config({{"AUTH_JWT_AUDIENCE", "berth"}});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().variable, "AUTH_JWT_AUDIENCE");
}

TEST(config, route_address_is_host_colon_port) {
  auto ok = parse_config({{"ROUTE_ADDRESS", "10.0.0.5:3000"}});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->route_address, "10.0.0.5:3000");
  EXPECT_TRUE(parse_config({{"ROUTE_ADDRESS", ""}}));  // empty: derived at start-up
  for (const char* bad : {"10.0.0.5", ":3000", "host:", "host:0", "host:99999", "host:30x"}) {
    auto r = parse_config({{"ROUTE_ADDRESS", bad}});
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().variable, "ROUTE_ADDRESS");
  }
}
