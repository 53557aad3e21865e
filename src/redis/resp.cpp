#include "berth/redis/resp.hpp"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <cstdio>
#include <memory>

namespace berth::redis {

namespace {

// hiredis builds its own redisReply tree; we copy it into our value type and free it at once,
// so no hiredis object escapes this file.
reply convert(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING: return reply::make_string(std::string(r->str, r->len));
    case REDIS_REPLY_STATUS: return reply::make_status(std::string(r->str, r->len));
    case REDIS_REPLY_ERROR: return reply::make_error(std::string(r->str, r->len));
    case REDIS_REPLY_INTEGER: return reply::make_integer(static_cast<std::int64_t>(r->integer));
    case REDIS_REPLY_ARRAY: {
      std::vector<reply> elems;
      elems.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) elems.push_back(convert(r->element[i]));
      return reply::make_array(std::move(elems));
    }
    default: return reply::make_nil();  // REDIS_REPLY_NIL (RESP2 nil bulk and nil array)
  }
}

struct reply_deleter {
  void operator()(void* p) const noexcept { freeReplyObject(p); }
};

// hiredis's own reply functions with createArray bounded. A refused header makes hiredis fail
// the read ("Out of memory"), which next() then reports precisely.
void* bounded_create_array(const redisReadTask* task, int elements) {
  auto* guard = static_cast<resp_reader::array_guard*>(task->privdata);
  if (elements < 0 || static_cast<std::size_t>(elements) > guard->limit) {
    guard->refused = elements;
    return nullptr;
  }
  return guard->hiredis_fn->createArray(task, elements);
}

// The same table for every reader (hiredis's defaults are one static table of libhiredis).
redisReplyObjectFunctions* bounded_functions(const redisReplyObjectFunctions* defaults) {
  static redisReplyObjectFunctions fn = [defaults] {
    auto f = *defaults;
    f.createArray = bounded_create_array;
    return f;
  }();
  return &fn;
}

}  // namespace

resp_reader::resp_reader(std::size_t max_buffered, std::size_t max_array_elements)
    : max_buffered_(max_buffered), guard_{max_array_elements} {
  create_reader();
}

void resp_reader::create_reader() {
  r_ = redisReaderCreate();
  if (r_ == nullptr) throw std::bad_alloc();
  guard_.hiredis_fn = r_->fn;
  r_->fn = bounded_functions(r_->fn);
  r_->privdata = &guard_;
}

resp_reader::~resp_reader() { redisReaderFree(r_); }

std::size_t resp_reader::buffered() const noexcept { return r_->len - r_->pos; }

void resp_reader::reset() {
  redisReaderFree(r_);
  r_ = nullptr;
  guard_.refused = -1;
  create_reader();
  error_.clear();
}

core::result<void> resp_reader::feed(std::string_view bytes) {
  if (!error_.empty()) return core::make_error(core::errc::internal, error_);
  if (buffered() + bytes.size() > max_buffered_) {
    error_ = "redis protocol: reply larger than " + std::to_string(max_buffered_) + " bytes";
    return core::make_error(core::errc::internal, error_);
  }
  if (bytes.empty()) return {};
  if (redisReaderFeed(r_, bytes.data(), bytes.size()) != REDIS_OK) {
    error_ = std::string("redis protocol: ") + r_->errstr;
    return core::make_error(core::errc::internal, error_);
  }
  return {};
}

core::result<std::optional<reply>> resp_reader::next() {
  if (!error_.empty()) return core::make_error(core::errc::internal, error_);
  void* raw = nullptr;
  if (redisReaderGetReply(r_, &raw) != REDIS_OK) {
    error_ = guard_.refused != -1 ? "redis protocol: array of " + std::to_string(guard_.refused) +
                                        " elements refused (at most " + std::to_string(guard_.limit) + ")"
                                  : std::string("redis protocol: ") + r_->errstr;
    return core::make_error(core::errc::internal, error_);
  }
  if (raw == nullptr) return std::optional<reply>{};
  std::unique_ptr<void, reply_deleter> owned(raw);
  return std::optional<reply>{convert(static_cast<const redisReply*>(raw))};
}

void append_command(std::string& out, std::span<const std::string> args) {
  // Written by hand rather than via redisFormatCommandArgv's malloc'd buffer: the same RESP
  // bytes (tested against it), one fewer allocation per command on the hot path.
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const auto& a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
}

std::string format_command(std::span<const std::string> args) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* target = nullptr;
  int n = redisFormatCommandArgv(&target, static_cast<int>(args.size()), argv.data(), lens.data());
  if (n < 0 || target == nullptr) throw std::bad_alloc();
  std::string out(target, static_cast<std::size_t>(n));
  redisFreeCommand(target);
  return out;
}

std::string sha1_hex(std::string_view body) {
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(body.data()), body.size(), md);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA_DIGEST_LENGTH);
  for (unsigned char c : md) {
    out += hex[c >> 4];
    out += hex[c & 0xf];
  }
  return out;
}

}  // namespace berth::redis
