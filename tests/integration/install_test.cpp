// `cmake --install` on a host: the program finds its PostgreSQL module in the installed tree,
// systemd accepts the units (which name the installed program), rates their hardening and
// enables them, the account they run as can be created, and the example configuration with the
// shipped rules is valid. Needs systemd-analyze, systemctl and systemd-sysusers (Debian package
// `systemd`, which tools/install-build-deps installs).
#include "tests/support/files.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>
#include <spdlog/fmt/fmt.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

using retentiond::test::contains;
using retentiond::test::file_bytes;
using retentiond::test::run_program;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace fs = std::filesystem;

namespace {

// Where the Debian package puts them (/bin is /usr/bin on a merged /usr, not everywhere).
const fs::path k_systemd_analyze = "/usr/bin/systemd-analyze";
const fs::path k_systemd_sysusers = "/bin/systemd-sysusers";
const fs::path k_systemctl = "/bin/systemctl";
const std::vector<std::string> k_units = {"retentiond.service", "retentiond-once.service",
                                          "retentiond-once.timer"};

// `cmake --install` of this build; the manifest goes to install_manifest_Unspecified.txt in the
// build tree, not over the one of a real install.
void install(const fs::path& prefix, const std::map<std::string, std::string>& env = {}) {
  const RunResult installed = run_program(RETENTIOND_CMAKE_COMMAND,
                                          {"--install", RETENTIOND_BUILD_DIR, "--prefix",
                                           prefix.string(), "--component", "Unspecified"},
                                          env);
  REQUIRE_MESSAGE(installed.exit_code == 0, (installed.out + installed.err));
}

// This build installed under <temporary>/usr, so that the units name a program that exists.
class Installed {
public:
  Installed() { install(usr()); }
  fs::path usr() const { return m_dir / "usr"; }
  fs::path program() const { return usr() / "bin" / "retentiond"; }
  fs::path unit(const std::string& name) const {
    return usr() / RETENTIOND_SYSTEMD_UNIT_DIR / name;
  }
  fs::path docs() const { return usr() / "share" / "doc" / "retentiond"; }
  const fs::path& dir() const { return m_dir.path(); }

private:
  TempDir m_dir;
};

RunResult run_systemd_tool(const fs::path& tool, const std::vector<std::string>& args) {
  REQUIRE_MESSAGE(fs::exists(tool), (tool.string() + " is missing: install the Debian package "
                                                     "`systemd` (tools/install-build-deps does)"));
  return run_program(tool, args);
}

// The rules that ship in rules/: [rules.ID] tables (not their sub-tables) in its TOML files.
int shipped_rules() {
  int rules = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RETENTIOND_SOURCE_DIR) / "rules"))
    if (entry.path().extension() == ".toml")
      for (const std::string& line : retentiond::test::lines_of(file_bytes(entry.path())))
        rules += std::regex_match(line, std::regex(R"(\[rules\.[a-z0-9_]+\])")) ? 1 : 0;
  return rules;
}

}  // namespace

TEST_CASE("install: the program, its module, the units, the manual and the documentation") {
  Installed installed;

  SUBCASE("the installed program loads the PostgreSQL module from the installed tree") {
    CHECK(fs::exists(installed.usr() / RETENTIOND_INSTALL_LIBDIR / "retentiond" /
                     "retentiond-postgres.so"));
    std::ofstream(installed.dir() / "postgres.toml")
        << "[state]\ndsn = \"host=/run/postgresql dbname=retention\"\n";
    const RunResult check = run_program(
        installed.program(), {"-c", (installed.dir() / "postgres.toml").string(), "check"});
    CHECK(check.exit_code == 0);
    CHECK(check.out.starts_with("configuration OK: 0 rules, 0 datastores, 1 files"));
    CHECK(check.err == "");
  }

  SUBCASE("the units name the installed program and documentation, and systemd accepts them") {
    const std::string service = file_bytes(installed.unit("retentiond.service"));
    CHECK(contains(service, "\nExecStart=" + installed.program().string() +
                                " -c /etc/retentiond/retentiond.toml run\n"));
    CHECK(contains(service, "\nDocumentation=man:retentiond(8) file:" +
                                (installed.docs() / "README.md").string() + "\n"));
    CHECK(contains(file_bytes(installed.unit("retentiond-once.service")),
                   "\nExecStart=" + installed.program().string() +
                       " -c /etc/retentiond/retentiond.toml once --metrics-file "
                       "/var/lib/retentiond/metrics.prom\n"));
    CHECK(fs::exists(installed.docs() / "README.md"));
    CHECK(fs::exists(installed.docs() / "docs" / "operations.md"));
    CHECK(fs::exists(installed.usr() / "share" / "man" / "man8" / "retentiond.8"));

    std::vector<std::string> verify = {"verify", "--man=no"};
    for (const std::string& unit : k_units)
      verify.push_back(installed.unit(unit).string());
    const RunResult verified = run_systemd_tool(k_systemd_analyze, verify);
    CHECK_MESSAGE(verified.exit_code == 0, verified.err);
    // Only what it says of these units: a host's own units may draw remarks of their own.
    for (const std::string& line : retentiond::test::lines_of(verified.err))
      CHECK_MESSAGE(!contains(line, "retentiond"), line);

    // The hardening keeps both services "OK" (exposure 1.6 of 10 when this was written).
    for (const std::string unit : {"retentiond.service", "retentiond-once.service"}) {
      const RunResult rated =
          run_systemd_tool(k_systemd_analyze, {"security", "--offline=yes", "--threshold=20",
                                               installed.unit(unit).string()});
      CHECK_MESSAGE(rated.exit_code == 0, (unit + ": " + rated.out));
    }
  }

  SUBCASE("the example configuration, with every shipped rule in rules.d, is valid") {
    const fs::path etc = installed.dir() / "etc" / "retentiond";
    fs::create_directories(etc / "rules.d");
    fs::copy_file(installed.docs() / "examples" / "retentiond.toml", etc / "retentiond.toml");
    for (const auto& entry : fs::directory_iterator(installed.docs() / "examples" / "rules"))
      if (entry.path().extension() == ".toml")
        fs::copy_file(entry.path(), etc / "rules.d" / entry.path().filename());
    std::ofstream(etc / "hmac.key") << std::string(64, 'a') << "\n";
    fs::permissions(etc / "hmac.key", fs::perms::owner_read | fs::perms::owner_write);
    const RunResult check =
        run_program(installed.program(), {"-c", (etc / "retentiond.toml").string(), "check"});
    CHECK(check.exit_code == 0);
    const int rules = shipped_rules();
    CHECK(rules >= 8);
    CHECK(check.out.starts_with(
        fmt::format("configuration OK: {} rules, 2 datastores, {} files", rules, rules + 1)));
    CHECK(check.err == "");
  }
}

TEST_CASE("install: a package's tree, where systemd enables the units and creates the account") {
  // As a package is built: DESTDIR, with the prefix of the host it is for.
  TempDir dir;
  const fs::path root = dir / "root";
  install("/usr", {{"DESTDIR", root.string()}});
  const fs::path units = root / "usr" / RETENTIOND_SYSTEMD_UNIT_DIR;
  CHECK(contains(file_bytes(units / "retentiond.service"),
                 "\nExecStart=/usr/bin/retentiond -c /etc/retentiond/retentiond.toml run\n"));
  CHECK(contains(file_bytes(units / "retentiond.service"),
                 "\nDocumentation=man:retentiond(8) file:/usr/share/doc/retentiond/README.md\n"));
  CHECK(fs::exists(root / "usr" / "bin" / "retentiond"));
  CHECK(fs::exists(root / "usr" / "share" / "doc" / "retentiond" / "README.md"));

  const RunResult enabled =
      run_systemd_tool(k_systemctl, {"--root=" + root.string(), "enable", "retentiond.service",
                                     "retentiond-once.timer"});
  CHECK_MESSAGE(enabled.exit_code == 0, enabled.err);
  CHECK(fs::is_symlink(root / "etc" / "systemd" / "system" / "multi-user.target.wants" /
                       "retentiond.service"));
  CHECK(fs::is_symlink(root / "etc" / "systemd" / "system" / "timers.target.wants" /
                       "retentiond-once.timer"));

  // systemd-sysusers reads <root>/usr/lib/sysusers.d like on the host.
  CHECK(fs::exists(root / "usr" / RETENTIOND_SYSUSERS_DIR / "retentiond.conf"));
  const RunResult created = run_systemd_tool(k_systemd_sysusers, {"--root=" + root.string()});
  CHECK_MESSAGE(created.exit_code == 0, created.err);
  const std::string passwd = file_bytes(root / "etc" / "passwd");
  CHECK(contains(passwd, "retentiond:x:"));
  CHECK(contains(passwd, ":retentiond data retention:/var/lib/retentiond:"));
  CHECK(contains(file_bytes(root / "etc" / "group"), "retentiond:x:"));
  CHECK(contains(file_bytes(units / "retentiond.service"), "\nUser=retentiond\n"));
}
