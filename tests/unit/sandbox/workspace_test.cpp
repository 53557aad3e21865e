#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "berth/sandbox/workspace.hpp"
#include "temp_dir.hpp"

using namespace berth::sandbox;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> comps(std::string_view root, std::string_view path) {
  auto r = confine_path(root, path);
  if (auto* e = std::get_if<std::string>(&r)) {
    ADD_FAILURE() << path << ": " << *e;
    return {};
  }
  return std::get<std::vector<std::string>>(r);
}

std::string confine_error(std::string_view root, std::string_view path) {
  auto r = confine_path(root, path);
  if (auto* e = std::get_if<std::string>(&r)) return *e;
  ADD_FAILURE() << path << " was accepted";
  return {};
}

void write(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

struct ws_fixture : ::testing::Test {
  berth::test::temp_dir tmp;      // root lives in tmp/ws; tmp/outside is a sibling
  berth::test::temp_dir outside;  // a separate tree for escape targets
  std::string root;
  std::optional<workspace> ws;
  void SetUp() override {
    root = tmp.path() + "/ws";
    fs::create_directory(root);
    write(outside.path() + "/secret.txt", "TOP SECRET");
    auto w = workspace::open(root, workspace_limits{64, 1024, 10, 3});
    ASSERT_TRUE(std::holds_alternative<workspace>(w));
    ws.emplace(std::move(std::get<workspace>(w)));
  }
};

}  // namespace

TEST(ConfinePath, LexicalRules) {
  EXPECT_EQ(comps("/workspace", ""), std::vector<std::string>{});
  EXPECT_EQ(comps("/workspace", "."), std::vector<std::string>{});
  EXPECT_EQ(comps("/workspace", "a/./b//c/"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(comps("/workspace", "a/../b"), std::vector<std::string>{"b"});
  EXPECT_EQ(comps("/workspace", "/workspace"), std::vector<std::string>{});
  EXPECT_EQ(comps("/workspace", "/workspace/a/b"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(comps("/workspace/", "//workspace//a"), std::vector<std::string>{"a"});
  EXPECT_EQ(comps("/workspace", "/workspace/x/../y"), std::vector<std::string>{"y"});
}

TEST(ConfinePath, EscapesAreRejected) {
  EXPECT_NE(confine_error("/workspace", "..").find("escapes"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "../etc/passwd").find("escapes"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "a/../../etc").find("escapes"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "/etc/passwd").find("outside the workspace"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "/workspace/../etc").find("outside"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "/workspacefoo/a").find("outside"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", "/").find("outside"), std::string::npos);
  EXPECT_NE(confine_error("/workspace", std::string_view("a\0b", 3)).find("NUL"), std::string::npos);
}

TEST_F(ws_fixture, WriteCreatesParentsThenListAndRead) {
  auto w = ws->write_file("src/lib/a.txt", "hello");
  EXPECT_FALSE(w.is_error) << w.text;
  EXPECT_NE(w.text.find("wrote 5 bytes"), std::string::npos);
  EXPECT_FALSE(ws->write_file(root + "/b.txt", "abs").is_error);
  auto l = ws->list_files("", false);
  EXPECT_FALSE(l.is_error);
  EXPECT_EQ(l.text, "b.txt\nsrc/\n");
  auto rl = ws->list_files("/", false);  // "/" is outside the root
  EXPECT_TRUE(rl.is_error);
  auto rec = ws->list_files(".", true);
  EXPECT_EQ(rec.text, "b.txt\nsrc/\nsrc/lib/\nsrc/lib/a.txt\n");
  auto r = ws->read_file("src/lib/a.txt", std::nullopt);
  EXPECT_FALSE(r.is_error);
  EXPECT_EQ(r.text, "hello");
  // Overwrite truncates.
  ws->write_file("src/lib/a.txt", "hi");
  EXPECT_EQ(ws->read_file("src/lib/a.txt", std::nullopt).text, "hi");
}

TEST_F(ws_fixture, ReadCapTruncatesWithANote) {
  ws->write_file("big", std::string(100, 'x'));
  auto r = ws->read_file("big", std::nullopt);  // limit 64
  EXPECT_FALSE(r.is_error);
  EXPECT_EQ(r.text.substr(0, 64), std::string(64, 'x'));
  EXPECT_NE(r.text.find("[truncated: showing 64 of 100 bytes]"), std::string::npos);
  auto r2 = ws->read_file("big", 10);
  EXPECT_EQ(r2.text.substr(0, 11), std::string(10, 'x') + "\n");
  auto r3 = ws->read_file("big", 100000);  // capped by the limit
  EXPECT_NE(r3.text.find("showing 64 of"), std::string::npos);
}

TEST_F(ws_fixture, WriteCapAndErrors) {
  auto w = ws->write_file("x", std::string(2000, 'a'));
  EXPECT_TRUE(w.is_error);
  EXPECT_NE(w.text.find("content too large"), std::string::npos);
  fs::create_directory(root + "/d");
  EXPECT_TRUE(ws->write_file("d", "x").is_error);
  EXPECT_TRUE(ws->write_file("", "x").is_error);
  EXPECT_NE(ws->read_file("d", std::nullopt).text.find("is a directory"), std::string::npos);
  EXPECT_NE(ws->read_file("missing", std::nullopt).text.find("no such file"), std::string::npos);
  write(root + "/f", "1");
  EXPECT_NE(ws->list_files("f", false).text.find("not a directory"), std::string::npos);
  EXPECT_NE(ws->write_file("f/g", "x").text.find("not a directory"), std::string::npos);
  ASSERT_EQ(::mkfifo((root + "/fifo").c_str(), 0600), 0);
  auto fifo = ws->read_file("fifo", std::nullopt);  // must not block
  EXPECT_TRUE(fifo.is_error);
  EXPECT_NE(fifo.text.find("not a regular file"), std::string::npos);
}

TEST_F(ws_fixture, SymlinksAreNeverFollowed) {
  fs::create_symlink(outside.path(), root + "/out");                    // dir link out
  fs::create_symlink(outside.path() + "/secret.txt", root + "/s.txt");  // file link out
  fs::create_symlink("/etc", root + "/etc");
  fs::create_directory(root + "/in");
  fs::create_symlink("in", root + "/inlink");  // even inside: not followed
  for (const char* p : {"out/secret.txt", "s.txt", "etc/passwd", "etc/hostname"}) {
    auto r = ws->read_file(p, std::nullopt);
    EXPECT_TRUE(r.is_error) << p;
    EXPECT_NE(r.text.find("symlink is not followed"), std::string::npos) << p << ": " << r.text;
    EXPECT_EQ(r.text.find("TOP SECRET"), std::string::npos);
  }
  auto w = ws->write_file("s.txt", "overwritten");
  EXPECT_TRUE(w.is_error);
  auto w2 = ws->write_file("out/new.txt", "x");
  EXPECT_TRUE(w2.is_error);
  EXPECT_FALSE(fs::exists(outside.path() + "/new.txt"));
  std::ifstream in(outside.path() + "/secret.txt");
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, "TOP SECRET");
  EXPECT_TRUE(ws->list_files("out", false).is_error);
  EXPECT_TRUE(ws->list_files("etc", true).is_error);
  EXPECT_TRUE(ws->write_file("inlink/x", "y").is_error);
  auto l = ws->list_files("", true);
  EXPECT_FALSE(l.is_error);
  EXPECT_EQ(l.text, "etc@\nin/\ninlink@\nout@\ns.txt@\n");
}

TEST_F(ws_fixture, AbsolutePathThroughRealRootSpelling) {
  // A root given through a symlink may also be addressed by its real path.
  fs::create_symlink(root, tmp.path() + "/alias");
  auto w = workspace::open(tmp.path() + "/alias");
  ASSERT_TRUE(std::holds_alternative<workspace>(w));
  auto& alias = std::get<workspace>(w);
  EXPECT_FALSE(alias.write_file(tmp.path() + "/alias/a", "1").is_error);
  char real[4096];
  ASSERT_NE(::realpath(root.c_str(), real), nullptr);
  EXPECT_FALSE(alias.read_file(std::string(real) + "/a", std::nullopt).is_error);
  EXPECT_TRUE(alias.read_file(outside.path() + "/secret.txt", std::nullopt).is_error);
}

TEST_F(ws_fixture, ListingIsBoundedInEntriesAndDepth) {
  for (int i = 0; i < 20; ++i) write(root + "/f" + std::to_string(100 + i), "");
  auto l = ws->list_files("", false);
  EXPECT_NE(l.text.find("[truncated"), std::string::npos);
  EXPECT_EQ(std::count(l.text.begin(), l.text.end(), '\n'), 11);  // 10 entries + the note
  berth::test::temp_dir t2;
  auto w = workspace::open(t2.path(), workspace_limits{64, 1024, 100, 3});
  auto& deep = std::get<workspace>(w);
  deep.write_file("a/b/c/d/e/f.txt", "x");
  auto d = deep.list_files("", true);
  EXPECT_EQ(d.text.find("a/b/c/d"), std::string::npos) << d.text;
  EXPECT_NE(d.text.find("a/b/c/"), std::string::npos);
  EXPECT_NE(d.text.find("[truncated"), std::string::npos);
  EXPECT_EQ(deep.list_files("", false).text, "a/\n");
}

TEST(Workspace, OpenErrors) {
  auto r = workspace::open("relative");
  ASSERT_TRUE(std::holds_alternative<std::string>(r));
  auto m = workspace::open("/nonexistent-berth-root");
  ASSERT_TRUE(std::holds_alternative<std::string>(m));
  EXPECT_NE(std::get<std::string>(m).find("/nonexistent-berth-root"), std::string::npos);
}

TEST(Workspace, EmptyDirectory) {
  berth::test::temp_dir t;
  auto w = workspace::open(t.path());
  EXPECT_EQ(std::get<workspace>(w).list_files("", false).text, "(empty directory)\n");
}
