// `cmake --install` on a host: the program finds its PostgreSQL module in the installed tree,
// systemd accepts the units (which name the installed program) and rates their hardening, the
// account they run as can be created, and the example configuration with the shipped rules is
// valid. Needs /usr/bin/systemd-analyze and /usr/bin/systemd-sysusers (Debian package `systemd`,
// which tools/install-build-deps installs).
#include "tests/support/files.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using retentiond::test::contains;
using retentiond::test::file_bytes;
using retentiond::test::run_program;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace fs = std::filesystem;

namespace {

const fs::path k_systemd_analyze = "/usr/bin/systemd-analyze";
const fs::path k_systemd_sysusers = "/usr/bin/systemd-sysusers";
const std::vector<std::string> k_units = {"retentiond.service", "retentiond-once.service",
                                          "retentiond-once.timer"};

// This build installed with `cmake --install --prefix <temporary>/usr`.
class Installed {
public:
  Installed() {
    const RunResult install = run_program(
        RETENTIOND_CMAKE_COMMAND, {"--install", RETENTIOND_BUILD_DIR, "--prefix", usr().string()});
    REQUIRE_MESSAGE(install.exit_code == 0, (install.out + install.err));
  }
  fs::path usr() const { return m_dir / "usr"; }
  fs::path program() const { return usr() / "bin" / "retentiond"; }
  fs::path unit(const std::string& name) const {
    return usr() / "lib" / "systemd" / "system" / name;
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

}  // namespace

TEST_CASE("install: the program, its module, the units, the account and the documentation") {
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
    CHECK(contains(service,
                   "\nDocumentation=file:" + (installed.docs() / "README.md").string() + "\n"));
    CHECK(contains(file_bytes(installed.unit("retentiond-once.service")),
                   "\nExecStart=" + installed.program().string() +
                       " -c /etc/retentiond/retentiond.toml once --metrics-file "
                       "/var/lib/retentiond/metrics.prom\n"));
    CHECK(fs::exists(installed.docs() / "README.md"));
    CHECK(fs::exists(installed.docs() / "operations.md"));
    CHECK(fs::exists(installed.usr() / "share" / "man" / "man8" / "retentiond.8"));

    std::vector<std::string> verify = {"verify", "--man=no"};
    for (const std::string& unit : k_units)
      verify.push_back(installed.unit(unit).string());
    const RunResult verified = run_systemd_tool(k_systemd_analyze, verify);
    CHECK_MESSAGE(verified.exit_code == 0, verified.err);
    CHECK(verified.err == "");

    // The hardening keeps both services "OK" (exposure 1.6 of 10 when this was written).
    for (const std::string unit : {"retentiond.service", "retentiond-once.service"}) {
      const RunResult rated =
          run_systemd_tool(k_systemd_analyze, {"security", "--offline=yes", "--threshold=20",
                                               installed.unit(unit).string()});
      CHECK_MESSAGE(rated.exit_code == 0, (unit + ": " + rated.out));
    }
  }

  SUBCASE("systemd-sysusers creates the account the units run as") {
    const fs::path root = installed.dir() / "root";
    fs::create_directories(root / "etc");
    const RunResult created =
        run_systemd_tool(k_systemd_sysusers,
                         {"--root=" + root.string(),
                          (installed.usr() / "lib" / "sysusers.d" / "retentiond.conf").string()});
    CHECK_MESSAGE(created.exit_code == 0, created.err);
    const std::string passwd = file_bytes(root / "etc" / "passwd");
    CHECK(passwd.starts_with("retentiond:x:"));
    CHECK(contains(passwd, ":retentiond data retention:/var/lib/retentiond:"));
    CHECK(contains(file_bytes(root / "etc" / "group"), "retentiond:x:"));
    CHECK(contains(file_bytes(installed.unit("retentiond.service")), "\nUser=retentiond\n"));
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
    CHECK(check.out.starts_with("configuration OK: 8 rules, 2 datastores, 9 files"));
    CHECK(check.err == "");
  }
}
