#include "daemon/audit_log.hpp"
#include "daemon/digest.hpp"
#include "daemon/json_writer.hpp"
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

TEST_CASE("JSON stays UTF-8: bytes that are not are written as \\xff; the chain keeps bytes") {
  // A file name is any bytes but '/' and NUL; JSON readers refuse what is not UTF-8.
  CHECK(retentiond::json_quote("d/bad\xff\xfe name") == R"("d/bad\\xff\\xfe name")");
  CHECK(retentiond::json_quote("\xc0\xaf") == R"("\\xc0\\xaf")");           // overlong '/'
  CHECK(retentiond::json_quote("\xed\xa0\x80") == R"("\\xed\\xa0\\x80")");  // a surrogate
  CHECK(retentiond::json_quote("caf\xc3\xa9 \xf0\x9f\x98\x80") ==
        "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"");  // well-formed UTF-8 passes
  CHECK(retentiond::json_quote("cut \xe2\x82") == R"("cut \\xe2\\x82")");  // cut short
  // The canonical form hashes the stored bytes themselves: the byte and its \xff text differ.
  AuditEntry raw;
  raw.detail = "{\"record\":\"\xff\"}";
  AuditEntry text = raw;
  text.detail = R"({"record":"\\xff"})";
  CHECK(retentiond::canonical_entry(raw) != retentiond::canonical_entry(text));
  CHECK(retentiond::canonical_entry(raw).find('\xff') != std::string::npos);
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
