#include "daemon/logging.hpp"

#include "tests/support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace retentiond;

TEST_CASE("is_journal_stream: the stream whose DEVICE:INODE $JOURNAL_STREAM names") {
  retentiond::test::TempDir dir;
  const std::string path = (dir.path() / "stream").string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  struct stat stream {};
  REQUIRE(::fstat(fd, &stream) == 0);
  const std::string device = std::to_string(stream.st_dev);
  const std::string inode = std::to_string(stream.st_ino);

  CHECK(is_journal_stream(fd, (device + ":" + inode).c_str()));
  SUBCASE("another stream") {
    CHECK_FALSE(is_journal_stream(fd, (device + ":" + std::to_string(stream.st_ino + 1)).c_str()));
    CHECK_FALSE(is_journal_stream(fd, (std::to_string(stream.st_dev + 1) + ":" + inode).c_str()));
  }
  SUBCASE("not set, or not DEVICE:INODE") {
    CHECK_FALSE(is_journal_stream(fd, nullptr));
    for (const std::string& text :
         {std::string(), device, device + ":", ":" + inode, device + ":" + inode + "x",
          device + ":" + inode + ":1", "-" + device + ":" + inode, device + " :" + inode})
      CHECK_FALSE(is_journal_stream(fd, text.c_str()));
  }
  SUBCASE("a closed descriptor") {
    const int closed = ::dup(fd);
    REQUIRE(closed >= 0);
    ::close(closed);
    CHECK_FALSE(is_journal_stream(closed, (device + ":" + inode).c_str()));
  }
  ::close(fd);
}

TEST_CASE("journal_prefix: syslog priorities as sd-daemon(3) prefixes") {
  CHECK(journal_prefix(spdlog::level::critical) == "<2>");
  CHECK(journal_prefix(spdlog::level::err) == "<3>");
  CHECK(journal_prefix(spdlog::level::warn) == "<4>");
  CHECK(journal_prefix(spdlog::level::info) == "<6>");
  CHECK(journal_prefix(spdlog::level::debug) == "<7>");
  CHECK(journal_prefix(spdlog::level::trace) == "<7>");
}

TEST_CASE("escape_controls: control characters are written as escapes, the rest as it is") {
  CHECK(escape_controls("plain text, é and \\ stay") == "plain text, é and \\ stay");
  CHECK(escape_controls("a\nb\tc\rd") == "a\\nb\\tc\\rd");
  CHECK(escape_controls(std::string_view("\x1b[31m\x7f\0!", 8)) == "\\x1b[31m\\x7f\\x00!");
  CHECK(is_control('\n'));
  CHECK_FALSE(is_control(' '));
  CHECK_FALSE(is_control('\xc3'));  // a byte of UTF-8
}
