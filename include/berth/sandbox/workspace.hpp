#pragma once
// The file tools of berth-sandbox, confined to one root directory (/workspace in the container).
// Confinement: paths are resolved lexically ("..", "." removed; escaping above the root is an
// error), then opened one component at a time with openat(O_NOFOLLOW) from a descriptor of the
// root, so a symlink anywhere on the path is never followed (race-free, no realpath TOCTOU).
// Symlinks are listed but never read through or written through.
// Lifetime: owns the root descriptor. Thread-safety: const methods are safe to call concurrently.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace berth::sandbox {

// What a tool returns: text for the model, and whether it is an error (MCP isError).
struct tool_output {
  std::string text;
  bool is_error = false;
};

struct workspace_limits {
  std::size_t max_read_bytes = 1024u * 1024u;       // read_file cap (the caller may ask for less)
  std::size_t max_write_bytes = 8u * 1024u * 1024u;  // write_file content cap
  std::size_t max_list_entries = 5000;               // list_files cap
  int max_list_depth = 16;                           // recursive list_files depth cap
};

// Lexical confinement: path (relative to root, or absolute under root) -> components below root,
// or an error message. Exposed for tests.
std::variant<std::vector<std::string>, std::string> confine_path(std::string_view root, std::string_view path);

class workspace {
 public:
  // Opens root (which must exist and be a directory). Returns an error message on failure.
  static std::variant<workspace, std::string> open(const std::string& root, workspace_limits limits = {});

  workspace(workspace&& other) noexcept;
  workspace& operator=(workspace&& other) noexcept;
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  ~workspace();

  // One entry per line, sorted: "name" (file), "name/" (directory), "name@" (symlink, not followed).
  // Recursive listings show paths relative to `path`.
  tool_output list_files(std::string_view path, bool recursive) const;
  // The file's bytes, at most max_bytes (capped by limits.max_read_bytes); a longer file is cut
  // and a final line "[truncated: showing N of M bytes]" is appended.
  tool_output read_file(std::string_view path, std::optional<std::size_t> max_bytes) const;
  // Creates or replaces the file; creates missing parent directories.
  tool_output write_file(std::string_view path, std::string_view content) const;

  const std::string& root() const noexcept { return root_; }
  const workspace_limits& limits() const noexcept { return limits_; }

 private:
  workspace(int fd, std::string root, std::string real_root, workspace_limits limits)
      : fd_(fd), root_(std::move(root)), real_root_(std::move(real_root)), limits_(limits) {}

  std::variant<std::vector<std::string>, std::string> resolve(std::string_view path) const;

  int fd_ = -1;
  std::string root_;       // as configured, lexically normalised
  std::string real_root_;  // realpath of root (absolute paths may use either spelling)
  workspace_limits limits_;
};

}  // namespace berth::sandbox
