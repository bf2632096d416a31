#include "daemon/audit_log.hpp"
#include "daemon/digest.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using retentiond::AuditEntry;
using retentiond::AuditFilter;
using retentiond::SqliteStateStore;
using retentiond::StateStore;
using retentiond::test::TempDir;

namespace {

// Writes five entries: run_start, batch(a), batch(b), rule_done(a), run_done.
void write_chain(StateStore& store) {
  store.append_audit("run_start", "", 0, R"({"rules":2})");
  store.append_audit("batch", "a", 10, R"({"cutoff":"2026-01-01T00:00:00Z"})");
  store.append_audit("batch", "b", 3, R"({"cutoff":"2026-02-01T00:00:00Z"})");
  store.append_audit("rule_done", "a", 10, "{}");
  store.append_audit("run_done", "", 13, R"({"result":"ok"})");
}

// A separate connection, as an attacker with file access would use.
void tamper(const std::filesystem::path& path, const std::string& sql) {
  SQLite::Database raw(path, SQLite::OPEN_READWRITE);
  raw.exec(sql);
}

}  // namespace

TEST_CASE("canonical_entry is the JSON array of the hashed fields") {
  AuditEntry entry;
  entry.seq = 7;
  entry.time = "2026-11-23T19:00:00.250Z";
  entry.kind = "batch";
  entry.rule = "";
  entry.rows = 42;
  entry.detail = R"({"cutoff":"x"})";
  entry.prev_hash = "ignored";
  entry.hash = "ignored";
  CHECK(retentiond::canonical_entry(entry) ==
        R"([7,"2026-11-23T19:00:00.250Z","batch","",42,"{\"cutoff\":\"x\"}"])");
}

TEST_CASE("chain_hash is SHA-256 without a key and HMAC-SHA-256 with one") {
  const std::string prev{retentiond::k_genesis_hash};
  CHECK(retentiond::chain_hash(prev, "[1]", std::nullopt) == retentiond::sha256_hex(prev + "[1]"));
  CHECK(retentiond::chain_hash(prev, "[1]", std::string{"k"}) ==
        retentiond::hmac_sha256_hex("k", prev + "[1]"));
  CHECK(retentiond::chain_hash(prev, "[1]", std::string{"k"}) !=
        retentiond::chain_hash(prev, "[1]", std::nullopt));
}

TEST_CASE("audit_entry_json writes the keys in order and an empty rule as null") {
  AuditEntry entry;
  entry.seq = 1;
  entry.time = "2026-11-23T19:00:00Z";
  entry.kind = "run_start";
  entry.rows = 0;
  entry.detail = R"({"rules":2})";
  entry.prev_hash = std::string{retentiond::k_genesis_hash};
  entry.hash = "abc";
  CHECK(retentiond::audit_entry_json(entry) ==
        R"({"seq":1,"time":"2026-11-23T19:00:00Z","kind":"run_start","rule":null,"rows":0,)"
        R"("detail":{"rules":2},"prev_hash":")" +
            entry.prev_hash + R"(","hash":"abc"})");
  entry.rule = "sessions";
  CHECK(retentiond::audit_entry_json(entry).find(R"("rule":"sessions")") != std::string::npos);
}

TEST_CASE("a chain of several entries verifies") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);

  SUBCASE("empty log") {
    const auto v = store.verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 0);
    CHECK(v.head_hash == retentiond::k_genesis_hash);
    CHECK(store.audit_head_hash() == retentiond::k_genesis_hash);
  }

  SUBCASE("five entries") {
    write_chain(store);
    const auto entries = store.audit_entries();
    REQUIRE(entries.size() == 5);
    CHECK(entries[0].seq == 1);
    CHECK(entries[0].prev_hash == retentiond::k_genesis_hash);
    for (std::size_t i = 1; i < entries.size(); ++i) {
      CHECK(entries[i].seq == entries[i - 1].seq + 1);
      CHECK(entries[i].prev_hash == entries[i - 1].hash);
    }
    CHECK(entries[1].rule == "a");
    CHECK(entries[1].rows == 10);
    CHECK(entries[0].rule.empty());

    const auto v = store.verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 5);
    CHECK_FALSE(v.bad_seq);
    CHECK(v.problem.empty());
    CHECK(v.head_hash == entries.back().hash);
    CHECK(store.audit_head_hash() == entries.back().hash);
  }
}

TEST_CASE("append_audit returns the stored entry") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  const auto first = store.append_audit("config", "", 0, R"({"digest":"ab12"})");
  const auto second = store.append_audit("batch", "r", 5, "{}");
  CHECK(first.seq == 1);
  CHECK(second.seq == 2);
  CHECK(second.prev_hash == first.hash);
  CHECK(second.hash == retentiond::chain_hash(second.prev_hash, retentiond::canonical_entry(second),
                                              std::nullopt));
  CHECK(retentiond::parse_iso8601(second.time).has_value());
  const auto stored = store.audit_entries();
  REQUIRE(stored.size() == 2);
  CHECK(stored[1].hash == second.hash);
  CHECK(stored[1].time == second.time);
}

TEST_CASE("append_audit refuses a detail that is not an object and writes nothing") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  CHECK_THROWS_AS(store.append_audit("batch", "r", 1, "not json"), std::runtime_error);
  CHECK_THROWS_AS(store.append_audit("batch", "r", 1, ""), std::runtime_error);
  CHECK(store.audit_entries().empty());
}

TEST_CASE("an edited entry is reported with its seq") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore store(path, StateStore::Mode::read_write);
  write_chain(store);

  SUBCASE("rows changed") {
    tamper(path, "UPDATE audit SET rows = 1 WHERE seq = 2");
  }
  SUBCASE("detail changed") {
    tamper(path, R"(UPDATE audit SET detail = '{"cutoff":"2030-01-01T00:00:00Z"}' WHERE seq = 2)");
  }
  SUBCASE("rule changed") {
    tamper(path, "UPDATE audit SET rule = 'b' WHERE seq = 2");
  }
  const auto v = store.verify_audit();
  CHECK_FALSE(v.ok);
  REQUIRE(v.bad_seq);
  CHECK(*v.bad_seq == 2);
  CHECK(v.problem == "entry 2: hash does not match its content");
}

TEST_CASE("an edited entry whose hash was recomputed breaks the next link") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore store(path, StateStore::Mode::read_write);
  write_chain(store);
  auto entries = store.audit_entries();
  auto forged = entries[1];
  forged.rows = 1;
  forged.hash =
      retentiond::chain_hash(forged.prev_hash, retentiond::canonical_entry(forged), std::nullopt);
  tamper(path, "UPDATE audit SET rows = 1, hash = '" + forged.hash + "' WHERE seq = 2");
  const auto v = store.verify_audit();
  CHECK_FALSE(v.ok);
  CHECK(v.bad_seq == 3);
  CHECK(v.problem == "entry 3: prev_hash does not match the hash of entry 2");
}

TEST_CASE("a deleted middle entry is detected") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore store(path, StateStore::Mode::read_write);
  write_chain(store);

  SUBCASE("leaving a gap") {
    tamper(path, "DELETE FROM audit WHERE seq = 3");
    const auto v = store.verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 4);
    CHECK(v.problem == "entry 4: expected seq 3");
  }
  SUBCASE("renumbering the rest") {
    tamper(path, "DELETE FROM audit WHERE seq = 3; UPDATE audit SET seq = seq - 1 WHERE seq > 3");
    const auto v = store.verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 3);
    CHECK(v.problem == "entry 3: prev_hash does not match the hash of entry 2");
  }
}

TEST_CASE("reordered entries are detected") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore store(path, StateStore::Mode::read_write);
  write_chain(store);

  SUBCASE("whole rows swapped, seq kept") {
    // Move row 2's content to seq 3 and row 3's to seq 2.
    tamper(path, "UPDATE audit SET seq = -1 WHERE seq = 2;"
                 "UPDATE audit SET seq = 2 WHERE seq = 3;"
                 "UPDATE audit SET seq = 3 WHERE seq = -1");
    const auto v = store.verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 2);
    CHECK(v.problem == "entry 2: prev_hash does not match the hash of entry 1");
  }
  SUBCASE("only the content swapped, hashes kept") {
    tamper(path, "CREATE TEMP TABLE keep AS SELECT * FROM audit WHERE seq IN (2, 3);"
                 "UPDATE audit SET (time, kind, rule, rows, detail) = "
                 "(SELECT time, kind, rule, rows, detail FROM keep "
                 " WHERE keep.seq = CASE audit.seq WHEN 2 THEN 3 ELSE 2 END) "
                 "WHERE seq IN (2, 3)");
    const auto v = store.verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 2);
    CHECK(v.problem == "entry 2: hash does not match its content");
  }
}

TEST_CASE("an HMAC-keyed chain verifies only under the same key") {
  TempDir dir;
  const auto path = dir / "state.db";
  {
    SqliteStateStore store(path, StateStore::Mode::read_write, std::string{"secret-one"});
    write_chain(store);
    CHECK(store.verify_audit().ok);
  }
  {
    SqliteStateStore store(path, StateStore::Mode::read_only, std::string{"secret-one"});
    CHECK(store.verify_audit().ok);
  }
  {
    SqliteStateStore store(path, StateStore::Mode::read_only, std::string{"secret-two"});
    const auto v = store.verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 1);
    CHECK(v.problem == "entry 1: hash does not match its content");
  }
  {
    // Without the key an attacker cannot even check the chain, let alone forge it.
    SqliteStateStore store(path, StateStore::Mode::read_only);
    CHECK_FALSE(store.verify_audit().ok);
  }
}

TEST_CASE("audit_entries filters by rule and since") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  write_chain(store);

  AuditFilter by_rule;
  by_rule.rule = "a";
  const auto for_a = store.audit_entries(by_rule);
  REQUIRE(for_a.size() == 2);
  CHECK(for_a[0].seq == 2);
  CHECK(for_a[1].seq == 4);

  AuditFilter future;
  future.since = retentiond::now_utc() + std::chrono::hours{1};
  CHECK(store.audit_entries(future).empty());

  AuditFilter past;
  past.since = retentiond::now_utc() - std::chrono::hours{1};
  CHECK(store.audit_entries(past).size() == 5);
}

TEST_CASE("last_config_digest reads the newest config entry") {
  TempDir dir;
  SqliteStateStore store(dir / "state.db", StateStore::Mode::read_write);
  CHECK_FALSE(store.last_config_digest());

  store.append_audit("config", "", 0, R"({"digest":"aaaa","rules":["x"]})");
  store.append_audit("batch", "x", 1, R"({"digest":"not-a-config"})");
  CHECK(store.last_config_digest() == "aaaa");

  // A nested or quoted "digest" is not the config digest.
  store.append_audit("config", "", 0,
                     R"({"note":"\"digest\":\"fake\"","sub":{"digest":"nested"},"digest":"bbbb"})");
  CHECK(store.last_config_digest() == "bbbb");

  store.append_audit("config", "", 0, R"({"rules":[]})");
  CHECK_FALSE(store.last_config_digest());
}

TEST_CASE("two stores on one file append to a single chain") {
  TempDir dir;
  const auto path = dir / "state.db";
  SqliteStateStore first(path, StateStore::Mode::read_write);
  SqliteStateStore second(path, StateStore::Mode::read_write);

  auto append_many = [](StateStore& store, const char* rule) {
    for (int i = 0; i < 20; ++i)
      store.append_audit("batch", rule, 1, "{}");
  };
  std::thread a(append_many, std::ref(first), "a");
  std::thread b(append_many, std::ref(second), "b");
  a.join();
  b.join();

  const auto v = first.verify_audit();
  CHECK(v.ok);
  CHECK(v.entries == 40);
  CHECK(second.audit_head_hash() == v.head_hash);
}
