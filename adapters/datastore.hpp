#pragma once

#include "daemon/config.hpp"
#include "daemon/pending_files.hpp"
#include "daemon/timestamp.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond::adapters {

// A file beneath a files datastore's root, resolved component by component without following
// any symlink, and held open by descriptors: removing it never re-reads a path string.
class ResolvedFile {
public:
  virtual ~ResolvedFile() = default;
  // Unlinks the file, then every directory it leaves empty, up to (not including) the root.
  // Returns false when the file had already gone. Throws std::runtime_error on other failures.
  virtual bool remove() = 0;
  // The file as resolved, for the record of a batch's removals.
  virtual PendingFile pending() const = 0;
};

// What Batch::pending_files says of the files a batch holds (ResolvedFile or a kind of it).
template <typename File>
std::vector<PendingFile> pending_files_of(const std::vector<std::unique_ptr<File>>& files) {
  std::vector<PendingFile> pending;
  pending.reserve(files.size());
  for (const auto& file : files)
    pending.push_back(file->pending());
  return pending;
}

// The files a table rule links to its rows (`files = { datastore, path_column }`).
class LinkedFiles {
public:
  virtual ~LinkedFiles() = default;
  // Resolves `relative_path` beneath the root: the file; nullptr when there is no such file
  // (not an error); or, unexpectedly, the reason it is refused: an absolute path, a `..`
  // component, a symlink anywhere on the way, or something that is not a regular file.
  virtual std::expected<std::unique_ptr<ResolvedFile>, std::string>
  resolve(std::string_view relative_path) = 0;
  // How many of `files` are still there: the same file (device and inode) under the same path.
  // One that cannot be looked at does not count.
  virtual std::int64_t count_present(const std::vector<PendingFile>& files) = 0;
};

// What one rule selects at one moment: its rows whose anchor is strictly older than `cutoff`,
// that pass its match filters and are not held.
struct Selection {
  const Rule& rule;
  Instant cutoff;
  Instant now;                             // for counting anchors in the future
  std::vector<std::string> held_subjects;  // subject_column values under an active hold
  LinkedFiles* linked_files = nullptr;     // set when the rule has `files`
  // Set by SIGTERM: the reads before the first batch (count, count_by_anchor, plan_run), which
  // may scan a whole table, give up with CensusStopped once it is true. Batches never look at
  // it: the engine finishes the one under way, as SPEC 5 says.
  const std::atomic<bool>* stop = nullptr;
  // Called often while those reads make progress (and while a files batch walks its tree), on
  // the thread that runs them: microseconds apart, so it must be cheap, and it must not throw.
  // The service feeds systemd's watchdog with it, so that a census longer than WatchdogSec= is
  // not taken for a hang. A count that PostgreSQL's server runs gives no sign of progress (a
  // long statement looks like a lost connection) and does not call it.
  const std::function<void()>* progress = nullptr;
};

// Why a run ends early on SIGTERM or SIGINT (a census adds " during the census").
inline constexpr std::string_view k_stopped_by_signal = "stopped by signal";

// Thrown by a census that `Selection::stop` ended; nothing was changed.
class CensusStopped : public std::runtime_error {
public:
  CensusStopped() : std::runtime_error(std::string{k_stopped_by_signal} + " during the census") {}
};

// Thrown by Batch::commit when whether the commit happened cannot be told (the connection was
// lost during COMMIT, and the server could not say how the transaction ended): the engine
// then writes no compensating entry, which could be wrong either way, and leaves the run open
// for the rule's next run to ask (Datastore::batch_committed).
class CommitInDoubt : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Throws CensusStopped once `selection.stop` is set.
inline void throw_if_stopped(const Selection& selection) {
  if (selection.stop != nullptr && selection.stop->load())
    throw CensusStopped();
}

// Tells `selection.progress`, when set, that a long read is moving.
inline void report_progress(const Selection& selection) {
  if (selection.progress != nullptr)
    (*selection.progress)();
}

// For a census's own loops, at every step: throws CensusStopped once `selection.stop` is set,
// and reports progress.
inline void census_step(const Selection& selection) {
  throw_if_stopped(selection);
  report_progress(selection);
}

// The census of a rule's rows, as the report and the mass-deletion breaker need it.
struct RuleCounts {
  std::int64_t table_rows = 0;        // every row of the table, matched or not (the breaker's base)
  std::int64_t total = 0;             // rows that pass the rule's match filters
  std::int64_t due = 0;               // would change now
  std::int64_t held = 0;              // would change but a hold protects them
  std::int64_t undated = 0;           // NULL anchor (or no parent row): never expire
  std::int64_t unreadable = 0;        // anchor not readable in the declared format: never touched
  std::int64_t future = 0;            // anchor later than now
  std::int64_t wrong_scale = 0;       // looks like milliseconds in a seconds column, or the reverse
  std::int64_t refused = 0;           // due, but refused: an unsafe linked or listed file path
  std::optional<Instant> oldest_due;  // anchor of the oldest due row
};

// Problems found by comparing a rule with the datastore's schema.
struct SchemaCheck {
  std::vector<std::string> errors;    // the rule cannot run: missing table, column, ...
  std::vector<std::string> warnings;  // it can, but slowly: no index on the anchor, ...
};

// What plan_run found out about a run's batches.
struct RunPlan {
  // The due rows lie in the table's physical order (rows appended in time order): each batch
  // changes pages no other batch touches, so a batch costs in proportion to its rows whatever
  // its length. The engine gives these batches a larger share of batch_time and a large first
  // size: an adapter that says so changes a batch in pieces that start small and stop at its
  // deadline.
  bool in_physical_order = false;
};

// One open transaction that has changed rows but not committed. The engine audits it, then
// commits; destroying it uncommitted rolls everything back.
class Batch {
public:
  virtual ~Batch() = default;
  virtual std::int64_t rows() const = 0;      // rows of the rule's table deleted or anonymized
  virtual std::int64_t children() const = 0;  // cascade rows deleted with them
  virtual std::int64_t files() const { return 0; }  // linked files removed at commit
  // Rows left in place because their file was refused: (row or file identifier, reason).
  virtual const std::vector<std::pair<std::string, std::string>>& refusals() const {
    static const std::vector<std::pair<std::string, std::string>> none;
    return none;
  }
  virtual bool exhausted() const = 0;  // fewer rows were due than the batch allowed
  // Set when the batch stopped at its deadline (see Datastore::begin_batch): how much of its
  // `limit` it covered, in the same unit, which is what its duration measures.
  virtual std::optional<std::int64_t> stopped_at_deadline() const { return std::nullopt; }
  // How long opening the batch waited for the datastore's write lock (the application held
  // it): time that says nothing about the batch's size.
  virtual std::chrono::steady_clock::duration waited_for_lock() const { return {}; }
  // The batch covered less than its `limit` because it reached the end of a stretch of the
  // table: its duration says nothing about how long a batch of `limit` takes.
  virtual bool cut_short() const { return false; }
  // What names the batch in the datastore, written in its audit entry before it commits, so
  // that Datastore::batch_committed can tell after a crash whether it committed; empty when
  // the adapter keeps no such record.
  virtual std::string token() const { return {}; }
  // The files commit() is about to remove, as counted in rows() or files().
  virtual std::vector<PendingFile> pending_files() const { return {}; }
  // Removes the linked files first, then commits the rows; throws std::runtime_error when the
  // datastore refuses (the row changes are then undone).
  virtual void commit() = 0;
  // After commit: how many of the files counted in rows() or files() had already gone when
  // it came to removing them (someone else removed them first). The engine audits the
  // difference so that audited counts stay equal to what retentiond really removed.
  virtual std::int64_t vanished() const { return 0; }
  // After commit, also one that threw: how many files it removed. A removal that fails part
  // way leaves those removed (a file cannot be put back), while the rows are undone.
  virtual std::int64_t files_removed() const { return 0; }
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
  // Readable anchors of the rule's matched rows per time bucket, for the report's age chart.
  // `edges` ascend; the result has edges.size() + 1 counts: [0] anchors before edges[0],
  // [i] anchors in [edges[i-1], edges[i]), the last anchors at or after the last edge.
  virtual std::vector<std::int64_t> count_by_anchor(const Selection& selection,
                                                    const std::vector<Instant>& edges) = 0;
  // Before the first batch of a run: finds where in the table the run's rows are (reads only).
  // begin_batch does it when it was not called; calling it first keeps its cost out of the
  // first batch's measured duration.
  virtual RunPlan plan_run(const Selection& selection) {
    (void)selection;
    return {};
  }
  // Opens one transaction (taking the datastore's write lock) and deletes or anonymizes at most
  // `limit` selected rows, cascade children first. `limit` is a unit of work the engine scales
  // to the rule's batch_time: an adapter may walk its table in slices of `limit` physical rows
  // (and change only the due ones among them). Successive calls with the same rule and cutoff
  // continue where the previous batch stopped. The batch may have changed nothing (a slice
  // without due rows); returns nullptr once the whole table has been covered. An adapter that
  // changes a batch in pieces starts no piece it expects to end more than `budget` after it got
  // the write lock (the batch then covers less than `limit`, see Batch::stopped_at_deadline);
  // others may ignore it.
  virtual std::unique_ptr<Batch> begin_batch(
      const Selection& selection, std::int64_t limit,
      std::chrono::steady_clock::duration budget = std::chrono::steady_clock::duration::max()) = 0;
  // After every batch (the last one too), with no transaction open: finishes what a batch
  // leaves to do outside the write lock (for SQLite, copying its pages into the database file),
  // and leaves room for the application: when it has written since the previous call, waits
  // until it writes again (a writer that queued behind the batch got in) or `longest` has
  // passed.
  virtual void between_batches(std::chrono::milliseconds longest) { (void)longest; }
  // The files datastore's resolver, used by table rules that link files; nullptr for others.
  virtual LinkedFiles* linked_files() { return nullptr; }
  // After a read-write run's batches, whether or not they changed rows (and after a failed run
  // that changed some): make deleted data unrecoverable (WAL checkpoint, ...), including what
  // an earlier run that died before its finish_run left; an adapter skips what there is
  // nothing to do for.
  virtual void finish_run() = 0;
  // Whether the batch of `rule` named `token` (Batch::token) committed, asked after a run that
  // died between a batch's audit entry and its commit, from its last batch backwards: true
  // for the rule's last batch that committed; false for any batch after it. (Earlier ones may
  // read as either: SQLite keeps only the last token.) nullopt when the datastore cannot tell
  // (a token it does not know, a transaction too old for the server to remember); throws when
  // it cannot tell yet or cannot be asked.
  virtual std::optional<bool> batch_committed(const Rule& rule, const std::string& token) {
    (void)rule;
    (void)token;
    return std::nullopt;
  }
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

}  // namespace retentiond::adapters

namespace retentiond::adapters {

// The datastores of one command, each opened once, when a rule first needs it (as its own
// datastore or for its linked files), and closed together.
class DatastorePool {
public:
  DatastorePool(const Config& config, OpenMode mode, const AdapterSecrets& secrets)
      : m_config(config), m_mode(mode), m_secrets(secrets) {}

  // The datastore named `name`; throws std::runtime_error when it cannot be opened.
  Datastore& get(const std::string& name);
  // The resolver of the files a rule links to its rows; nullptr when the rule links none.
  LinkedFiles* linked_files_of(const Rule& rule);
  std::size_t open_count() const { return m_open.size(); }

private:
  const Config& m_config;
  OpenMode m_mode;
  const AdapterSecrets& m_secrets;
  std::map<std::string, std::unique_ptr<Datastore>> m_open;
};

}  // namespace retentiond::adapters
