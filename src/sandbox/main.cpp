// berth-sandbox: the MCP stdio server that runs inside each sandbox container.
// Usage: berth-sandbox mcp [--root DIR] [--output-cap BYTES] [--max-timeout-ms MS]
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>

#include "berth/sandbox/server.hpp"
#include "stdio_loop.hpp"

namespace {

constexpr std::string_view usage =
    "usage: berth-sandbox mcp [--root DIR] [--output-cap BYTES] [--max-timeout-ms MS]\n"
    "  Serves the Model Context Protocol over stdin/stdout (newline-delimited JSON-RPC 2.0).\n"
    "  Tools: list_files, read_file, write_file, run_command. Default root: /workspace.\n";

bool parse_size(std::string_view s, std::size_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && out > 0;
}

int fail(const std::string& msg) {
  std::fprintf(stderr, "berth-sandbox: %s\n%.*s", msg.c_str(), static_cast<int>(usage.size()), usage.data());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fwrite(usage.data(), 1, usage.size(), stdout);
    return 0;
  }
  if (argc >= 2 && std::string_view(argv[1]) == "--version") {
    std::puts("berth-sandbox 0.1.0");
    return 0;
  }
  if (argc < 2 || std::string_view(argv[1]) != "mcp") return fail("expected the subcommand \"mcp\"");
  std::string root = "/workspace";
  berth::sandbox::server_options opts;
  for (int i = 2; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) return fail("missing value after " + std::string(a));
    const std::string_view v = argv[++i];
    std::size_t n = 0;
    if (a == "--root") {
      root = std::string(v);
    } else if (a == "--output-cap") {
      if (!parse_size(v, n)) return fail("--output-cap: expected a positive integer, got " + std::string(v));
      opts.output_cap = n;
    } else if (a == "--max-timeout-ms") {
      if (!parse_size(v, n)) return fail("--max-timeout-ms: expected a positive integer, got " + std::string(v));
      opts.max_timeout = std::chrono::milliseconds(static_cast<long long>(n));
      opts.default_timeout = std::min(opts.default_timeout, opts.max_timeout);
    } else {
      return fail("unknown option " + std::string(a));
    }
  }
  auto ws = berth::sandbox::workspace::open(root);
  if (auto* err = std::get_if<std::string>(&ws)) return fail(*err);
  const std::string workdir = std::get<berth::sandbox::workspace>(ws).root();
  berth::sandbox::server_fsm fsm(std::move(std::get<berth::sandbox::workspace>(ws)), opts);
  return berth::sandbox::run_stdio_loop(fsm, workdir, STDIN_FILENO, STDOUT_FILENO);
}
