#include "berth/http/static_files.hpp"

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace berth::http {

namespace fs = std::filesystem;

std::string static_files::content_type_for(const std::string& path) {
  auto ext = fs::path(path).extension().string();
  if (ext == ".html") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "application/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json; charset=utf-8";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

bool static_files::add(const std::string& url_path, const std::string& file_path) {
  std::ifstream in(file_path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  static_file f;
  f.body = ss.str();
  f.content_type = content_type_for(file_path);
  f.etag = "\"" + std::to_string(std::hash<std::string>{}(f.body)) + "\"";
  files_[url_path] = std::move(f);
  return true;
}

std::size_t static_files::load(const std::string& dir, const std::string& mount, std::size_t max_files,
                               std::size_t max_bytes) {
  std::error_code ec;
  if (dir.empty() || !fs::is_directory(dir, ec)) return 0;
  std::size_t loaded = 0;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator() && loaded < max_files; it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->file_size(ec) > max_bytes) continue;
    auto rel = fs::relative(it->path(), dir, ec).generic_string();
    if (ec || rel.empty() || rel.front() == '.') continue;
    if (add(mount + rel, it->path().string())) ++loaded;
  }
  if (auto index = files_.find(mount + "index.html"); index != files_.end()) files_[mount] = index->second;
  return loaded;
}

const static_file* static_files::find(const std::string& url_path) const {
  auto it = files_.find(url_path);
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace berth::http
