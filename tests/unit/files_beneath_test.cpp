#include "adapters/files/beneath.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

#include <atomic>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using retentiond::adapters::files::HeldFile;
using retentiond::adapters::files::open_root;
using retentiond::adapters::files::resolve_beneath;
using retentiond::test::TempDir;
namespace fs = std::filesystem;
using retentiond::test::file_bytes;

namespace {

void write_file(const fs::path& path, const std::string& bytes = "data") {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

// The refusal reason for `path`, or a marker when it was not refused.
std::string refusal(const fs::path& root, std::string_view path) {
  auto resolved = resolve_beneath(open_root("media", root, true), path);
  return resolved ? std::string("(not refused)") : resolved.error();
}

// A temp dir with `root/` inside it, so "outside the root" is still inside the temp dir.
struct Sandbox {
  TempDir dir;
  fs::path root = dir / "root";
  Sandbox() { fs::create_directories(root); }
};

}  // namespace

TEST_CASE("the root must be an existing directory") {
  TempDir dir;
  SUBCASE("missing") {
    CHECK_THROWS_WITH_AS(open_root("media", dir / "nope", true),
                         ("datastore 'media': root " + (dir / "nope").string() +
                          " does not exist or is not a directory")
                             .c_str(),
                         std::runtime_error);
  }
  SUBCASE("a file") {
    write_file(dir / "file");
    CHECK_THROWS_WITH_AS(open_root("media", dir / "file", true),
                         ("datastore 'media': root " + (dir / "file").string() +
                          " does not exist or is not a directory")
                             .c_str(),
                         std::runtime_error);
  }
}

TEST_CASE("hostile paths are refused and nothing outside the root is touched") {
  Sandbox box;
  write_file(box.dir / "x", "outside");
  write_file(box.dir / "outdir/f", "outside dir");
  write_file(box.root / "a/b", "inside");

  SUBCASE("'..' reaching a file that exists outside") {
    CHECK(refusal(box.root, "../x") == "path contains '..'");
    CHECK(refusal(box.root, "a/../../x") == "path contains '..'");
    CHECK(refusal(box.root, "a/..") == "path contains '..'");
  }
  SUBCASE("an absolute path to a file outside") {
    CHECK(refusal(box.root, (box.dir / "x").string()) == "absolute path");
    CHECK(refusal(box.root, "/etc/passwd") == "absolute path");
  }
  SUBCASE("a symlink to a file outside") {
    fs::create_symlink(box.dir / "x", box.root / "link");
    CHECK(refusal(box.root, "link") == "symlink at 'link'");
    CHECK(fs::is_symlink(box.root / "link"));
  }
  SUBCASE("a relative symlink inside the root to a file inside") {
    fs::create_symlink("a/b", box.root / "alias");
    CHECK(refusal(box.root, "alias") == "symlink at 'alias'");
  }
  SUBCASE("a symlinked directory on the way") {
    fs::create_symlink(box.dir / "outdir", box.root / "a/sub");
    CHECK(refusal(box.root, "a/sub/f") == "symlink at 'a/sub'");
    CHECK(refusal(box.root, "a//./sub/f") ==
          "path has an empty or '.' component (write it as 'a/sub/f')");
    CHECK(fs::is_symlink(box.root / "a/sub"));
  }
  SUBCASE("a symlink to a directory named as the last component") {
    fs::create_symlink(box.dir / "outdir", box.root / "d");
    CHECK(refusal(box.root, "d") == "symlink at 'd'");
  }
  SUBCASE("empty, NUL, the root itself, a directory, a FIFO") {
    CHECK(refusal(box.root, "") == "empty path");
    CHECK(refusal(box.root, std::string_view("a/b\0/../../x", 13)) == "path contains a NUL byte");
    CHECK(refusal(box.root, ".") == "not a regular file");
    CHECK(refusal(box.root, "a") == "not a regular file");
    CHECK(refusal(box.root, "a/") == "path has an empty or '.' component (write it as 'a')");
    REQUIRE(::mkfifo((box.root / "fifo").c_str(), 0600) == 0);
    CHECK(refusal(box.root, "fifo") == "not a regular file");  // never opened, so never blocks
  }
  SUBCASE("a path deeper than any real tree") {
    std::string deep;
    for (int i = 0; i < 129; ++i)
      deep += "d/";
    CHECK(refusal(box.root, deep + "f") == "path is more than 128 directories deep");
  }
  CHECK(file_bytes(box.dir / "x") == "outside");
  CHECK(file_bytes(box.dir / "outdir/f") == "outside dir");
  CHECK(file_bytes(box.root / "a/b") == "inside");
}

TEST_CASE("a directory swapped with a symlink while paths resolve is refused, never missing") {
  // The name "v" flips between a directory inside the root and a symlink to one outside that
  // holds a file of the same name. Each resolution must see one or the other: a symlink
  // (refused) or the directory (the file held); taking the flip for a missing file would let
  // the row go and leave its file behind.
  Sandbox box;
  write_file(box.root / "v/a", "inside");
  write_file(box.dir / "outdir/a", "outside");
  fs::create_symlink(box.dir / "outdir", box.root / "v.link");
  std::atomic<bool> stop{false};
  std::thread flipper([&] {
    while (!stop.load())
      ::renameat2(AT_FDCWD, (box.root / "v").c_str(), AT_FDCWD, (box.root / "v.link").c_str(),
                  RENAME_EXCHANGE);
  });
  const auto root = open_root("media", box.root, true);
  int held = 0;
  int refused = 0;
  int missing = 0;
  for (int i = 0; i < 20'000; ++i) {
    const auto resolved = resolve_beneath(root, "v/a");
    if (!resolved)
      refused += resolved.error() == "symlink at 'v'" ? 1 : 0;
    else if (*resolved)
      ++held;
    else
      ++missing;
  }
  stop = true;
  flipper.join();
  CAPTURE(held);
  CAPTURE(refused);
  CHECK(missing == 0);
  CHECK(held + refused == 20'000);
  CHECK(file_bytes(box.dir / "outdir/a") == "outside");
}

TEST_CASE("paths are written one way, missing files are not errors") {
  Sandbox box;
  write_file(box.root / "a/b");
  const auto root = open_root("media", box.root, true);

  SUBCASE("one spelling resolves") {
    auto resolved = resolve_beneath(root, "a/b");
    REQUIRE(resolved.has_value());
    REQUIRE(*resolved != nullptr);
    CHECK((*resolved)->relative_path() == "a/b");
  }
  SUBCASE("'.' and empty components are refused, naming the one spelling") {
    // Rows are matched by the path as stored: another spelling would hide a row that still
    // names the file.
    for (const char* path : {"a/./b", "a//b", "./a/b", "a/b/.", "a/b/"}) {
      CAPTURE(path);
      CHECK(refusal(box.root, path) == "path has an empty or '.' component (write it as 'a/b')");
    }
  }
  SUBCASE("a missing file or directory resolves to nullptr") {
    for (const char* path : {"a/missing", "missing/b", "a/b/c"}) {
      CAPTURE(path);
      auto resolved = resolve_beneath(root, path);
      REQUIRE(resolved.has_value());
      CHECK(*resolved == nullptr);
    }
  }
}

TEST_CASE("remove unlinks the file and prunes the directories it leaves empty") {
  Sandbox box;
  write_file(box.root / "p/q/r/file");
  write_file(box.root / "p/sibling/keep");
  write_file(box.root / "solo/deep/file");
  const auto root = open_root("media", box.root, true);

  SUBCASE("up to a non-empty directory") {
    auto resolved = resolve_beneath(root, "p/q/r/file");
    REQUIRE(resolved.has_value());
    REQUIRE(*resolved != nullptr);
    CHECK((*resolved)->remove());
    CHECK_FALSE(fs::exists(box.root / "p/q"));
    CHECK(fs::exists(box.root / "p/sibling/keep"));
    CHECK(fs::is_directory(box.root / "p"));
  }
  SUBCASE("up to but not including the root") {
    auto resolved = resolve_beneath(root, "solo/deep/file");
    REQUIRE(resolved.has_value());
    REQUIRE(*resolved != nullptr);
    CHECK((*resolved)->remove());
    CHECK_FALSE(fs::exists(box.root / "solo"));
    CHECK(fs::is_directory(box.root));
  }
  SUBCASE("a file directly in the root leaves the root alone even when it empties it") {
    Sandbox lone;
    write_file(lone.root / "only");
    auto resolved = resolve_beneath(open_root("media", lone.root, true), "only");
    REQUIRE(resolved.has_value());
    CHECK((*resolved)->remove());
    CHECK(fs::is_directory(lone.root));
    CHECK(fs::is_empty(lone.root));
  }
  SUBCASE("a file that has already gone returns false") {
    auto resolved = resolve_beneath(root, "p/q/r/file");
    REQUIRE(resolved.has_value());
    fs::remove(box.root / "p/q/r/file");
    CHECK_FALSE((*resolved)->remove());
  }
  SUBCASE("a file replaced after resolution is left alone") {
    auto resolved = resolve_beneath(root, "p/q/r/file");
    REQUIRE(resolved.has_value());
    // Renamed over the old one, so the new file cannot reuse the old inode number: identity
    // is device and inode.
    write_file(box.root / "p/q/r/file.new", "new");
    fs::rename(box.root / "p/q/r/file.new", box.root / "p/q/r/file");
    CHECK_FALSE((*resolved)->remove());
    CHECK(file_bytes(box.root / "p/q/r/file") == "new");
  }
  SUBCASE("a file replaced by a symlink after resolution is left alone, and its target too") {
    write_file(box.dir / "secret", "secret");
    auto resolved = resolve_beneath(root, "p/q/r/file");
    REQUIRE(resolved.has_value());
    fs::remove(box.root / "p/q/r/file");
    fs::create_symlink(box.dir / "secret", box.root / "p/q/r/file");
    CHECK_FALSE((*resolved)->remove());
    CHECK(fs::is_symlink(box.root / "p/q/r/file"));
    CHECK(file_bytes(box.dir / "secret") == "secret");
  }
}

TEST_CASE("remove acts on the directories held at resolution, never on a path") {
  Sandbox box;
  write_file(box.root / "a/b/file", "inside");
  write_file(box.dir / "outside/b/file", "outside");
  const auto root = open_root("media", box.root, true);
  auto resolved = resolve_beneath(root, "a/b/file");
  REQUIRE(resolved.has_value());
  REQUIRE(*resolved != nullptr);

  SUBCASE("a parent replaced by a symlink to outside the root") {
    fs::rename(box.root / "a", box.root / "a.old");
    fs::create_directory_symlink(box.dir / "outside", box.root / "a");
    CHECK((*resolved)->remove());
    CHECK_FALSE(fs::exists(box.root / "a.old/b/file"));
    CHECK(file_bytes(box.dir / "outside/b/file") == "outside");
    CHECK(fs::is_symlink(box.root / "a"));
    CHECK(fs::exists(box.dir / "outside/b"));
  }
  SUBCASE("a parent moved out of the root: refused, nothing removed") {
    fs::rename(box.root / "a", box.dir / "moved");
    CHECK_THROWS_AS((*resolved)->remove(), std::runtime_error);
    CHECK(file_bytes(box.dir / "moved/b/file") == "inside");
  }
}

TEST_CASE("read-only: resolve works, remove throws") {
  Sandbox box;
  write_file(box.root / "a/b");
  auto resolved = resolve_beneath(open_root("media", box.root, false), "a/b");
  REQUIRE(resolved.has_value());
  REQUIRE(*resolved != nullptr);
  CHECK_THROWS_WITH_AS((*resolved)->remove(),
                       "datastore 'media': cannot remove 'a/b': the datastore is open read-only",
                       std::runtime_error);
  CHECK(fs::exists(box.root / "a/b"));
}

namespace {

std::size_t open_descriptors() {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator("/proc/self/fd"))
    ++count;
  return count;
}

}  // namespace

TEST_CASE("resolutions share the directories that held files keep open") {
  Sandbox box;
  for (int i = 0; i < 50; ++i)
    write_file(box.root / "a/b" / ("f" + std::to_string(i)));
  write_file(box.dir / "outside/b/f0", "outside");
  const auto root = open_root("media", box.root, true);
  retentiond::adapters::files::DirectoryCache cache;

  SUBCASE("fifty files in one directory hold two descriptors, not a hundred") {
    const std::size_t before = open_descriptors();
    std::vector<std::unique_ptr<HeldFile>> held;
    for (int i = 0; i < 50; ++i) {
      auto resolved = resolve_beneath(root, "a/b/f" + std::to_string(i), &cache);
      REQUIRE(resolved.has_value());
      REQUIRE(*resolved != nullptr);
      held.push_back(std::move(*resolved));
    }
    CHECK(open_descriptors() - before == 2);
    for (const auto& file : held)
      CHECK(file->remove());
    CHECK_FALSE(fs::exists(box.root / "a"));
  }
  SUBCASE("a shared directory replaced by a symlink is not reused") {
    auto first = resolve_beneath(root, "a/b/f1", &cache);
    REQUIRE(first.has_value());
    fs::rename(box.root / "a", box.root / "a.old");
    fs::create_directory_symlink(box.dir / "outside", box.root / "a");
    auto second = resolve_beneath(root, "a/b/f0", &cache);
    REQUIRE_FALSE(second.has_value());
    CHECK(second.error() == "symlink at 'a'");
    CHECK(file_bytes(box.dir / "outside/b/f0") == "outside");
  }
  SUBCASE("a shared directory replaced by another directory is opened afresh") {
    auto first = resolve_beneath(root, "a/b/f1", &cache);
    REQUIRE(first.has_value());
    fs::rename(box.root / "a", box.root / "a.old");
    write_file(box.root / "a/b/f0", "new");
    auto second = resolve_beneath(root, "a/b/f0", &cache);
    REQUIRE(second.has_value());
    REQUIRE(*second != nullptr);
    CHECK((*second)->remove());
    CHECK_FALSE(fs::exists(box.root / "a"));
    CHECK(fs::exists(box.root / "a.old/b/f0"));
  }
}
