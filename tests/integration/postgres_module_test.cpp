// PostgreSQL support is a module the program loads only when a configuration names PostgreSQL:
// where it is looked for, what a missing module says, and that SQLite hosts never need it.
#include "daemon/postgres_support.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <dlfcn.h>
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <string>

using retentiond::k_postgres_module_name;
using retentiond::test::contains;
using retentiond::test::error_of;
using retentiond::test::run_program;
using retentiond::test::TempDir;

namespace {

const std::string k_way_out = "install the retentiond-postgres.so built with this program, beside "
                              "it or in its module directory, and the libraries it links "
                              "(libpqxx, libpq)";

// The retentiond binary alone in a directory of its own, with `config` beside it.
class LoneProgram {
public:
  explicit LoneProgram(const std::string& config) {
    std::filesystem::copy_file(RETENTIOND_BINARY, program());
    std::ofstream(m_dir / "retentiond.toml") << config;
  }
  std::filesystem::path program() const { return m_dir / "retentiond"; }
  std::filesystem::path config() const { return m_dir / "retentiond.toml"; }
  const std::filesystem::path& dir() const { return m_dir.path(); }

private:
  TempDir m_dir;
};

}  // namespace

TEST_CASE("the module is looked for beside the program first") {
  const auto candidates = retentiond::postgres_module_candidates();
  REQUIRE(!candidates.empty());
  CHECK(candidates.front() ==
        std::filesystem::canonical("/proc/self/exe").parent_path() / k_postgres_module_name);
  // The tests run from the build tree, where the module is built beside them.
  CHECK(retentiond::postgres_support().describe_dsn("host=db1 password=secret dbname=app") ==
        "host=db1 dbname=app");
}

TEST_CASE("a module that cannot be loaded is named with the loader's reason and the way out") {
  TempDir dir;
  const auto missing = dir / "retentiond-postgres.so";
  SUBCASE("missing") {
    CHECK(error_of([&] { retentiond::load_postgres_support({missing}); }) ==
          "PostgreSQL support is not available (" + missing.string() +
              ": cannot open shared object file: No such file or directory); " + k_way_out);
  }
  SUBCASE("from another build") {
    const std::string message =
        error_of([&] { retentiond::load_postgres_support({RETENTIOND_STUB_MODULE}); });
    CHECK(message.starts_with("PostgreSQL support is not available (" +
                              std::string{RETENTIOND_STUB_MODULE} +
                              ": from another build of retentiond (0.0.0+0123456789ab; this "
                              "program is " RETENTIOND_VERSION "+"));
    CHECK(message.ends_with("); " + k_way_out));
  }
  SUBCASE("a shared library that is not a retentiond module") {
    Dl_info sqlite{};
    REQUIRE(dladdr(reinterpret_cast<void*>(&sqlite3_libversion), &sqlite) != 0);
    const std::string path = sqlite.dli_fname;
    CHECK(error_of([&] { retentiond::load_postgres_support({path}); }) ==
          "PostgreSQL support is not available (" + path +
              ": not a retentiond module (no retentiond_postgres_support)); " + k_way_out);
  }
  SUBCASE("not a shared object; the next candidate is tried") {
    std::ofstream(missing) << "not ELF\n";
    const auto other = dir / "other" / "retentiond-postgres.so";
    const std::string message = error_of([&] {
      retentiond::load_postgres_support({missing, other});
    });
    CHECK(message.starts_with("PostgreSQL support is not available (" + missing.string() + ": "));
    CHECK(contains(message, "; " + other.string() +
                                ": cannot open shared object file: No such file or directory); " +
                                k_way_out));
  }
}

TEST_CASE("without the module, a SQLite host runs and a PostgreSQL state is refused at its key") {
  LoneProgram sqlite_host("[state]\npath = \"state.db\"\n[datastores.app]\ntype = \"sqlite\"\n"
                          "path = \"app.db\"\n");
  const auto check = run_program(
      sqlite_host.program(), {"-c", sqlite_host.config().string(), "check"}, {}, sqlite_host.dir());
  CHECK(check.exit_code == 0);
  CHECK(check.err == "");

  // A module installed on this machine would be found: nothing to refuse.
  if (std::filesystem::exists(RETENTIOND_INSTALLED_MODULE))
    return;
  LoneProgram postgres_host("[state]\ndsn = \"host=/run/postgresql dbname=retention\"\n");
  const auto refused =
      run_program(postgres_host.program(), {"-c", postgres_host.config().string(), "check"}, {},
                  postgres_host.dir());
  CHECK(refused.exit_code == 78);
  const std::string beside = (postgres_host.dir() / k_postgres_module_name).string();
  CHECK(refused.err.starts_with("retentiond: error: " + postgres_host.config().string() +
                                ":2:7: state.dsn: PostgreSQL support is not available (" + beside +
                                ": cannot open shared object file: No such file or directory; "));
  CHECK(contains(refused.err, k_way_out + "\n"));
}
