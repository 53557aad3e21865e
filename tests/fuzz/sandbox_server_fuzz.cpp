// libFuzzer target: berth-sandbox's MCP server state machine (server_fsm::on_line), which reads
// whatever the gateway writes to the sandbox's stdin. Lines are cut at '\n'; file tools act on a
// scratch workspace that is emptied every few hundred executions; a run_command it asks to start
// is reported back as finished (nothing is executed).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "berth/sandbox/server.hpp"
#include "fuzz_input.hpp"

using namespace berth::sandbox;

namespace {
// Never destroyed (the exit handler that removes the directory runs after static destructors).
const std::string& scratch_root() {
  static const std::string& root = *[] {
    const char* base = std::getenv("TMPDIR");
    auto* tmpl = new std::string(std::string(base && *base ? base : "/tmp") + "/berth-fuzz-sandbox-XXXXXX");
    if (::mkdtemp(tmpl->data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_root(), ec);
    });
    return tmpl;
  }();
  return root;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static unsigned runs = 0;
  const auto& root = scratch_root();
  if (++runs % 256 == 0) {  // keep the scratch directory small
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root, ec)) std::filesystem::remove_all(e.path(), ec);
  }
  workspace_limits limits;
  limits.max_read_bytes = 4096;
  limits.max_write_bytes = 4096;
  limits.max_list_entries = 64;
  limits.max_list_depth = 4;
  auto ws = workspace::open(root, limits);
  if (!std::holds_alternative<workspace>(ws)) std::abort();
  server_options opts;
  opts.output_cap = 256;
  server_fsm srv(std::move(std::get<workspace>(ws)), opts);
  berth::fuzz::input in(data, size);
  for (int lines = 0; !in.empty() && lines < 1000; ++lines) {
    const auto line = in.until('\n');
    auto a = line.size() > 2048 ? srv.on_line_too_long(line.size()) : srv.on_line(line);
    for (const auto& out : a.lines)
      if (out.empty() || out.back() != '\n') __builtin_trap();  // every answer is one whole line
    if (a.start) {
      command_result r;
      r.exit_code = static_cast<int>(line.size() % 3);
      r.stdout_text = std::string(line.substr(0, 300));
      r.timed_out = line.size() % 5 == 0;
      (void)srv.on_command_finished(a.start->id, r);
    }
  }
  return 0;
}
