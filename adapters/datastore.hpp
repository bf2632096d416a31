#pragma once

#include "daemon/config.hpp"
#include "daemon/timestamp.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace retentiond::adapters {

// What one rule selects at one moment: its rows whose anchor is strictly older than `cutoff`,
// that pass its match filters and are not held.
struct Selection {
  const Rule& rule;
  Instant cutoff;
  Instant now;                              // for counting anchors in the future
  std::vector<std::string> held_subjects;   // subject_column values under an active hold
};

// The census of a rule's rows, as the report and the mass-deletion breaker need it.
struct RuleCounts {
  std::int64_t table_rows = 0;  // every row of the table, matched or not (the breaker's base)
  std::int64_t total = 0;       // rows that pass the rule's match filters
  std::int64_t due = 0;         // would change now
  std::int64_t held = 0;        // would change but a hold protects them
  std::int64_t undated = 0;     // NULL anchor (or no parent row): never expire
  std::int64_t unreadable = 0;  // anchor not readable in the declared format: never touched
  std::int64_t future = 0;      // anchor later than now
  std::int64_t wrong_scale = 0; // looks like milliseconds in a seconds column, or the reverse
  std::optional<Instant> oldest_due;  // anchor of the oldest due row
};

// Problems found by comparing a rule with the datastore's schema.
struct SchemaCheck {
  std::vector<std::string> errors;    // the rule cannot run: missing table, column, ...
  std::vector<std::string> warnings;  // it can, but slowly: no index on the anchor, ...
};

// One open transaction that has changed rows but not committed. The engine audits it, then
// commits; destroying it uncommitted rolls everything back.
class Batch {
public:
  virtual ~Batch() = default;
  virtual std::int64_t rows() const = 0;      // rows of the rule's table deleted or anonymized
  virtual std::int64_t children() const = 0;  // cascade rows deleted with them
  virtual bool exhausted() const = 0;         // fewer rows were due than the batch allowed
  // Commits; throws std::runtime_error when the datastore refuses (the batch is then undone).
  virtual void commit() = 0;
};

// A datastore as the engine sees it. Implementations build every statement from validated,
// quoted identifiers and bound values. Methods throw std::runtime_error on datastore failures.
class Datastore {
public:
  virtual ~Datastore() = default;

  // Compares the rule with the schema: tables, columns, and indexes on anchors and keys.
  virtual SchemaCheck check_schema(const Rule& rule) = 0;
  // Counts the rule's rows by category; reads only.
  virtual RuleCounts count(const Selection& selection) = 0;
  // Opens one transaction (taking the datastore's write lock) and deletes or anonymizes up to
  // `limit` selected rows, cascade children first. Returns nullptr when nothing was due.
  virtual std::unique_ptr<Batch> begin_batch(const Selection& selection, std::int64_t limit) = 0;
  // After a run that changed rows: make deleted data unrecoverable (WAL checkpoint, ...).
  virtual void finish_run() = 0;
};

// How a datastore is opened: `read_only` for report, check and dry runs, which must leave the
// datastore byte-identical.
enum class OpenMode { read_write, read_only };

// Secrets adapters need for masks. Empty when no rule uses `hmac`.
struct AdapterSecrets {
  std::string hmac_key;
};

// Opens the datastore named by `config` through the adapter registered for its type.
// Throws std::runtime_error naming the datastore when it cannot be opened.
std::unique_ptr<Datastore> open_datastore(const DatastoreConfig& config, OpenMode mode,
                                          const AdapterSecrets& secrets);

} // namespace retentiond::adapters
