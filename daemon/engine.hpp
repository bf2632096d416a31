#pragma once

#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/holds.hpp"
#include "daemon/state_store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace retentiond {

// What one invocation of the engine should do.
struct RunOptions {
  std::vector<std::string> only_rules;  // empty = every rule
  bool dry_run = false;                 // count only: nothing is written anywhere
  std::set<std::string> confirm_mass;   // rules allowed past their max_fraction this time
  std::string command = "once";         // recorded in the run_start audit entry
  // Asked once the rule is locked (no other process sharing the state runs it now): false skips
  // it, because another process ran it in the meantime. Unset: the rule runs.
  std::function<bool(const Rule&)> still_due;
  // Called after each committed batch with its duration (metrics, the service's watchdog).
  std::function<void(const Rule&, std::chrono::nanoseconds took, std::int64_t rows)> on_batch;
  // Called now and then while the reads before a rule's first batch make progress (the
  // service's watchdog; see adapters::Selection::progress).
  std::function<void()> on_census_progress;
};

// How one rule's run ended.
struct RuleOutcome {
  std::string rule;
  // ok, partial (time budget or stop), refused, error, held, keep, dry_run, or skipped (another
  // host sharing the state is running the rule)
  std::string result;
  std::int64_t rows = 0;  // rows changed (cascade children included); would change for dry_run
  std::string message;    // why, for refused/error/partial/held
  adapters::RuleCounts counts;  // the census taken before the run
  Instant cutoff{};
  std::int64_t children = 0;  // of `rows`, the cascade children
  std::int64_t files = 0;     // of `rows`, the linked files removed
  std::int64_t refused = 0;   // records kept because their linked file was refused
  int backlog_runs = 0;       // runs in a row, this one included, that ended with rows due
  bool counted = false;       // the census was taken: `counts` and `backlog_runs` are real
};

// Why a run was closed by the rule's next run (Engine::close_interrupted_run).
inline constexpr std::string_view k_run_left_open =
    "the process did not close the run (it was killed, the host went down, or the state could "
    "not be written)";

// Whether `run` was cut short by SIGTERM or SIGINT. Like a run that died with its process, it
// does not count as the rule's last run: the service runs the rule again when it starts.
bool cut_short_by_signal(const RunRecord& run);

struct RunSummary {
  std::vector<RuleOutcome> outcomes;
  // True when a rule failed or was refused: `once` then exits 1.
  bool any_failed() const;
};

// Why a rule must not run while `rows` of its anchors are in the other unit (milliseconds in a
// unix_seconds column, or the reverse): the message `once`, `check --connect` and the report give.
std::string wrong_scale_problem(const Rule& rule, std::int64_t rows);

// The mass-deletion breaker: why a run that would change `counts.due` of the table's rows must
// be refused (more than the rule's max_fraction), or nothing when it may go on.
std::optional<std::string> mass_change_problem(const Rule& rule,
                                               const adapters::RuleCounts& counts);

// Appends a `config` audit entry (digest and files) when `config`'s digest is not the last one
// audited; nothing otherwise. Every run does it first; the service also at start-up and at
// each reload, so the log dates a change when it was made. Throws std::runtime_error when the
// entry cannot be written.
void audit_config_change(StateStore& state, const Config& config);

// Plans and enforces rules: cutoff, census, holds, mass-deletion breaker, then time-boxed
// batches, each audited before it commits. Sees datastores only through adapters::Datastore.
class Engine {
public:
  // `state` may be null only for dry runs. `stop` is polled between batches (SIGTERM/SIGINT).
  Engine(std::shared_ptr<const Config> config, StateStore* state, adapters::AdapterSecrets secrets,
         const std::atomic<bool>& stop);

  // Runs every selected rule once; one datastore's failure does not stop the others.
  RunSummary run_once(const RunOptions& options);

private:
  RuleOutcome run_rule(const Rule& rule, adapters::Datastore& store,
                       adapters::LinkedFiles* linked_files, const RunOptions& options);
  RuleOutcome enforce(const Rule& rule, adapters::Datastore& store,
                      adapters::LinkedFiles* linked_files, const RunOptions& options,
                      std::int64_t run_id, Instant now);
  // Closes the rule's last run if the process died during it (its record still says
  // "running"), first undoing in the audit log a last batch that was audited but never
  // committed (see Datastore::batch_committed).
  void close_interrupted_run(const Rule& rule, adapters::Datastore& store,
                             adapters::LinkedFiles* linked_files);
  // Of a dead run's `batches`, the one the state's record of pending files names: appends an
  // entry taking back its files that are still there (it counted them before removing them);
  // returns how many.
  std::int64_t take_back_files_left(const Rule& rule, adapters::Datastore& store,
                                    adapters::LinkedFiles* linked_files, std::int64_t run_id,
                                    const std::vector<AuditEntry>& batches,
                                    const std::set<std::int64_t>& rolled_back,
                                    const std::map<std::int64_t, std::int64_t>& taken_back);
  void forget_pending_files(const Rule& rule);
  // After a batch rolled back because the state reported its audit entry unwritten: takes the
  // entry back if it was written all the same. False when the state cannot tell.
  bool take_back_if_written(const Rule& rule, std::int64_t run_id, int batch_number);
  // Of a dead run's `batches` (its entries that changed rows, in order), those that never
  // committed, as the datastore tells (Datastore::batch_committed); none when it cannot tell.
  std::vector<AuditEntry> undone_batches(const Rule& rule, adapters::Datastore& store,
                                         std::int64_t run_id,
                                         const std::vector<AuditEntry>& batches);
  void warn_about_backlog(const Rule& rule, std::int64_t run_id, RuleOutcome& outcome) const;
  void audit_refusals(const Rule& rule, std::int64_t run_id,
                      const std::vector<std::pair<std::string, std::string>>& refusals);
  void audit_rule_failure(const Rule& rule, const std::string& kind, const std::string& message,
                          std::int64_t run_id);
  // Subjects under an active hold for this rule, and whether an --all hold suspends it.
  HeldSubjects held_subjects(const Rule& rule, Instant now) const;

  std::shared_ptr<const Config> m_config;
  StateStore* m_state;
  adapters::AdapterSecrets m_secrets;
  const std::atomic<bool>& m_stop;
};

}  // namespace retentiond
