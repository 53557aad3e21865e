#include "berth/docker/api.hpp"

#include <gtest/gtest.h>

namespace berth::docker {
namespace {
using nlohmann::json;

TEST(ApiVersion, Parse) {
  EXPECT_EQ(parse_api_version("1.41"), (api_version{1, 41}));
  EXPECT_FALSE(parse_api_version(""));
  EXPECT_FALSE(parse_api_version("v1.41"));
  EXPECT_FALSE(parse_api_version("1."));
  EXPECT_FALSE(parse_api_version("1.x"));
  EXPECT_FALSE(parse_api_version("141"));
  EXPECT_EQ(api_version(1, 9).to_string(), "1.9");
  EXPECT_LT((api_version{1, 9}), (api_version{1, 41}));
}

TEST(ApiVersion, Negotiate) {
  EXPECT_EQ(negotiate_version("1.41", "1.12").value(), (api_version{1, 41}));
  // A newer daemon: we speak our max, which it still accepts.
  EXPECT_EQ(negotiate_version("1.47", "1.24").value(), client_max_version);
  // A daemon whose minimum is 1.44.
  EXPECT_EQ(negotiate_version("1.46", "1.44").value(), client_max_version);
  EXPECT_EQ(negotiate_version("1.41", "").value(), (api_version{1, 41}));
  auto too_new = negotiate_version("1.60", "1.50");
  ASSERT_FALSE(too_new);
  EXPECT_NE(too_new.error().message.find("requires API >= 1.50"), std::string::npos);
  auto too_old = negotiate_version("1.20", "1.12");
  ASSERT_FALSE(too_old);
  EXPECT_NE(too_old.error().message.find("older"), std::string::npos);
  EXPECT_FALSE(negotiate_version("garbage", ""));
  EXPECT_FALSE(negotiate_version("1.41", "x"));
}

TEST(Builders, HardenedCreateBody) {
  core::config cfg;
  cfg.replica_id = "r1";
  cfg.sandbox_image = "img:tag";
  cfg.container_memory_bytes = 256ull * 1024 * 1024;
  cfg.container_cpus = 0.5;
  cfg.container_pids = 64;
  cfg.container_network = "none";
  auto spec = hardened_spec(cfg, "default");
  const json b = create_body(spec);
  EXPECT_EQ(b["Image"], "img:tag");
  // The container's init and the MCP server: root with three capabilities, nothing else; the user's
  // commands run as 1000:1000 (berth-sandbox --user switches to it).
  EXPECT_EQ(b["User"], "0:0");
  EXPECT_EQ(b["Labels"]["berth.managed"], "true");
  EXPECT_EQ(b["Labels"]["berth.replica"], "r1");
  EXPECT_EQ(b["Labels"]["berth.pool"], "default");
  const json& h = b["HostConfig"];
  EXPECT_EQ(h["CapDrop"], json::array({"ALL"}));
  EXPECT_EQ(h["CapAdd"], json::array({"SETUID", "SETGID", "KILL"}));
  EXPECT_EQ(h["SecurityOpt"], json::array({"no-new-privileges:true"}));
  EXPECT_EQ(h["Memory"], 256ull * 1024 * 1024);
  EXPECT_EQ(h["NanoCpus"], 500000000);
  EXPECT_EQ(h["PidsLimit"], 64);
  EXPECT_EQ(h["NetworkMode"], "none");
  EXPECT_EQ(h["Init"], true);
  EXPECT_EQ(h["ReadonlyRootfs"], true);
  EXPECT_EQ(h["Privileged"], false);
  const std::string tmp = h["Tmpfs"]["/tmp"];
  const std::string ws = h["Tmpfs"]["/workspace"];
  EXPECT_NE(tmp.find("size=64m"), std::string::npos);
  EXPECT_NE(ws.find("uid=1000"), std::string::npos);
  EXPECT_NE(ws.find("size="), std::string::npos);
  EXPECT_FALSE(b.contains("Cmd"));
  spec.cmd = {"sleep", "1"};
  EXPECT_EQ(create_body(spec)["Cmd"], json::array({"sleep", "1"}));
}

// The pool's shape: the sandbox server is the main process (supervised, PID 1), reached by attach;
// what it writes is the user's data and is not logged by Docker.
TEST(Builders, SandboxServerAsTheMainProcess) {
  core::config cfg;
  auto spec = hardened_spec(cfg, "p");
  EXPECT_EQ(create_body(spec)["OpenStdin"], false);
  EXPECT_EQ(create_body(spec)["HostConfig"]["LogConfig"]["Type"], "none");
  make_sandbox_server_main(spec);
  const json b = create_body(spec);
  EXPECT_EQ(b["Cmd"], json::array({"/usr/local/bin/berth-sandbox", "supervise", "/usr/local/bin/berth-sandbox", "mcp",
                                   "--user", "1000:1000"}));
  EXPECT_EQ(b["OpenStdin"], true);
  EXPECT_EQ(b["StdinOnce"], false);
  EXPECT_EQ(b["HostConfig"]["Init"], false);
  EXPECT_EQ(b["User"], "0:0");
}

TEST(Builders, NetworkConfigurable) {
  core::config cfg;
  cfg.container_network = "bridge";
  const json b = create_body(hardened_spec(cfg, "p"));
  EXPECT_EQ(b["HostConfig"]["NetworkMode"], "bridge");
  EXPECT_EQ(b["NetworkDisabled"], false);
}

TEST(Builders, RuntimeOnlyWhenConfigured) {
  core::config cfg;
  EXPECT_FALSE(create_body(hardened_spec(cfg, "p"))["HostConfig"].contains("Runtime"));  // the daemon's default
  cfg.sandbox_runtime = "runsc";
  EXPECT_EQ(create_body(hardened_spec(cfg, "p"))["HostConfig"]["Runtime"], "runsc");
}

TEST(Builders, ExecBody) {
  exec_spec s;
  s.cmd = {"sh", "-c", "cat"};
  const json b = exec_body(s);
  EXPECT_EQ(b["AttachStdin"], true);
  EXPECT_EQ(b["Tty"], false);
  EXPECT_EQ(b["Cmd"].size(), 3u);
  EXPECT_FALSE(b.contains("User"));
}

TEST(Builders, UrlAndFilters) {
  EXPECT_EQ(url_encode("a b/c=d"), "a%20b%2Fc%3Dd");
  EXPECT_EQ(url_encode("Az09-_.~"), "Az09-_.~");
  const std::string f = label_filters({{"berth.test", "1"}, {"berth.managed", ""}});
  EXPECT_EQ(f, url_encode(R"({"label":["berth.managed","berth.test=1"]})"));
  EXPECT_EQ(versioned({1, 41}, "/containers/json?all=true"), "/v1.41/containers/json?all=true");
}

TEST(Builders, SocketPath) {
  EXPECT_EQ(socket_path_from_host("unix:///var/run/docker.sock").value(), "/var/run/docker.sock");
  EXPECT_EQ(socket_path_from_host("/tmp/d.sock").value(), "/tmp/d.sock");
  EXPECT_FALSE(socket_path_from_host("tcp://127.0.0.1:2375"));
  EXPECT_FALSE(socket_path_from_host("unix://"));
  EXPECT_FALSE(socket_path_from_host(""));
}

TEST(Mapping, Inspect) {
  const auto c = parse_inspect(R"({"Id":"abc","Name":"/n1","State":{"Status":"running","Running":true,"ExitCode":0},
    "Config":{"Image":"img","Labels":{"berth.pool":"p","n":5}},"HostConfig":{"CapDrop":["ALL"]}})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->id, "abc");
  EXPECT_EQ(c->name, "n1");
  EXPECT_TRUE(c->running);
  EXPECT_EQ(c->labels.at("berth.pool"), "p");
  EXPECT_EQ(c->labels.count("n"), 0u);
  EXPECT_EQ(c->raw["HostConfig"]["CapDrop"][0], "ALL");
  EXPECT_FALSE(c->oom_killed);
  const auto oom = parse_inspect(R"({"Id":"d","State":{"Status":"exited","Running":false,"ExitCode":137,"OOMKilled":true}})");
  ASSERT_TRUE(oom);
  EXPECT_TRUE(oom->oom_killed);
  EXPECT_EQ(oom->exit_code, 137);
  EXPECT_FALSE(parse_inspect("{"));
  EXPECT_FALSE(parse_inspect("[]"));
  EXPECT_FALSE(parse_inspect(R"({"State":{}})"));
}

TEST(Mapping, List) {
  const auto l = parse_list(
      R"([{"Id":"a","Names":["/x"],"State":"running","Created":1765000000,"Labels":{"k":"v"}},{"Id":"b","State":"exited"},5,{}])");
  ASSERT_TRUE(l);
  ASSERT_EQ(l->size(), 2u);
  EXPECT_EQ((*l)[0].name, "x");
  EXPECT_EQ((*l)[0].created, 1765000000);
  EXPECT_EQ((*l)[1].created, 0);
  EXPECT_TRUE((*l)[0].running);
  EXPECT_FALSE((*l)[1].running);
  EXPECT_FALSE(parse_list("{}"));
}

TEST(Mapping, ExecWaitCreateVersion) {
  auto e = parse_exec_inspect(R"({"Running":false,"ExitCode":3,"Pid":42})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->exit_code, 3);
  auto r = parse_exec_inspect(R"({"Running":true,"ExitCode":0})");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->exit_code);
  auto w = parse_wait(R"({"StatusCode":137,"Error":{"Message":"boom"}})");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->status_code, 137);
  EXPECT_EQ(w->error, "boom");
  EXPECT_EQ(parse_created_id(R"({"Id":"xyz","Warnings":[]})").value(), "xyz");
  EXPECT_FALSE(parse_created_id(R"({"Warnings":[]})"));
  auto v = parse_version(R"({"ApiVersion":"1.41","MinAPIVersion":"1.12","Version":"20.10"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(v->min_api_version, "1.12");
  EXPECT_FALSE(parse_version(R"({"Version":"x"})"));
}

TEST(Mapping, Event) {
  auto ev = parse_event(R"({"status":"die","id":"abc","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"137","berth.pool":"p"}},"timeNano":5})");
  ASSERT_TRUE(ev);
  EXPECT_EQ(ev->action, "die");
  EXPECT_EQ(ev->id, "abc");
  EXPECT_EQ(ev->attributes.at("exitCode"), "137");
  EXPECT_FALSE(parse_event("not json"));
}

TEST(Mapping, DaemonMessageAndIdempotence) {
  EXPECT_EQ(daemon_message(R"({"message":"No such container: x"})"), "No such container: x");
  EXPECT_EQ(daemon_message("plain text\n"), "plain text");
  EXPECT_TRUE(is_success(op::start, 204));
  EXPECT_TRUE(is_success(op::start, 304));
  EXPECT_TRUE(is_success(op::stop, 304));
  EXPECT_TRUE(is_success(op::remove, 404));
  EXPECT_TRUE(is_success(op::kill, 404));
  EXPECT_TRUE(is_success(op::kill, 409));
  EXPECT_FALSE(is_success(op::start, 404));
  EXPECT_FALSE(is_success(op::remove, 409));
  EXPECT_FALSE(is_success(op::other, 304));
  EXPECT_FALSE(is_success(op::remove, 500));
}

}  // namespace
}  // namespace berth::docker
