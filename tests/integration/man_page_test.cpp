// The manual page docs/retentiond.8 stays true to the program: groff renders it without a
// warning, its synopsis has every command line of `retentiond --help`, and it states the
// version and the exit statuses. Needs /usr/bin/groff (Debian package `groff-base`, which
// tools/install-build-deps installs).
#include "daemon/cli.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

using retentiond::test::contains;
using retentiond::test::run_program;
using retentiond::test::RunResult;

namespace {

const std::filesystem::path k_groff = "/usr/bin/groff";
const std::string k_page = std::string(RETENTIOND_SOURCE_DIR) + "/docs/retentiond.8";

// The command lines of the usage text: "once [--rule ID]... ", without the description column.
std::vector<std::string> usage_commands() {
  std::vector<std::string> commands;
  std::istringstream lines(retentiond::usage_text());
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("  ") || line.size() < 3 || line[2] == ' ' || line[2] == '-')
      continue;
    const std::size_t description = line.find("  ", 2);
    commands.push_back(
        line.substr(2, description == std::string::npos ? std::string::npos : description - 2));
  }
  return commands;
}

}  // namespace

TEST_CASE("man page: renders without warnings and agrees with --help") {
  REQUIRE_MESSAGE(std::filesystem::exists(k_groff),
                  "/usr/bin/groff is missing: install the Debian package `groff-base` "
                  "(tools/install-build-deps does)");
  const RunResult checked = run_program(k_groff, {"-man", "-ww", "-z", "-Tutf8", k_page});
  CHECK(checked.exit_code == 0);
  CHECK(checked.err == "");

  const RunResult rendered = run_program(k_groff, {"-man", "-Tascii", "-P-cbou", k_page});
  REQUIRE(rendered.exit_code == 0);
  const std::string& page = rendered.out;
  const std::vector<std::string> commands = usage_commands();
  REQUIRE(commands.size() == 9);
  for (const std::string& command : commands)
    CHECK_MESSAGE(contains(page, "\n       " + command + "\n"), command);
  CHECK(contains(page, "retentiond [-c FILE] [--log-level LEVEL] COMMAND [OPTIONS]"));
  CHECK(contains(page, "retentiond " RETENTIOND_VERSION));
  for (const std::string status : {"0", "1", "2", "75", "78"})
    CHECK_MESSAGE(contains(page, "\n       " + status + " "), status);
}
