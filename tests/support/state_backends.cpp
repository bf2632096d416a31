#include "tests/support/state_backends.hpp"

#include "daemon/postgres_state_store.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <pqxx/pqxx>

namespace retentiond::test {
namespace {

class SqliteStateFixture final : public StateFixture {
public:
  std::unique_ptr<StateStore> open(StateStore::Mode mode,
                                   std::optional<std::string> audit_key) const override {
    return std::make_unique<SqliteStateStore>(path(), mode, std::move(audit_key));
  }
  void tamper(const std::string& sql) const override {
    SQLite::Database raw(path(), SQLite::OPEN_READWRITE);
    raw.exec(sql);
  }

private:
  std::filesystem::path path() const { return m_dir / "state.db"; }
  TempDir m_dir;
};

class PostgresStateFixture final : public StateFixture {
public:
  PostgresStateFixture()
      : m_dsn(PostgresServer::instance().dsn(PostgresServer::instance().create_database("state"))) {
  }

  std::unique_ptr<StateStore> open(StateStore::Mode mode,
                                   std::optional<std::string> audit_key) const override {
    return std::make_unique<PostgresStateStore>(m_dsn, std::nullopt, mode, std::move(audit_key));
  }
  void tamper(const std::string& sql) const override {
    pqxx::connection raw(m_dsn);
    pqxx::work transaction(raw);
    transaction.exec("SET LOCAL search_path = retentiond");
    transaction.exec(sql);
    transaction.commit();
  }

private:
  std::string m_dsn;
};

}  // namespace

const std::vector<StateBackend>& state_backends() {
  static const std::vector<StateBackend> backends{
      {"sqlite", [] { return std::make_unique<SqliteStateFixture>(); }},
      {"postgres", [] { return std::make_unique<PostgresStateFixture>(); }},
  };
  return backends;
}

void for_each_state_backend(const std::function<void(const StateBackend&)>& clause) {
  for (const StateBackend& backend : state_backends()) {
    CAPTURE(backend.name);
    clause(backend);
  }
}

}  // namespace retentiond::test
