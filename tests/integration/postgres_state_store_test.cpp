// What only the PostgreSQL state does: its schema, read-only sessions, and the rule locks that
// let several hosts share one state.
#include "daemon/postgres_state_store.hpp"
#include "tests/support/postgres_server.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>
#include <pqxx/pqxx>
#include <spdlog/fmt/fmt.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

using namespace retentiond;
using retentiond::test::PostgresServer;

using retentiond::test::error_of;

namespace {

struct Database {
  std::string name = PostgresServer::instance().create_database("state");
  std::string dsn = PostgresServer::instance().dsn(name);
  std::string described = fmt::format("PostgreSQL state (host={} dbname={} user=postgres)",
                                      PostgresServer::instance().socket_dir().string(), name);

  bool has_schema() const {
    pqxx::connection raw(dsn);
    pqxx::read_transaction read(raw);
    return !read.exec("SELECT to_regnamespace('retentiond')")[0][0].is_null();
  }
};

std::string this_process() {
  std::array<char, HOST_NAME_MAX + 1> host{};
  REQUIRE(gethostname(host.data(), host.size() - 1) == 0);
  return fmt::format("retentiond {}:{}", host.data(), getpid());
}

}  // namespace

TEST_CASE("postgres state: read_only on a database without the schema creates nothing") {
  const Database database;
  {
    PostgresStateStore store(database.dsn, std::nullopt, StateStore::Mode::read_only);
    CHECK(store.audit_entries().empty());
    CHECK(error_of([&] { store.append_audit("batch", "r", 1, "{}"); }) ==
          "cannot append a batch entry to the audit log in " + database.described +
              ": it is open read-only and has no retentiond schema yet");
  }
  CHECK_FALSE(database.has_schema());
  PostgresStateStore writer(database.dsn, std::nullopt, StateStore::Mode::read_write);
  CHECK(database.has_schema());
}

TEST_CASE("postgres state: a schema from a newer retentiond is refused") {
  const Database database;
  { PostgresStateStore store(database.dsn, std::nullopt, StateStore::Mode::read_write); }
  {
    pqxx::connection raw(database.dsn);
    pqxx::work edit(raw);
    edit.exec("UPDATE retentiond.meta SET value = '2' WHERE key = 'schema_version'");
    edit.commit();
  }
  for (const auto mode : {StateStore::Mode::read_write, StateStore::Mode::read_only})
    CHECK(error_of([&] { PostgresStateStore store(database.dsn, std::nullopt, mode); }) ==
          "cannot open " + database.described +
              ": schema version 2 is newer than this retentiond (1)");
}

TEST_CASE("postgres state: an unreachable server names the state, never the password") {
  const std::string dsn = fmt::format("host={} port=1 dbname=nowhere user=u password=hunter2 "
                                      "sslpassword=hunter3",
                                      PostgresServer::instance().socket_dir().string());
  const std::string error =
      error_of([&] { PostgresStateStore store(dsn, std::nullopt, StateStore::Mode::read_write); });
  CHECK(error.starts_with(fmt::format("cannot open PostgreSQL state (host={} port=1 "
                                      "dbname=nowhere user=u): ",
                                      PostgresServer::instance().socket_dir().string())));
  CHECK(error.find("hunter2") == std::string::npos);
  CHECK(error.find("hunter3") == std::string::npos);
}

TEST_CASE("postgres state: one process at a time holds a rule, and names itself to others") {
  const Database database;
  PostgresStateStore first(database.dsn, std::nullopt, StateStore::Mode::read_write);
  PostgresStateStore second(database.dsn, std::nullopt, StateStore::Mode::read_write);

  auto held = first.lock_rule("logs");
  REQUIRE(held.has_value());
  const auto refused = second.lock_rule("logs");
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() ==
        this_process() + " is running this rule (advisory lock in " + database.described + ")");
  // Other rules are free.
  CHECK(second.lock_rule("sessions").has_value());

  held->reset();
  CHECK(second.lock_rule("logs").has_value());
}

TEST_CASE("postgres state: a rule lock goes with its connection") {
  const Database database;
  PostgresStateStore store(database.dsn, std::nullopt, StateStore::Mode::read_write);
  {
    // Another host takes the lock and dies (its session ends).
    pqxx::connection other(database.dsn);
    pqxx::nontransaction session(other);
    CHECK(
        session.exec_params("SELECT pg_try_advisory_lock($1)", postgres_rule_lock_key("logs"))[0][0]
            .as<bool>());
    CHECK_FALSE(store.lock_rule("logs").has_value());
  }
  // The server lets go when the dead session's backend exits, a moment after the client.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
  bool acquired = false;
  while (!acquired && std::chrono::steady_clock::now() < deadline) {
    acquired = store.lock_rule("logs").has_value();
    if (!acquired)
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
  }
  CHECK(acquired);
}

TEST_CASE("postgres state: every host must write the chain with the same audit key") {
  const Database database;
  {
    PostgresStateStore first(database.dsn, std::nullopt, StateStore::Mode::read_write,
                             std::string{"key-one-0123456789"});
    first.append_audit("config", "", 0);
  }
  CHECK(error_of([&] {
          PostgresStateStore other(database.dsn, std::nullopt, StateStore::Mode::read_write,
                                   std::string{"key-two-0123456789"});
        }) == "cannot open " + database.described +
                  ": its audit chain is keyed with another key than state.audit_key_file: every "
                  "host that shares the state needs the same audit_key_file");
  CHECK(error_of([&] {
          PostgresStateStore other(database.dsn, std::nullopt, StateStore::Mode::read_write);
        }) == "cannot open " + database.described +
                  ": its audit chain is keyed, but state.audit_key_file is not set: every host "
                  "that shares the state needs the same audit_key_file");
  PostgresStateStore same(database.dsn, std::nullopt, StateStore::Mode::read_write,
                          std::string{"key-one-0123456789"});
  same.append_audit("config", "", 0);
  CHECK(same.verify_audit().ok);
  CHECK(same.verify_audit().entries == 2);

  // A chain whose key is not recorded (deleted, or from before it was) takes the key its first
  // entry verifies under, and no other.
  {
    pqxx::connection raw(database.dsn);
    pqxx::work work(raw);
    work.exec("DELETE FROM retentiond.meta WHERE key = 'audit_key'");
    work.commit();
  }
  CHECK(error_of([&] {
          PostgresStateStore other(database.dsn, std::nullopt, StateStore::Mode::read_write,
                                   std::string{"key-two-0123456789"});
        }) == "cannot open " + database.described +
                  ": its audit chain's first entry does not verify under state.audit_key_file "
                  "(or its absence): set it as it was when the chain began, or see retentiond "
                  "audit verify");
  PostgresStateStore again(database.dsn, std::nullopt, StateStore::Mode::read_write,
                           std::string{"key-one-0123456789"});
  CHECK(again.verify_audit().ok);
}

TEST_CASE("postgres state: once created, a role without CREATE privileges can use it") {
  const Database database;
  { PostgresStateStore owner(database.dsn, std::nullopt, StateStore::Mode::read_write); }
  const std::string role = "limited_" + database.name;
  {
    pqxx::connection raw(database.dsn);
    pqxx::work grant(raw);
    grant.exec("CREATE ROLE " + raw.quote_name(role) + " LOGIN");
    grant.exec("REVOKE CREATE ON DATABASE " + raw.quote_name(database.name) + " FROM PUBLIC");
    grant.exec("GRANT USAGE ON SCHEMA retentiond TO " + raw.quote_name(role));
    grant.exec("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA retentiond TO " +
               raw.quote_name(role));
    grant.commit();
  }
  const std::string dsn =
      fmt::format("host={} dbname={} user={}", PostgresServer::instance().socket_dir().string(),
                  database.name, role);
  PostgresStateStore store(dsn, std::nullopt, StateStore::Mode::read_write);
  store.append_audit("config", "", 0);
  CHECK(store.add_hold(std::string{"u1"}, std::nullopt, "litigation", std::nullopt, now_utc()).id ==
        1);
  store.finish_run(store.begin_run("logs", now_utc()), "ok", 0, "", now_utc());
  CHECK(store.verify_audit().entries == 2);
}
