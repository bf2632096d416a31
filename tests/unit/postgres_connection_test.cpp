#include "daemon/postgres_connection.hpp"
#include "tests/support/temp_dir.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <stdexcept>
#include <string>

using namespace retentiond;

TEST_CASE("connection_string adds the password and merges options, keeping the dsn's own") {
  CHECK(connection_string("host=/run/postgresql dbname=app", std::nullopt) ==
        "dbname='app' host='/run/postgresql'");
  // A password from its file replaces one in the dsn; quotes and backslashes are escaped.
  CHECK(connection_string("dbname=app password=old", std::string{"it's \\ new"}) ==
        R"(dbname='app' password='it\'s \\ new')");
  CHECK(connection_string("postgresql://u@db1:5433/app", std::nullopt,
                          "-c default_transaction_read_only=on") ==
        "user='u' dbname='app' host='db1' port='5433' "
        "options='-c default_transaction_read_only=on'");
  CHECK(connection_string("dbname=app options='-c search_path=app'", std::nullopt,
                          "-c TimeZone=UTC") ==
        "dbname='app' options='-c search_path=app -c TimeZone=UTC'");
  CHECK_THROWS_WITH_AS(connection_string("host=db1 dbname", std::nullopt),
                       "invalid dsn: missing \"=\" after \"dbname\" in connection info string",
                       std::runtime_error);
}

TEST_CASE("describe_dsn names where and who, never a password") {
  CHECK(describe_dsn("user=u password=secret sslpassword=key dbname=app host=db1 port=5433 "
                     "sslmode=require") == "host=db1 port=5433 dbname=app user=u sslmode=require");
  CHECK(describe_dsn("postgresql://u:secret@db1/app") == "host=db1 dbname=app user=u");
  CHECK(describe_dsn("host=db1 dbname") == "(invalid dsn)");
}

TEST_CASE("read_password_file reads the first line, and refuses an empty one") {
  const test::TempDir dir;
  std::ofstream(dir / "pgpass") << "s3cret\r\nignored\n";
  CHECK(read_password_file(dir / "pgpass") == "s3cret");
  std::ofstream(dir / "empty") << "\n";
  CHECK_THROWS_AS(read_password_file(dir / "empty"), std::runtime_error);
  CHECK_THROWS_AS(read_password_file(dir / "missing"), std::runtime_error);
}

TEST_CASE("read_password_file names a directory as one, not as an empty file") {
  const test::TempDir dir;
  CHECK_THROWS_WITH_AS(read_password_file(dir.path()),
                       ("cannot read password file " + dir.path().string() +
                        ": is a directory, not a file (name the file holding the password)")
                           .c_str(),
                       std::runtime_error);
}
