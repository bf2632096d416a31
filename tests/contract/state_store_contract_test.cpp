// The state contract: what commands, the engine and auditors rely on from every state backend
// (the SQLite file, the shared PostgreSQL database), written once and run against each.
#include "daemon/audit_log.hpp"
#include "daemon/state_store.hpp"
#include "tests/support/audit_chain.hpp"
#include "tests/support/state_backends.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace retentiond;
using retentiond::test::for_each_state_backend;
using retentiond::test::StateBackend;

using retentiond::test::error_of;

namespace {

Instant at(std::string_view text) {
  auto instant = parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

// Writes five entries: run_start, batch(a), batch(b), rule_done(a), run_done.
void write_chain(StateStore& store) {
  store.append_audit("run_start", "", 0, R"({"rules":2})");
  store.append_audit("batch", "a", 10, R"({"cutoff":"2026-01-01T00:00:00Z"})");
  store.append_audit("batch", "b", 3, R"({"cutoff":"2026-02-01T00:00:00Z"})");
  store.append_audit("rule_done", "a", 10, "{}");
  store.append_audit("run_done", "", 13, R"({"result":"ok"})");
}

// The verification of a five-entry chain after `sql` changed it behind the store's back.
AuditVerification verify_after(const StateBackend& backend, const std::string& sql) {
  const auto fixture = backend.fixture();
  const auto store = fixture->open(StateStore::Mode::read_write);
  write_chain(*store);
  fixture->tamper(sql);
  return store->verify_audit();
}

}  // namespace

TEST_CASE("state contract: an empty log verifies, with the genesis hash as head") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    const auto v = store->verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 0);
    CHECK(v.head_hash == k_genesis_hash);
    CHECK(store->audit_head_hash() == k_genesis_hash);
    CHECK_FALSE(store->last_config_digest());
  });
}

TEST_CASE("state contract: a chain of several entries verifies") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    write_chain(*store);
    const auto entries = store->audit_entries();
    REQUIRE(entries.size() == 5);
    CHECK(entries[0].seq == 1);
    CHECK(entries[0].prev_hash == k_genesis_hash);
    for (std::size_t i = 1; i < entries.size(); ++i) {
      CHECK(entries[i].seq == entries[i - 1].seq + 1);
      CHECK(entries[i].prev_hash == entries[i - 1].hash);
    }
    CHECK(entries[1].kind == "batch");
    CHECK(entries[1].rule == "a");
    CHECK(entries[1].rows == 10);
    CHECK(entries[1].detail == R"({"cutoff":"2026-01-01T00:00:00Z"})");
    CHECK(entries[0].rule.empty());

    const auto v = store->verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 5);
    CHECK_FALSE(v.bad_seq);
    CHECK(v.problem.empty());
    CHECK(v.head_hash == entries.back().hash);
    CHECK(store->audit_head_hash() == entries.back().hash);
  });
}

TEST_CASE("state contract: append_audit returns the stored entry") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    const auto first = store->append_audit("config", "", 0, R"({"digest":"ab12"})");
    const auto second = store->append_audit("batch", "r", 5, "{}");
    CHECK(first.seq == 1);
    CHECK(second.seq == 2);
    CHECK(second.prev_hash == first.hash);
    CHECK(second.hash == chain_hash(second.prev_hash, canonical_entry(second), std::nullopt));
    CHECK(parse_iso8601(second.time).has_value());
    const auto stored = store->audit_entries();
    REQUIRE(stored.size() == 2);
    CHECK(stored[1].hash == second.hash);
    CHECK(stored[1].time == second.time);
  });
}

TEST_CASE("state contract: a batch entry records its pending files, in place of the last, until "
          "cleared") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    CHECK(store->pending_files("videos") == std::nullopt);
    // Names hold any byte but '/' and NUL: line breaks, spaces, bytes that are not UTF-8.
    const PendingFiles first{"00000000000000aa",
                             {{"v/a b.mp4", 2049, 131073, 1764000000123456789},
                              {"v/line\nbreak", 2049, 131074, 0},
                              {"v/caf\xe9", std::uint64_t{1} << 63, 7, -1}}};
    const AuditEntry entry = store->append_batch_audit("videos", 3, R"({"batch":1})", first);
    CHECK(entry.kind == "batch");
    CHECK(entry.rule == "videos");
    CHECK(entry.rows == 3);
    CHECK(store->audit_entries().back().hash == entry.hash);
    CHECK(store->pending_files("videos") == first);
    CHECK(store->pending_files("logs") == std::nullopt);  // one record per rule

    const PendingFiles second{"00000000000000bb", {{"v/c.mp4", 1, 2, 3}}};
    store->append_batch_audit("videos", 1, R"({"batch":2})", second);
    store->append_audit("batch", "videos", 4, "{}");  // a batch without files leaves it
    CHECK(store->pending_files("videos") == second);
    CHECK(fixture->open(StateStore::Mode::read_only)->pending_files("videos") == second);

    store->clear_pending_files("videos");
    CHECK(store->pending_files("videos") == std::nullopt);
    CHECK(store->verify_audit().ok);
  });
}

TEST_CASE("state contract: append_audit refuses a detail that is not an object, writes nothing") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    CHECK_THROWS_AS(store->append_audit("batch", "r", 1, "not json"), std::runtime_error);
    CHECK_THROWS_AS(store->append_audit("batch", "r", 1, ""), std::runtime_error);
    CHECK(store->audit_entries().empty());
  });
}

TEST_CASE("state contract: an edited entry is reported with its seq") {
  for_each_state_backend([](const StateBackend& backend) {
    for (const std::string sql :
         {"UPDATE audit SET rows = 1 WHERE seq = 2",
          R"(UPDATE audit SET detail = '{"cutoff":"2030-01-01T00:00:00Z"}' WHERE seq = 2)",
          "UPDATE audit SET rule = 'b' WHERE seq = 2"}) {
      CAPTURE(sql);
      const auto v = verify_after(backend, sql);
      CHECK_FALSE(v.ok);
      CHECK(v.bad_seq == 2);
      CHECK(v.problem == "entry 2: hash does not match its content");
    }
  });
}

TEST_CASE("state contract: an edited entry whose hash was recomputed breaks the next link") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    write_chain(*store);
    auto forged = store->audit_entries()[1];
    forged.rows = 1;
    forged.hash = chain_hash(forged.prev_hash, canonical_entry(forged), std::nullopt);
    fixture->tamper("UPDATE audit SET rows = 1, hash = '" + forged.hash + "' WHERE seq = 2");
    const auto v = store->verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == 3);
    CHECK(v.problem == "entry 3: prev_hash does not match the hash of entry 2");
  });
}

TEST_CASE("state contract: a deleted middle entry is detected") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto gap = verify_after(backend, "DELETE FROM audit WHERE seq = 3");
    CHECK_FALSE(gap.ok);
    CHECK(gap.bad_seq == 4);
    CHECK(gap.problem == "entry 4: expected seq 3");

    // One row at a time, so that no two rows ever share a seq on the way.
    const auto renumbered = verify_after(backend, "DELETE FROM audit WHERE seq = 3;"
                                                  "UPDATE audit SET seq = 3 WHERE seq = 4;"
                                                  "UPDATE audit SET seq = 4 WHERE seq = 5");
    CHECK_FALSE(renumbered.ok);
    CHECK(renumbered.bad_seq == 3);
    CHECK(renumbered.problem == "entry 3: prev_hash does not match the hash of entry 2");
  });
}

TEST_CASE("state contract: a dropped table never verifies, and no new chain begins") {
  for_each_state_backend([](const StateBackend& backend) {
    for (const std::string table : {"audit", "meta"}) {
      CAPTURE(table);
      const auto fixture = backend.fixture();
      write_chain(*fixture->open(StateStore::Mode::read_write, "secret-one"));
      fixture->tamper("DROP TABLE " + table);
      // Not "verified: 0 entries": the state is damaged, whether opening or verifying says so.
      std::string verify_error;
      bool verified = false;
      try {
        verified = fixture->open(StateStore::Mode::read_only, "secret-one")->verify_audit().ok;
      } catch (const std::exception& error) {
        verify_error = error.what();
      }
      CHECK_FALSE(verified);
      CHECK_MESSAGE(verify_error.find("damaged") != std::string::npos, verify_error);
      // Nor does a writer start a fresh chain, or record another key, that would verify.
      const std::string append_error = error_of([&] {
        fixture->open(StateStore::Mode::read_write, "secret-two")->append_audit("run_start", "", 0);
      });
      CHECK_MESSAGE(append_error.find("damaged") != std::string::npos, append_error);
    }
  });
}

TEST_CASE("state contract: reordered entries are detected") {
  for_each_state_backend([](const StateBackend& backend) {
    // Row 2 moves to seq 3 and row 3 to seq 2.
    const auto swapped = verify_after(backend, "UPDATE audit SET seq = -1 WHERE seq = 2;"
                                               "UPDATE audit SET seq = 2 WHERE seq = 3;"
                                               "UPDATE audit SET seq = 3 WHERE seq = -1");
    CHECK_FALSE(swapped.ok);
    CHECK(swapped.bad_seq == 2);
    CHECK(swapped.problem == "entry 2: prev_hash does not match the hash of entry 1");

    // Only the content swapped, hashes kept.
    const auto content =
        verify_after(backend, "CREATE TEMP TABLE keep AS SELECT * FROM audit WHERE seq IN (2, 3);"
                              "UPDATE audit SET (time, kind, rule, rows, detail) = "
                              "(SELECT time, kind, rule, rows, detail FROM keep "
                              " WHERE keep.seq = CASE audit.seq WHEN 2 THEN 3 ELSE 2 END) "
                              "WHERE seq IN (2, 3)");
    CHECK_FALSE(content.ok);
    CHECK(content.bad_seq == 2);
    CHECK(content.problem == "entry 2: hash does not match its content");
  });
}

TEST_CASE("state contract: an HMAC-keyed chain verifies only under the same key") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    {
      const auto store = fixture->open(StateStore::Mode::read_write, "secret-one");
      write_chain(*store);
      CHECK(store->verify_audit().ok);
    }
    CHECK(fixture->open(StateStore::Mode::read_only, "secret-one")->verify_audit().ok);
    // The state recorded which key its chain has: another key is named as the problem, not
    // taken for an edited entry.
    const auto v = fixture->open(StateStore::Mode::read_only, "secret-two")->verify_audit();
    CHECK_FALSE(v.ok);
    CHECK_FALSE(v.bad_seq.has_value());
    CHECK(v.problem == "its audit chain is keyed with another key than state.audit_key_file "
                       "(verify with the key the chain was written with)");
    // Without the key an attacker cannot even check the chain, let alone forge it.
    const auto unkeyed = fixture->open(StateStore::Mode::read_only)->verify_audit();
    CHECK_FALSE(unkeyed.ok);
    CHECK(unkeyed.problem == "its audit chain is keyed, but state.audit_key_file is not set "
                             "(verify with the key the chain was written with)");
  });
}

TEST_CASE("state contract: no entry is written under another audit key than the chain's") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    {
      const auto store = fixture->open(StateStore::Mode::read_write, "secret-one");
      write_chain(*store);
    }
    // Entries under another key, or none, could never be verified with the chain's.
    const std::string other_key =
        error_of([&] { (void)fixture->open(StateStore::Mode::read_write, "secret-two"); });
    CHECK_MESSAGE(other_key.find(": its audit chain is keyed with another key than "
                                 "state.audit_key_file: ") != std::string::npos,
                  other_key);
    const std::string no_key = error_of([&] { (void)fixture->open(StateStore::Mode::read_write); });
    CHECK_MESSAGE(
        no_key.find(": its audit chain is keyed, but state.audit_key_file is not set: ") !=
            std::string::npos,
        no_key);
    const auto store = fixture->open(StateStore::Mode::read_write, "secret-one");
    const auto v = store->verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 5);
  });
}

TEST_CASE("state contract: audit_entries filters by rule and since") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    write_chain(*store);

    AuditFilter by_rule;
    by_rule.rule = "a";
    const auto for_a = store->audit_entries(by_rule);
    REQUIRE(for_a.size() == 2);
    CHECK(for_a[0].seq == 2);
    CHECK(for_a[1].seq == 4);

    AuditFilter future;
    future.since = now_utc() + std::chrono::hours{1};
    CHECK(store->audit_entries(future).empty());

    AuditFilter past;
    past.since = now_utc() - std::chrono::hours{1};
    CHECK(store->audit_entries(past).size() == 5);
  });
}

TEST_CASE("state contract: the audit log is read in pages, filtered and in order across them") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    const std::int64_t total = 2 * k_audit_page_entries + 1;
    fixture->tamper(test::chained_entries_sql(store->append_audit("run_start", "", 0), total - 1));

    std::int64_t seen = 0;
    store->for_each_audit_entry({}, [&](const AuditEntry& entry) { CHECK(entry.seq == ++seen); });
    CHECK(seen == total);
    // Rule "a" has every other entry from seq 2: its pages end at other seqs than the log's.
    AuditFilter by_rule;
    by_rule.rule = "a";
    const auto for_a = store->audit_entries(by_rule);
    REQUIRE(for_a.size() == static_cast<std::size_t>(k_audit_page_entries));
    CHECK(for_a.front().seq == 2);
    CHECK(for_a.back().seq == total - 1);
    AuditFilter future;
    future.since = now_utc() + std::chrono::hours{1};
    CHECK(store->audit_entries(future).empty());

    const auto v = store->verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == total);
    CHECK(v.head_hash == store->audit_head_hash());
  });
}

TEST_CASE("state contract: a gap or an edited entry at a page's edge, or one before the first, is "
          "detected") {
  // Entries 1 .. k_audit_page_entries form the first page; the chain must link across pages.
  const std::int64_t last_of_page = k_audit_page_entries;
  const std::string first_of_next = std::to_string(last_of_page + 1);
  for_each_state_backend([&](const StateBackend& backend) {
    struct Damage {
      std::string sql;
      std::int64_t bad_seq;
      std::string problem;
    };
    const std::vector<Damage> damages{
        {"DELETE FROM audit WHERE seq = " + first_of_next, last_of_page + 2,
         "entry " + std::to_string(last_of_page + 2) + ": expected seq " + first_of_next},
        {"UPDATE audit SET rows = 2 WHERE seq = " + std::to_string(last_of_page), last_of_page,
         "entry " + std::to_string(last_of_page) + ": hash does not match its content"},
        {"UPDATE audit SET rows = 2 WHERE seq = " + first_of_next, last_of_page + 1,
         "entry " + first_of_next + ": hash does not match its content"},
        // Before the first page: the pages start at the lowest seq there is, not at 1.
        {"INSERT INTO audit(seq, time, kind, rule, rows, detail, prev_hash, hash) SELECT 0, "
         "time, kind, rule, rows, detail, prev_hash, hash FROM audit WHERE seq = 1",
         0, "entry 0: expected seq 1"},
    };
    for (const Damage& damage : damages) {
      CAPTURE(damage.sql);
      const auto fixture = backend.fixture();
      const auto store = fixture->open(StateStore::Mode::read_write);
      fixture->tamper(test::chained_entries_sql(store->append_audit("run_start", "", 0),
                                                k_audit_page_entries + 10));
      fixture->tamper(damage.sql);
      const auto v = store->verify_audit();
      CHECK_FALSE(v.ok);
      CHECK(v.bad_seq == damage.bad_seq);
      CHECK(v.problem == damage.problem);
    }

    // The last entry of a page edited, and its hash recomputed: the next page's first entry no
    // longer links to it.
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    fixture->tamper(test::chained_entries_sql(store->append_audit("run_start", "", 0),
                                              k_audit_page_entries + 10));
    AuditEntry forged = store->audit_entries()[static_cast<std::size_t>(last_of_page - 1)];
    REQUIRE(forged.seq == last_of_page);
    forged.rows = 2;
    forged.hash = chain_hash(forged.prev_hash, canonical_entry(forged), std::nullopt);
    fixture->tamper("UPDATE audit SET rows = 2, hash = '" + forged.hash +
                    "' WHERE seq = " + std::to_string(last_of_page));
    const auto v = store->verify_audit();
    CHECK_FALSE(v.ok);
    CHECK(v.bad_seq == last_of_page + 1);
    CHECK(v.problem == "entry " + first_of_next + ": prev_hash does not match the hash of entry " +
                           std::to_string(last_of_page));
  });
}

TEST_CASE("state contract: last_config_digest reads the newest config entry") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    CHECK_FALSE(store->last_config_digest());

    store->append_audit("config", "", 0, R"({"digest":"aaaa","rules":["x"]})");
    store->append_audit("batch", "x", 1, R"({"digest":"not-a-config"})");
    CHECK(store->last_config_digest() == "aaaa");

    // A nested or quoted "digest" is not the config digest.
    store->append_audit(
        "config", "", 0,
        R"({"note":"\"digest\":\"fake\"","sub":{"digest":"nested"},"digest":"bbbb"})");
    CHECK(store->last_config_digest() == "bbbb");

    store->append_audit("config", "", 0, R"({"rules":[]})");
    CHECK_FALSE(store->last_config_digest());
  });
}

TEST_CASE("state contract: two stores on one state append to a single chain") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto first = fixture->open(StateStore::Mode::read_write);
    const auto second = fixture->open(StateStore::Mode::read_write);

    auto append_many = [](StateStore& store, const char* rule) {
      for (int i = 0; i < 20; ++i)
        store.append_audit("batch", rule, 1, "{}");
    };
    std::thread a(append_many, std::ref(*first), "a");
    std::thread b(append_many, std::ref(*second), "b");
    a.join();
    b.join();

    const auto v = first->verify_audit();
    CHECK(v.ok);
    CHECK(v.entries == 40);
    CHECK(second->audit_head_hash() == v.head_hash);
  });
}

TEST_CASE("state contract: holds are added, listed and released") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    const auto now = at("2026-06-01T12:00:00Z");

    const auto forever = store->add_hold(std::string{"user-1"}, std::string{"sessions"},
                                         "litigation #12", std::nullopt, now);
    const auto expired = store->add_hold(std::string{"user-2"}, std::nullopt, "audit request",
                                         at("2026-05-01T00:00:00Z"), at("2026-04-01T00:00:00Z"));
    const auto suspend = store->add_hold(std::nullopt, std::string{"logs"}, "investigation",
                                         at("2026-07-01T00:00:00Z"), now);
    CHECK(forever.id == 1);
    CHECK(expired.id == 2);
    CHECK(suspend.id == 3);
    CHECK(forever.created == "2026-06-01T12:00:00Z");
    CHECK_FALSE(forever.until);
    CHECK(expired.until == "2026-05-01T00:00:00Z");
    CHECK_FALSE(suspend.subject);

    const auto all = store->holds(true, now);
    REQUIRE(all.size() == 3);
    CHECK(all[0].id == 1);
    CHECK(all[0].subject == "user-1");
    CHECK(all[0].rule == "sessions");
    CHECK(all[0].reason == "litigation #12");
    CHECK_FALSE(all[1].rule);
    CHECK_FALSE(all[2].subject);

    // The hold whose `until` has passed is no longer active, and the time-limited one ends at
    // its `until`.
    const auto active = store->holds(false, now);
    REQUIRE(active.size() == 2);
    CHECK(active[0].id == 1);
    CHECK(active[1].id == 3);
    CHECK(store->holds(false, at("2026-07-01T00:00:00Z")).size() == 1);
    CHECK(store->holds(false, at("2026-06-30T23:59:59.999Z")).size() == 2);

    const auto released = store->release_hold(1, "case closed", at("2026-06-02T00:00:00Z"));
    CHECK(released.id == 1);
    CHECK(released.released == "2026-06-02T00:00:00Z");
    CHECK(released.release_reason == "case closed");
    CHECK_FALSE(released.active_at(now));
    const auto still_active = store->holds(false, now);
    REQUIRE(still_active.size() == 1);
    CHECK(still_active[0].id == 3);
    const auto after = store->holds(true, now);
    REQUIRE(after.size() == 3);
    CHECK(after[0].released == "2026-06-02T00:00:00Z");
    CHECK(after[0].release_reason == "case closed");
    // Released, it protects nothing: the subject's value gives way to its digest.
    CHECK(after[0].subject ==
          "sha256:c6c289e49e9c05b2145860387b73bcb18df43fb09a1e4a4a9713c76c88bb541b");

    CHECK(error_of([&] { store->release_hold(1, "again", now); }) == "hold 1 is already released");
    CHECK(error_of([&] { store->release_hold(99, "nope", now); }) == "hold 99 does not exist");
    // A refused release writes no audit entry.
    CHECK(store->audit_entries().size() == 4);
  });
}

TEST_CASE("state contract: hold changes write their audit entries in the chain") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    const auto now = at("2026-06-01T12:00:00Z");
    store->add_hold(std::string{"user \"1\""}, std::string{"sessions"}, "litigation",
                    at("2026-07-01T00:00:00Z"), now);
    store->add_hold(std::nullopt, std::nullopt, "freeze", std::nullopt, now);
    store->release_hold(2, "thawed", now);

    const auto entries = store->audit_entries();
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].kind == "hold_add");
    CHECK(entries[0].rule == "sessions");
    CHECK(entries[0].rows == 0);
    // The subject itself never enters the log: an auditor who knows it matches its digest
    // (printf %s 'user "1"' | sha256sum).
    CHECK(entries[0].detail ==
          R"({"hold":1,"subject_digest":"sha256:)"
          R"(4b8c4f346e059270c06870adf23244a7e281d0c7e3910f8d2f0172182976e546","rule":"sessions",)"
          R"("reason":"litigation","until":"2026-07-01T00:00:00Z"})");
    CHECK(entries[1].kind == "hold_add");
    CHECK(entries[1].rule.empty());
    CHECK(entries[1].detail ==
          R"({"hold":2,"subject_digest":null,"rule":null,"reason":"freeze","until":null})");
    CHECK(entries[2].kind == "hold_release");
    CHECK(entries[2].rows == 0);
    CHECK(entries[2].detail == R"({"hold":2,"reason":"thawed"})");
    CHECK(store->verify_audit().ok);
  });
}

TEST_CASE("state contract: run history") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_write);
    CHECK(store->last_runs("a", 5).empty());
    CHECK_FALSE(store->last_success("a"));

    const auto r1 = store->begin_run("a", at("2026-06-01T00:00:00Z"));
    store->finish_run(r1, "ok", 10, "", at("2026-06-01T00:01:00Z"));
    const auto r2 = store->begin_run("a", at("2026-06-02T00:00:00Z"));
    store->finish_run(r2, "partial", 4, "time budget", at("2026-06-02T00:05:00Z"));
    const auto r3 = store->begin_run("b", at("2026-06-02T00:00:00Z"));
    store->finish_run(r3, "ok", 1, "", at("2026-06-02T00:00:30Z"));
    const auto r4 = store->begin_run("a", at("2026-06-03T00:00:00Z"));
    store->finish_run(r4, "error", 0, "connection refused", at("2026-06-03T00:00:01Z"));
    const auto r5 = store->begin_run("a", at("2026-06-04T00:00:00Z"));

    const auto runs = store->last_runs("a", 10);
    REQUIRE(runs.size() == 4);
    CHECK(runs[0].id == r5);
    CHECK(runs[0].result == "running");
    CHECK(runs[0].finished.empty());
    CHECK(runs[0].rows == 0);
    CHECK(runs[1].id == r4);
    CHECK(runs[1].result == "error");
    CHECK(runs[1].message == "connection refused");
    CHECK(runs[2].id == r2);
    CHECK(runs[2].rows == 4);
    CHECK(runs[2].started == "2026-06-02T00:00:00Z");
    CHECK(runs[2].finished == "2026-06-02T00:05:00Z");
    CHECK(runs[3].id == r1);

    CHECK(store->last_runs("a", 2).size() == 2);
    CHECK(store->last_runs("a", 0).empty());
    CHECK(store->last_runs("c", 5).empty());

    // The newest "ok" or "partial" run counts; errors and running runs do not.
    CHECK(store->last_success("a") == at("2026-06-02T00:05:00Z"));
    CHECK(store->last_success("b") == at("2026-06-02T00:00:30Z"));
    CHECK_FALSE(store->last_success("c"));

    CHECK(error_of([&] { store->finish_run(999, "ok", 0, "", at("2026-06-05T00:00:00Z")); }) ==
          "run 999 does not exist");
  });
}

TEST_CASE("state contract: a read-only store on a new state is empty and cannot write") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    const auto store = fixture->open(StateStore::Mode::read_only);
    CHECK(store->audit_entries().empty());
    CHECK(store->verify_audit().ok);
    CHECK(store->holds(true, now_utc()).empty());
    CHECK(store->last_runs("a", 5).empty());
    CHECK_THROWS_AS(store->append_audit("batch", "a", 1, "{}"), std::runtime_error);
    CHECK_THROWS_AS(store->begin_run("a", now_utc()), std::runtime_error);
    // Nothing was created: a writer still starts the chain at 1.
    CHECK(fixture->open(StateStore::Mode::read_write)->append_audit("config", "", 0).seq == 1);
  });
}

TEST_CASE("state contract: a read-only store on a written state reads it and cannot write") {
  for_each_state_backend([](const StateBackend& backend) {
    const auto fixture = backend.fixture();
    write_chain(*fixture->open(StateStore::Mode::read_write));
    const auto store = fixture->open(StateStore::Mode::read_only);
    CHECK(store->audit_entries().size() == 5);
    CHECK(store->verify_audit().ok);
    CHECK_THROWS_AS(store->append_audit("batch", "a", 1, "{}"), std::runtime_error);
    CHECK_THROWS_AS(store->add_hold(std::nullopt, std::nullopt, "x", std::nullopt, now_utc()),
                    std::runtime_error);
    CHECK(store->audit_entries().size() == 5);
  });
}
