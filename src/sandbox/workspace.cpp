#include "berth/sandbox/workspace.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace berth::sandbox {

namespace {

using components = std::vector<std::string>;

// Owns one descriptor.
class fd_guard {
 public:
  explicit fd_guard(int fd = -1) noexcept : fd_(fd) {}
  fd_guard(fd_guard&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_guard& operator=(fd_guard&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  ~fd_guard() { reset(); }
  int get() const noexcept { return fd_; }
  void reset() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// Lexical normalisation. Returns false when ".." climbs above the start (relative paths only;
// for absolute paths ".." at "/" stays at "/", as the kernel does).
bool normalise(std::string_view path, bool absolute, components& out) {
  std::size_t pos = 0;
  while (pos <= path.size()) {
    auto slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view comp = path.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") {
      if (out.empty()) {
        if (!absolute) return false;
        continue;
      }
      out.pop_back();
      continue;
    }
    out.emplace_back(comp);
  }
  return true;
}

std::string join(const std::string& root, const components& comps, std::size_t n) {
  std::string s = root;
  for (std::size_t i = 0; i < n && i < comps.size(); ++i) {
    if (s.empty() || s.back() != '/') s.push_back('/');
    s += comps[i];
  }
  return s;
}

std::string shorten(std::string_view s) {
  constexpr std::size_t max = 200;
  if (s.size() <= max) return std::string(s);
  return std::string(s.substr(0, max)) + "...";
}

tool_output fail(std::string text) { return tool_output{std::move(text), true}; }

// Why openat(dirfd, name) failed, in words, with the path shown relative to the workspace.
std::string describe_open_error(int dirfd, const std::string& name, int err, const std::string& shown) {
  if (err == ELOOP || err == ENOTDIR || err == EMLINK) {
    struct stat st{};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISLNK(st.st_mode)) return "symlink is not followed: " + shown;
      if (!S_ISDIR(st.st_mode)) return "not a directory: " + shown;
    }
  }
  if (err == ENOENT) return "no such file or directory: " + shown;
  if (err == EACCES || err == EPERM) return "permission denied: " + shown;
  if (err == EISDIR) return "is a directory: " + shown;
  return std::string(std::strerror(err)) + ": " + shown;
}

// Opens the directory comps[0..n) below root_fd without following symlinks; with create, missing
// directories are made (0755).
std::variant<fd_guard, std::string> open_dir(int root_fd, const std::string& root, const components& comps,
                                             std::size_t n, bool create) {
  fd_guard cur(::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (cur.get() < 0) return describe_open_error(root_fd, ".", errno, root);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string& comp = comps[i];
    int next = ::openat(cur.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(cur.get(), comp.c_str(), 0755) != 0 && errno != EEXIST)
        return describe_open_error(cur.get(), comp, errno, join(root, comps, i + 1));
      next = ::openat(cur.get(), comp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) return describe_open_error(cur.get(), comp, errno, join(root, comps, i + 1));
    cur = fd_guard(next);
  }
  return cur;
}

struct listing {
  std::vector<std::string> lines;
  bool truncated = false;
};

void list_dir(int dirfd, const std::string& prefix, int depth, bool recursive, const workspace_limits& lim,
              listing& out) {
  int dup_fd = ::dup(dirfd);
  if (dup_fd < 0) return;
  DIR* dir = ::fdopendir(dup_fd);
  if (dir == nullptr) {
    ::close(dup_fd);
    return;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(dir)) {
    const std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
    // Bound the memory of one directory read as well as the output.
    if (names.size() > lim.max_list_entries) break;
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    if (out.lines.size() >= lim.max_list_entries) {
      out.truncated = true;
      return;
    }
    struct stat st{};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    const std::string rel = prefix + name;
    if (S_ISDIR(st.st_mode)) {
      out.lines.push_back(rel + "/");
      if (!recursive) continue;
      if (depth + 1 >= lim.max_list_depth) {
        out.truncated = true;
        continue;
      }
      fd_guard sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.get() >= 0) list_dir(sub.get(), rel + "/", depth + 1, recursive, lim, out);
    } else if (S_ISLNK(st.st_mode)) {
      out.lines.push_back(rel + "@");
    } else {
      out.lines.push_back(rel);
    }
  }
}

std::string normalised_root(const std::string& root) {
  components comps;
  normalise(root, true, comps);
  return join("/", comps, comps.size());
}

}  // namespace

std::variant<std::vector<std::string>, std::string> confine_path(std::string_view root, std::string_view path) {
  if (path.find('\0') != std::string_view::npos) return std::string("path contains a NUL byte");
  components out;
  if (!path.empty() && path.front() == '/') {
    components root_comps;
    normalise(root, true, root_comps);
    components abs;
    normalise(path, true, abs);
    if (abs.size() < root_comps.size() || !std::equal(root_comps.begin(), root_comps.end(), abs.begin()))
      return "path is outside the workspace (" + join("/", root_comps, root_comps.size()) + "): " + shorten(path);
    out.assign(abs.begin() + static_cast<std::ptrdiff_t>(root_comps.size()), abs.end());
    return out;
  }
  if (!normalise(path, false, out)) return "path escapes the workspace: " + shorten(path);
  return out;
}

std::variant<workspace, std::string> workspace::open(const std::string& root, workspace_limits limits) {
  if (root.empty() || root.front() != '/') return std::string("workspace root must be an absolute path");
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return "cannot open workspace root " + root + ": " + std::strerror(errno);
  char buf[PATH_MAX];
  std::string real = ::realpath(root.c_str(), buf) != nullptr ? std::string(buf) : root;
  return workspace(fd, normalised_root(root), normalised_root(real), limits);
}

workspace::workspace(workspace&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      root_(std::move(other.root_)),
      real_root_(std::move(other.real_root_)),
      limits_(other.limits_) {}

workspace& workspace::operator=(workspace&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    root_ = std::move(other.root_);
    real_root_ = std::move(other.real_root_);
    limits_ = other.limits_;
  }
  return *this;
}

workspace::~workspace() {
  if (fd_ >= 0) ::close(fd_);
}

std::variant<std::vector<std::string>, std::string> workspace::resolve(std::string_view path) const {
  auto r = confine_path(root_, path);
  if (std::holds_alternative<std::string>(r) && real_root_ != root_ && !path.empty() && path.front() == '/') {
    auto alt = confine_path(real_root_, path);
    if (std::holds_alternative<components>(alt)) return alt;
  }
  return r;
}

tool_output workspace::list_files(std::string_view path, bool recursive) const {
  auto r = resolve(path);
  if (auto* e = std::get_if<std::string>(&r)) return fail(*e);
  const auto& comps = std::get<components>(r);
  auto d = open_dir(fd_, root_, comps, comps.size(), false);
  if (auto* e = std::get_if<std::string>(&d)) return fail(*e);
  listing out;
  list_dir(std::get<fd_guard>(d).get(), "", 0, recursive, limits_, out);
  std::string text;
  for (const auto& l : out.lines) {
    text += l;
    text.push_back('\n');
  }
  if (out.lines.empty()) text = "(empty directory)\n";
  if (out.truncated) text += "[truncated: listing limited to " + std::to_string(limits_.max_list_entries) +
                             " entries and depth " + std::to_string(limits_.max_list_depth) + "]\n";
  return tool_output{std::move(text), false};
}

tool_output workspace::read_file(std::string_view path, std::optional<std::size_t> max_bytes) const {
  auto r = resolve(path);
  if (auto* e = std::get_if<std::string>(&r)) return fail(*e);
  const auto& comps = std::get<components>(r);
  if (comps.empty()) return fail("is a directory: " + root_);
  auto d = open_dir(fd_, root_, comps, comps.size() - 1, false);
  if (auto* e = std::get_if<std::string>(&d)) return fail(*e);
  const int dirfd = std::get<fd_guard>(d).get();
  const std::string shown = join(root_, comps, comps.size());
  fd_guard f(::openat(dirfd, comps.back().c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (f.get() < 0) return fail(describe_open_error(dirfd, comps.back(), errno, shown));
  struct stat st{};
  if (::fstat(f.get(), &st) != 0) return fail(describe_open_error(dirfd, comps.back(), errno, shown));
  if (S_ISDIR(st.st_mode)) return fail("is a directory: " + shown);
  if (!S_ISREG(st.st_mode)) return fail("not a regular file: " + shown);
  const std::size_t cap = std::min(max_bytes.value_or(limits_.max_read_bytes), limits_.max_read_bytes);
  std::string data;
  data.resize(cap);
  std::size_t got = 0;
  while (got < cap) {
    const ssize_t n = ::read(f.get(), data.data() + got, cap - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(describe_open_error(dirfd, comps.back(), errno, shown));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  // The size may change while we read: decide on truncation by trying to read one more byte.
  bool more = false;
  if (got == cap) {
    char c = 0;
    ssize_t n = 0;
    do n = ::read(f.get(), &c, 1);
    while (n < 0 && errno == EINTR);
    more = n > 0;
  }
  if (more) {
    const auto total = std::max<std::size_t>(static_cast<std::size_t>(st.st_size), got + 1);
    data += "\n[truncated: showing " + std::to_string(got) + " of " + std::to_string(total) + " bytes]\n";
  }
  return tool_output{std::move(data), false};
}

tool_output workspace::write_file(std::string_view path, std::string_view content) const {
  if (content.size() > limits_.max_write_bytes)
    return fail("content too large: " + std::to_string(content.size()) + " bytes (limit " +
                std::to_string(limits_.max_write_bytes) + ")");
  auto r = resolve(path);
  if (auto* e = std::get_if<std::string>(&r)) return fail(*e);
  const auto& comps = std::get<components>(r);
  if (comps.empty()) return fail("is a directory: " + root_);
  auto d = open_dir(fd_, root_, comps, comps.size() - 1, true);
  if (auto* e = std::get_if<std::string>(&d)) return fail(*e);
  const int dirfd = std::get<fd_guard>(d).get();
  const std::string shown = join(root_, comps, comps.size());
  fd_guard f(::openat(dirfd, comps.back().c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0644));
  if (f.get() < 0) return fail(describe_open_error(dirfd, comps.back(), errno, shown));
  struct stat st{};
  if (::fstat(f.get(), &st) != 0 || !S_ISREG(st.st_mode)) return fail("not a regular file: " + shown);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(f.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::string(std::strerror(errno)) + ": " + shown);
    done += static_cast<std::size_t>(n);
  }
  return tool_output{"wrote " + std::to_string(done) + " bytes to " + shown, false};
}

}  // namespace berth::sandbox
