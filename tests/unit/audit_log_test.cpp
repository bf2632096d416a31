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
