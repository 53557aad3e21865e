#pragma once
// Static files (the chat UI and the socket.io client bundle), loaded into memory at start-up.
// Only files present at load time can be served, so no request path can escape the folder.
#include <map>
#include <optional>
#include <string>

namespace berth::http {

struct static_file {
  std::string body;
  std::string content_type;
  std::string etag;
};

class static_files {
 public:
  // Loads regular files below `dir` (recursively, at most `max_files`, each under `max_bytes`),
  // mounted at URL prefix `mount` ("/" or "/socket.io/"). Returns the number loaded.
  std::size_t load(const std::string& dir, const std::string& mount, std::size_t max_files = 256,
                   std::size_t max_bytes = 8 * 1024 * 1024);
  // Adds one file under an explicit URL path.
  bool add(const std::string& url_path, const std::string& file_path);
  const static_file* find(const std::string& url_path) const;
  std::size_t size() const noexcept { return files_.size(); }

  static std::string content_type_for(const std::string& path);

 private:
  std::map<std::string, static_file> files_;
};

}  // namespace berth::http
