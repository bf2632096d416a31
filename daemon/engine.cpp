#include "daemon/engine.hpp"

#include "daemon/cutoff.hpp"
#include "daemon/holds.hpp"
#include "daemon/json_writer.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <thread>

namespace retentiond {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Batch sizing: start small, then scale by measured time towards the rule's batch_time. The
// unit is the adapter's (rows, or a slice of rows); the engine only compares durations.
constexpr std::int64_t k_first_batch_size = 200;
// The same when the due rows lie in the table's physical order (RunPlan). Such a batch is
// changed in pieces that start at 200 rows and double, and stops at its deadline before a piece
// it cannot afford: a first batch this large finds the table's pace within one transaction
// instead of three, each with its audit entry, checkpoint and wait for the application's writer
// (1M append-only rows with a writer: a median 0.567 s against 0.575 s, 16 paired runs).
constexpr std::int64_t k_first_batch_size_in_physical_order = 12'800;
// The share (%) of batch_time given to a batch's own statements, the part that holds the
// datastore's write lock. A writer of the application that queues behind a batch sleeps in
// SQLite's busy handler and retries 1, 3, 8, 18, 33, 53 ms after it arrived: a batch that ends
// within ~25 ms lets it in on its retry at 33 ms at the latest, with room for the batch times
// that run over their aim, inside the 50 ms default batch_time.
constexpr int k_work_share_of_batch_time = 50;
// The same when the due rows lie in the table's physical order (RunPlan). There a batch stops at
// its deadline within a piece and a longer batch costs no more per row, so it can use all of
// the 33 ms: a writer that queued behind it still gets in on its retry 18 or 33 ms after it
// arrived (with no margin: one that arrived as the batch began and the batch ran over, at 53
// ms), and fewer batches carry fewer audit entries (1M append-only rows with a writer
// every 5 ms, 8 paired runs: a median 0.485 s against 0.496 s at 60%; slowest insert 34-36 ms
// either way).
constexpr int k_work_share_in_physical_order = 66;
// Runs in a row that end with a backlog before the engine warns.
constexpr int k_backlog_warning_runs = 3;
constexpr std::int64_t k_max_batch_size = std::int64_t{1} << 40;

std::int64_t next_batch_size(std::int64_t size, Clock::duration took, Clock::duration target) {
  const double seconds = std::chrono::duration<double>(took).count();
  const double wanted = std::chrono::duration<double>(target).count();
  const double factor = seconds <= 0.0 ? 8.0 : std::clamp(wanted / seconds, 0.5, 8.0);
  // Far below the target (the first batches, or slices with nothing due) the size grows by
  // the whole factor: sparse tables and the start of a run reach full-size batches in a few
  // steps. Near it, half a step: one slow batch (a page-cache miss, a checkpoint) is not a
  // trend.
  const double scaled = factor > 2.0 ? static_cast<double>(size) * factor
                                     : 0.5 * static_cast<double>(size) * (1.0 + factor);
  // Rounded, and a batch that was quick enough grows by a row at least: truncating would pull
  // small sizes down at every step, to a row per batch that never grows again.
  std::int64_t next = std::llround(scaled);
  if (factor > 1.0)
    next = std::max(next, size + 1);
  return std::clamp(next, std::int64_t{1}, k_max_batch_size);
}

// A rule whose run failed after some of its batches committed: what they changed.
class FailedAfterBatches : public std::runtime_error {
public:
  FailedAfterBatches(const std::string& what, RuleOutcome so_far, bool left_open)
      : std::runtime_error(what), progress(std::move(so_far)), run_left_open(left_open) {}
  RuleOutcome progress;
  // The run's audit entries could not be set right (see take_back_if_written): its record
  // stays `running` for the rule's next run to close.
  bool run_left_open;
};

// finish_run after a failure: the checkpoint that takes deleted values out of the WAL, tried
// once (the connection may be what failed).
void finish_after_failure(adapters::Datastore& store, const Rule& rule) {
  try {
    store.finish_run();
  } catch (const std::exception& error) {
    spdlog::warn("rule {}: the WAL checkpoint after the failure failed too: {}", rule.id,
                 error.what());
  }
}

std::string batch_detail(std::int64_t run_id, int number, const Instant& cutoff,
                         const adapters::Batch& batch, const Rule& rule) {
  JsonWriter json;
  json.begin_object();
  json.field("run", run_id);
  json.field("batch", std::int64_t{number});
  if (const std::string token = batch.token(); !token.empty())
    json.field("token", token);
  json.field("datastore", rule.datastore);
  if (rule.glob.empty())
    json.field("table", rule.table);
  else
    json.field("glob", rule.glob);
  json.field("cutoff", format_iso8601(cutoff));
  json.field("table_rows", batch.rows());
  json.field("cascade_rows", batch.children());
  json.field("files", batch.files());
  json.end_object();
  return json.str();
}

// Where the value of member `key` starts in a detail the engine wrote: JsonWriter writes no
// spaces and escapes every quote inside a string, so `{"key":` or `,"key":` only ever starts
// a member.
std::optional<std::size_t> detail_member(std::string_view detail, std::string_view key) {
  for (const char opening : {'{', ','}) {
    const std::string member = fmt::format("{}\"{}\":", opening, key);
    if (const std::size_t at = detail.find(member); at != std::string_view::npos)
      return at + member.size();
  }
  return std::nullopt;
}

std::optional<std::int64_t> detail_integer(std::string_view detail, std::string_view key) {
  const auto at = detail_member(detail, key);
  if (!at)
    return std::nullopt;
  std::int64_t value = 0;
  const char* end = detail.data() + detail.size();
  const auto [stop, error] = std::from_chars(detail.data() + *at, end, value);
  return error == std::errc{} ? std::optional{value} : std::nullopt;
}

// A string member without escapes (a token, a cutoff); nullopt otherwise.
std::optional<std::string> detail_string(std::string_view detail, std::string_view key) {
  const auto at = detail_member(detail, key);
  if (!at || *at >= detail.size() || detail[*at] != '"')
    return std::nullopt;
  const std::size_t close = detail.find('"', *at + 1);
  if (close == std::string_view::npos)
    return std::nullopt;
  const std::string_view value = detail.substr(*at + 1, close - *at - 1);
  if (value.find('\\') != std::string_view::npos)
    return std::nullopt;
  return std::string(value);
}

std::string message_detail(std::int64_t run_id, std::string_view result,
                           const std::string& message) {
  JsonWriter json;
  json.begin_object();
  json.field("run", run_id);
  json.field("result", result);
  json.field("message", message);
  json.end_object();
  return json.str();
}

}  // namespace

std::string wrong_scale_problem(const Rule& rule, std::int64_t rows) {
  const std::string anchor = rule.age_from ? rule.age_from->table + "." + rule.age_from->column
                                           : rule.table + "." + rule.age_column;
  return fmt::format("{} rows of {} look like {} but age_format is {}; correct age_format or the "
                     "data",
                     rows, anchor,
                     rule.age_format == AgeFormat::unix_seconds ? "milliseconds"
                                                                : "seconds or microseconds",
                     to_string(rule.age_format));
}

std::optional<std::string> mass_change_problem(const Rule& rule,
                                               const adapters::RuleCounts& counts) {
  if (counts.table_rows == 0)
    return std::nullopt;
  const double fraction = static_cast<double>(counts.due) / static_cast<double>(counts.table_rows);
  if (fraction <= rule.max_fraction)
    return std::nullopt;
  return fmt::format("would {} {} of {} rows of {} ({:.1f}%), more than max_fraction {}; if this "
                     "is intended, run once with --confirm-mass {} or raise max_fraction",
                     rule.action == Action::anonymize ? "anonymize" : "delete", counts.due,
                     counts.table_rows,
                     rule.glob.empty() ? rule.table : "files matching " + rule.glob,
                     fraction * 100.0, rule.max_fraction, rule.id);
}

bool cut_short_by_signal(const RunRecord& run) {
  return run.result == "partial" && run.message.starts_with(adapters::k_stopped_by_signal);
}

bool RunSummary::any_failed() const {
  return std::any_of(outcomes.begin(), outcomes.end(), [](const RuleOutcome& outcome) {
    return outcome.result == "refused" || outcome.result == "error";
  });
}

Engine::Engine(std::shared_ptr<const Config> config, StateStore* state,
               adapters::AdapterSecrets secrets, const std::atomic<bool>& stop)
    : m_config(std::move(config)), m_state(state), m_secrets(std::move(secrets)), m_stop(stop) {}

HeldSubjects Engine::held_subjects(const Rule& rule, Instant now) const {
  if (m_state == nullptr)
    return {};  // a dry run without a state DB: no holds exist yet
  return held_subjects_of(rule, m_state->holds(false, now));
}

void audit_config_change(StateStore& state, const Config& config) {
  if (state.last_config_digest() == config.digest)
    return;
  JsonWriter json;
  json.begin_object();
  json.field("digest", config.digest);
  json.key("files");
  json.begin_array();
  for (const auto& file : config.files)
    json.value(file.string());
  json.end_array();
  json.end_object();
  state.append_audit("config", "", 0, json.str());
}

RunSummary Engine::run_once(const RunOptions& options) {
  std::vector<const Rule*> rules;
  for (const Rule& rule : m_config->rules)
    if (options.only_rules.empty() ||
        std::find(options.only_rules.begin(), options.only_rules.end(), rule.id) !=
            options.only_rules.end())
      rules.push_back(&rule);

  if (!options.dry_run) {
    audit_config_change(*m_state, *m_config);
    JsonWriter json;
    json.begin_object();
    json.field("command", options.command);
    json.field("config_digest", m_config->digest);
    json.key("rules");
    json.begin_array();
    for (const Rule* rule : rules)
      json.value(rule->id);
    json.end_array();
    json.end_object();
    m_state->append_audit("run_start", "", 0, json.str());
  }

  // Rules of one datastore run one after the other on one connection.
  adapters::DatastorePool stores(
      *m_config, options.dry_run ? adapters::OpenMode::read_only : adapters::OpenMode::read_write,
      m_secrets);
  RunSummary summary;
  for (const Rule* rule : rules) {
    if (m_stop.load()) {
      summary.outcomes.push_back(
          {rule->id, "partial", 0, "stopped before this rule started", {}, {}});
      continue;
    }
    adapters::Datastore* store = nullptr;
    adapters::LinkedFiles* linked_files = nullptr;
    try {
      store = &stores.get(rule->datastore);
      linked_files = stores.linked_files_of(*rule);
    } catch (const std::exception& error) {
      spdlog::error("rule {}: {}", rule->id, error.what());
      if (!options.dry_run)
        audit_rule_failure(*rule, "error", error.what(), 0);
      summary.outcomes.push_back({rule->id, "error", 0, error.what(), {}, {}});
      continue;
    }
    summary.outcomes.push_back(run_rule(*rule, *store, linked_files, options));
  }
  std::sort(summary.outcomes.begin(), summary.outcomes.end(),
            [](const RuleOutcome& a, const RuleOutcome& b) { return a.rule < b.rule; });
  // A chain cut short at its end still verifies; the log (the journal, kept apart from the
  // state) is a witness of how far it reached.
  if (!options.dry_run) {
    try {
      spdlog::info("audit log head: {}", m_state->audit_head_hash());
    } catch (const std::exception& error) {
      spdlog::warn("cannot read the audit log's head: {}", error.what());
    }
  }
  return summary;
}

void Engine::audit_rule_failure(const Rule& rule, const std::string& kind,
                                const std::string& message, std::int64_t run_id) {
  try {
    m_state->append_audit(kind, rule.id, 0, message_detail(run_id, kind, message));
  } catch (const std::exception& error) {
    spdlog::error("rule {}: cannot write the audit entry: {}", rule.id, error.what());
  }
}

void Engine::audit_refusals(const Rule& rule, std::int64_t run_id,
                            const std::vector<std::pair<std::string, std::string>>& refusals) {
  JsonWriter json;
  json.begin_object();
  json.field("run", run_id);
  json.field("result", "refused");
  json.key("refusals");
  json.begin_array();
  for (const auto& [what, reason] : refusals) {
    spdlog::warn("rule {}: {} kept, refused: {}", rule.id, what, reason);
    json.begin_object();
    json.field("record", what);
    json.field("reason", reason);
    json.end_object();
  }
  json.end_array();
  json.end_object();
  m_state->append_audit("refused", rule.id, 0, json.str());
}

void Engine::warn_about_backlog(const Rule& rule, std::int64_t run_id, RuleOutcome& outcome) const {
  // Like a lease reclamation that never catches up: one run out of time is normal after a
  // backlog, several in a row mean the rule cannot keep up with its data.
  outcome.backlog_runs = 1;
  for (const RunRecord& run : m_state->last_runs(rule.id, k_backlog_warning_runs * 4)) {
    if (run.id == run_id)
      continue;
    if (run.result != "partial")
      break;
    ++outcome.backlog_runs;
  }
  if (outcome.backlog_runs >= k_backlog_warning_runs)
    spdlog::warn("rule {}: {} runs in a row ended with rows still due; raise max_runtime or run "
                 "it more often",
                 rule.id, outcome.backlog_runs);
}

RuleOutcome Engine::run_rule(const Rule& rule, adapters::Datastore& store,
                             adapters::LinkedFiles* linked_files, const RunOptions& options) {
  if (rule.action == Action::keep)
    return {rule.id, "keep", 0, "kept forever by policy", {}, {}};
  const Instant now = now_utc();
  if (options.dry_run) {
    // One rule's failure (its datastore locked, a value the server cannot read) is its own:
    // the others are still counted.
    try {
      return enforce(rule, store, linked_files, options, 0, now);
    } catch (const std::exception& error) {
      spdlog::error("rule {}: {}", rule.id, error.what());
      return {rule.id, "error", 0, error.what(), {}, {}};
    }
  }

  // With a state that several hosts share, one of them runs a rule at a time; the others
  // leave it to that one.
  std::expected<std::unique_ptr<RuleLock>, std::string> lock;
  try {
    lock = m_state->lock_rule(rule.id);
  } catch (const std::exception& error) {
    spdlog::error("rule {}: {}", rule.id, error.what());
    audit_rule_failure(rule, "error", error.what(), 0);
    return {rule.id, "error", 0, error.what(), {}, {}};
  }
  if (!lock) {
    spdlog::info("rule {}: skipped: {}", rule.id, lock.error());
    return {rule.id, "skipped", 0, lock.error(), {}, {}};
  }
  if (options.still_due && !options.still_due(rule)) {
    constexpr std::string_view k_ran = "another process sharing the state has just run it";
    spdlog::info("rule {}: skipped: {}", rule.id, k_ran);
    return {rule.id, "skipped", 0, std::string{k_ran}, {}, {}};
  }
  try {
    close_interrupted_run(rule, store, linked_files);
  } catch (const std::exception& error) {
    // No run of the rule until then: a new run would hide the one to close, and its batches
    // would replace the token to ask about.
    const std::string message = fmt::format(
        "cannot close the last run, which the process did not finish: {}", error.what());
    spdlog::error("rule {}: {}", rule.id, message);
    audit_rule_failure(rule, "error", message, 0);
    return {rule.id, "error", 0, message, {}, {}};
  }
  const std::int64_t run_id = m_state->begin_run(rule.id, now);
  RuleOutcome outcome;
  try {
    outcome = enforce(rule, store, linked_files, options, run_id, now);
  } catch (const std::exception& error) {
    const auto* failed = dynamic_cast<const FailedAfterBatches*>(&error);
    outcome = failed != nullptr ? failed->progress : RuleOutcome{rule.id, {}, 0, {}, {}, {}};
    outcome.result = "error";
    outcome.message = error.what();
    spdlog::error("rule {}: {}{}", rule.id, error.what(),
                  outcome.rows > 0 ? fmt::format(" ({} rows changed before)", outcome.rows) : "");
    audit_rule_failure(rule, "error", error.what(), run_id);
    if (failed != nullptr && failed->run_left_open)
      return outcome;
  }
  if (!rule.glob.empty() || rule.files)
    forget_pending_files(rule);
  m_state->finish_run(run_id, outcome.result, outcome.rows, outcome.message, now_utc());
  return outcome;
}

bool Engine::take_back_if_written(const Rule& rule, std::int64_t run_id, int batch_number) {
  try {
    std::optional<AuditEntry> written;
    m_state->for_each_audit_entry(AuditFilter{rule.id, std::nullopt}, [&](const AuditEntry& entry) {
      if (entry.kind == "batch" && entry.rows > 0 &&
          detail_integer(entry.detail, "run") == run_id &&
          detail_integer(entry.detail, "batch") == batch_number)
        written = entry;
    });
    if (!written)
      return true;
    // It never committed, so it removed no file either: all of it goes back.
    m_state->append_audit("batch", rule.id, -written->rows,
                          fmt::format("{{\"run\":{},\"reverts\":{},\"reason\":\"the state "
                                      "reported the batch's audit entry unwritten, so the batch "
                                      "rolled back; the entry was written all the same\"}}",
                                      run_id, written->seq));
    spdlog::warn("rule {}: the audit entry (seq {}) of a batch that rolled back was written "
                 "although the state reported an error: undone in the audit log",
                 rule.id, written->seq);
    return true;
  } catch (const std::exception& error) {
    spdlog::error("rule {}: cannot tell whether the audit entry of batch {} of run {} was "
                  "written ({}); the run stays open, for the rule's next run to set right",
                  rule.id, batch_number, run_id, error.what());
    return false;
  }
}

void Engine::forget_pending_files(const Rule& rule) {
  try {
    m_state->clear_pending_files(rule.id);
  } catch (const std::exception& error) {
    // Harmless for the audit log: a record is only read for a run that did not end.
    spdlog::warn("rule {}: {}", rule.id, error.what());
  }
}

void Engine::close_interrupted_run(const Rule& rule, adapters::Datastore& store,
                                   adapters::LinkedFiles* linked_files) {
  const std::vector<RunRecord> runs = m_state->last_runs(rule.id, 1);
  if (runs.empty() || runs.front().result != "running")
    return;
  // Only the last run can be under way, and this process holds the rule's lock: it died.
  const RunRecord& run = runs.front();
  // Its entries, found by the run's id in the rule's whole log (times may step back with the
  // clock).
  std::vector<AuditEntry> batches;  // its batches that changed rows, in order
  std::set<std::int64_t> reverted;
  // Of each batch, what entries that revert or correct it have taken back so far (a run that
  // closed this one may have died part way).
  std::map<std::int64_t, std::int64_t> taken_back;
  std::int64_t rows = 0;
  Instant ended = parse_iso8601(run.started).value_or(now_utc());
  m_state->for_each_audit_entry(AuditFilter{rule.id, std::nullopt}, [&](const AuditEntry& entry) {
    if (detail_integer(entry.detail, "run") != run.id)
      return;
    if (const auto time = parse_iso8601(entry.time))
      ended = std::max(ended, *time);
    if (entry.kind != "batch")
      return;
    rows += entry.rows;
    const auto reverts = detail_integer(entry.detail, "reverts");
    const auto corrects = detail_integer(entry.detail, "corrects");
    if (reverts)
      reverted.insert(*reverts);
    if (reverts || corrects)
      taken_back[reverts ? *reverts : *corrects] -= entry.rows;
    else if (entry.rows > 0)
      batches.push_back(entry);
  });
  for (const AuditEntry& batch : undone_batches(rule, store, run.id, batches)) {
    if (reverted.contains(batch.seq))
      continue;
    // Its rows are back. Linked files it removed before the end stay removed: which of them
    // went is settled below, from the state's record of its pending files.
    const std::int64_t undone = detail_integer(batch.detail, "table_rows").value_or(0) +
                                detail_integer(batch.detail, "cascade_rows").value_or(0);
    m_state->append_audit("batch", rule.id, -undone,
                          fmt::format("{{\"run\":{},\"reverts\":{},\"reason\":\"the process "
                                      "ended after the batch's audit entry and before its "
                                      "commit\"}}",
                                      run.id, batch.seq));
    rows -= undone;
    reverted.insert(batch.seq);
    taken_back[batch.seq] += undone;
    spdlog::warn("rule {}: run {} ended between the audit entry of a batch and its commit; the "
                 "{} rows that entry (seq {}) counted were not changed: undone in the audit log",
                 rule.id, run.id, undone, batch.seq);
  }
  rows -= take_back_files_left(rule, store, linked_files, run.id, batches, reverted, taken_back);
  m_state->finish_run(run.id, "error", rows, std::string{k_run_left_open}, ended);
}

std::int64_t Engine::take_back_files_left(const Rule& rule, adapters::Datastore& store,
                                          adapters::LinkedFiles* linked_files, std::int64_t run_id,
                                          const std::vector<AuditEntry>& batches,
                                          const std::set<std::int64_t>& rolled_back,
                                          const std::map<std::int64_t, std::int64_t>& taken_back) {
  const std::optional<PendingFiles> pending = m_state->pending_files(rule.id);
  if (!pending)
    return 0;
  // The record names the run's last batch with files, unless it is left from an earlier run.
  const auto batch = std::find_if(batches.begin(), batches.end(), [&](const AuditEntry& entry) {
    return detail_string(entry.detail, "token") == pending->token;
  });
  adapters::LinkedFiles* files = linked_files != nullptr ? linked_files : store.linked_files();
  if (batch != batches.end() && files == nullptr)
    spdlog::warn("rule {}: cannot tell which files of its batch (seq {}) are still there: the "
                 "rule names no files datastore any more; its audit entry stands",
                 rule.id, batch->seq);
  std::int64_t left = 0;
  if (batch != batches.end() && files != nullptr) {
    // What the batch really changed: its rows unless they rolled back, and its files that are
    // gone. Entries that already reverted or corrected it (written after its commit ended, or
    // by a close of this run that died part way) count against what is still to take back.
    const auto recorded = static_cast<std::int64_t>(pending->files.size());
    const std::int64_t present = files->count_present(pending->files);
    const std::int64_t rows_kept = rolled_back.contains(batch->seq) ? 0 : batch->rows - recorded;
    const auto earlier = taken_back.find(batch->seq);
    const std::int64_t audited = batch->rows - (earlier != taken_back.end() ? earlier->second : 0);
    left = std::max<std::int64_t>(0, audited - (rows_kept + recorded - present));
  }
  if (left > 0) {
    m_state->append_audit("batch", rule.id, -left,
                          fmt::format("{{\"run\":{},\"corrects\":{},\"reason\":\"the process "
                                      "ended before the batch had removed these files, which are "
                                      "still there\"}}",
                                      run_id, batch->seq));
    spdlog::warn("rule {}: run {} ended among the file removals of a batch (seq {}): {} of its "
                 "files are still there, taken back in the audit log",
                 rule.id, run_id, batch->seq, left);
  }
  m_state->clear_pending_files(rule.id);
  return left;
}

std::vector<AuditEntry> Engine::undone_batches(const Rule& rule, adapters::Datastore& store,
                                               std::int64_t run_id,
                                               const std::vector<AuditEntry>& batches) {
  if (batches.empty())
    return {};
  const AuditEntry& last = batches.back();
  // Batches written before batches were named, or on a datastore the rule no longer uses, are
  // nothing this datastore can answer for.
  if (!detail_string(last.detail, "token") ||
      detail_string(last.detail, "datastore") != rule.datastore)
    return {};
  // A batch's audit entry commits before the batch does, and the datastore tells which batch
  // of the rule committed last (SQLite keeps its token; PostgreSQL remembers the outcome of
  // each transaction): the batches after that one never committed. A killed process leaves at
  // most the last; a power loss, the last two (SQLite syncs a WAL-mode datastore's log behind
  // its commits). Further back, a batch the datastore does not know of says something else
  // happened to it (restored from a backup): better no guess.
  constexpr std::size_t k_may_be_lost = 2;
  constexpr std::size_t k_looked_at = k_may_be_lost + 1;
  const std::size_t first = batches.size() > k_looked_at ? batches.size() - k_looked_at : 0;
  for (std::size_t i = batches.size(); i-- > first;) {
    const std::optional<std::string> token = detail_string(batches[i].detail, "token");
    if (!token)
      return {};
    const std::optional<bool> committed = store.batch_committed(rule, *token);
    if (!committed)
      return {};  // the datastore cannot tell
    if (*committed)
      return {batches.begin() + static_cast<std::ptrdiff_t>(i) + 1, batches.end()};
  }
  if (batches.size() <= k_may_be_lost)
    return batches;  // none of the run's batches committed
  spdlog::warn("rule {}: cannot tell which batches of run {} committed: the datastore holds "
               "none of its last {} batch tokens; its audit entries are left as they are",
               rule.id, run_id, k_looked_at);
  return {};
}

RuleOutcome Engine::enforce(const Rule& rule, adapters::Datastore& store,
                            adapters::LinkedFiles* linked_files, const RunOptions& options,
                            std::int64_t run_id, Instant now) {
  RuleOutcome outcome{rule.id, "ok", 0, "", {}, cutoff_for(now, rule.retain)};
  const auto refuse = [&](std::string message) {
    spdlog::error("rule {}: refused: {}", rule.id, message);
    if (!options.dry_run)
      audit_rule_failure(rule, "refused", message, run_id);
    outcome.result = "refused";
    outcome.message = std::move(message);
    return outcome;
  };

  const adapters::SchemaCheck schema = store.check_schema(rule);
  for (const std::string& warning : schema.warnings)
    spdlog::warn("rule {}: {}", rule.id, warning);
  if (!schema.errors.empty())
    return refuse(fmt::format("{}", fmt::join(schema.errors, "; ")));

  // SIGTERM during the reads before the first batch (a census can scan a whole table) ends the
  // run at once: nothing has changed yet.
  const auto stopped_before_changes = [&](const adapters::CensusStopped& stopped) {
    outcome.result = "partial";
    outcome.message = stopped.what();
    spdlog::warn("rule {}: {}", rule.id, outcome.message);
    if (!options.dry_run)
      m_state->append_audit("rule_done", rule.id, 0,
                            message_detail(run_id, outcome.result, outcome.message));
    return outcome;
  };

  HeldSubjects held = held_subjects(rule, now);
  adapters::Selection selection{rule,
                                outcome.cutoff,
                                now,
                                held.subjects,
                                linked_files,
                                &m_stop,
                                options.on_census_progress ? &options.on_census_progress : nullptr};
  try {
    outcome.counts = store.count(selection);
  } catch (const adapters::CensusStopped& stopped) {
    return stopped_before_changes(stopped);
  }
  outcome.counted = true;
  if (held.suspended) {
    outcome.result = "held";
    outcome.message = "suspended by a hold on the whole rule";
    spdlog::warn("rule {}: {}", rule.id, outcome.message);
    if (!options.dry_run)
      m_state->append_audit("rule_done", rule.id, 0,
                            message_detail(run_id, "held", outcome.message));
    return outcome;
  }
  const adapters::RuleCounts& counts = outcome.counts;
  if (counts.wrong_scale > 0)
    return refuse(wrong_scale_problem(rule, counts.wrong_scale));
  if (!options.confirm_mass.contains(rule.id))
    if (auto problem = mass_change_problem(rule, counts))
      return refuse(*problem);
  if (options.dry_run) {
    outcome.result = "dry_run";
    outcome.rows = counts.due;
    return outcome;
  }

  const auto started = Clock::now();
  adapters::RunPlan plan;
  try {
    plan = store.plan_run(selection);
  } catch (const adapters::CensusStopped& stopped) {
    return stopped_before_changes(stopped);
  }
  // In the clock's own unit: a share of a batch_time of a few milliseconds is not 0.
  const Clock::duration batch_aim =
      std::chrono::duration_cast<Clock::duration>(rule.batch_time) *
      (plan.in_physical_order ? k_work_share_in_physical_order : k_work_share_of_batch_time) / 100;
  spdlog::debug(
      "rule {}: run planned in {} us; batches of {} us{}", rule.id,
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count(),
      std::chrono::duration_cast<std::chrono::microseconds>(batch_aim).count(),
      plan.in_physical_order ? " (rows in the table's order)" : "");
  std::int64_t limit =
      plan.in_physical_order ? k_first_batch_size_in_physical_order : k_first_batch_size;
  // What follows a batch's statements (its audit entry and commit), as the last batch took:
  // the statements must end that much before the aim. Before the first batch, the most it may
  // take: committing wide rows can take a third of the time their statements took.
  Clock::duration batch_tail = batch_aim / 2;
  int batches = 0;
  bool run_left_open = false;  // see FailedAfterBatches
  try {
    while (true) {
      if (m_stop.load()) {
        outcome.result = "partial";
        outcome.message = adapters::k_stopped_by_signal;
        break;
      }
      if (rule.max_runtime && Clock::now() - started >= *rule.max_runtime) {
        outcome.result = "partial";
        outcome.message = fmt::format("max_runtime {} reached with rows still due",
                                      format_duration(*rule.max_runtime));
        warn_about_backlog(rule, run_id, outcome);
        break;
      }
      // Holds are re-read before every batch so a hold placed mid-run applies to the next one.
      held = held_subjects(rule, now);
      selection.held_subjects = held.subjects;
      if (held.suspended) {
        outcome.result = "held";
        outcome.message = "suspended by a hold on the whole rule during the run";
        break;
      }
      const auto batch_started = Clock::now();
      auto batch = store.begin_batch(
          selection, limit, batch_aim - std::min<Clock::duration>(batch_tail, batch_aim / 2));
      const auto statements_done = Clock::now();
      if (!batch)
        break;
      std::int64_t changed = batch->rows() + batch->children() + batch->files();
      if (!batch->refusals().empty())
        audit_refusals(rule, run_id, batch->refusals());
      outcome.refused += static_cast<std::int64_t>(batch->refusals().size());
      if (changed > 0) {
        ++batches;
        // The audit entry commits first: a crash between the two leaves an entry for a batch
        // that rolled back, never a change without its entry.
        AuditEntry entry;
        try {
          std::string detail = batch_detail(run_id, batches, outcome.cutoff, *batch, rule);
          // The files its commit removes go on record with the entry: a crash among them leaves
          // the next run the list of those it had not reached.
          std::vector<PendingFile> pending = batch->pending_files();
          entry = pending.empty()
                      ? m_state->append_audit("batch", rule.id, changed, std::move(detail))
                      : m_state->append_batch_audit(rule.id, changed, std::move(detail),
                                                    {batch->token(), std::move(pending)});
        } catch (const std::exception&) {
          batch.reset();  // rolls back: no change without its entry
          // A write that failed at its sync, or a PostgreSQL COMMIT that lost its connection,
          // may have left the entry all the same.
          run_left_open = !take_back_if_written(rule, run_id, batches);
          throw;
        }
        try {
          batch->commit();
        } catch (const adapters::CommitInDoubt&) {
          // The entry may be right or not: the rule's next run asks the datastore.
          run_left_open = true;
          throw;
        } catch (const std::exception& error) {
          // Keep the audited sum equal to what really changed: the rows are undone, but files
          // removed before the failure stay removed.
          const std::int64_t removed = batch->files_removed();
          outcome.rows += removed;
          outcome.files += rule.files ? removed : 0;
          try {
            m_state->append_audit(
                "batch", rule.id, -(changed - removed),
                fmt::format("{{\"run\":{},\"reverts\":{},\"files_removed\":{},\"reason\":{}}}",
                            run_id, entry.seq, removed, json_quote(error.what())));
          } catch (const std::exception& audit_error) {
            // The batch's entry stands for now; the rule's next run finds that the batch
            // never committed (its token) and takes the entry back.
            spdlog::error("rule {}: cannot take back the audit entry (seq {}) of a batch that "
                          "did not commit: {}",
                          rule.id, entry.seq, audit_error.what());
            run_left_open = true;
          }
          throw;
        }
        if (batch->vanished() > 0) {
          changed -= batch->vanished();
          m_state->append_audit(
              "batch", rule.id, -batch->vanished(),
              fmt::format("{{\"run\":{},\"corrects\":{},\"reason\":\"files had "
                          "gone or changed when the batch came to remove them\"}}",
                          run_id, entry.seq));
        }
      } else {
        batch->commit();  // a slice without due rows: nothing to audit
      }
      outcome.rows += changed;
      outcome.children += batch->children();
      // Linked files someone else removed first are not counted (they are out of `changed`).
      outcome.files += batch->files() - (rule.files ? batch->vanished() : 0);
      const bool exhausted = batch->exhausted();
      const bool cut_short = batch->cut_short();
      const std::optional<std::int64_t> covered = batch->stopped_at_deadline();
      const Clock::duration waited_for_lock = batch->waited_for_lock();
      batch.reset();
      const auto batch_ended = Clock::now();
      const auto took = batch_ended - batch_started;
      batch_tail = batch_ended - statements_done;
      if (options.on_batch)
        options.on_batch(rule, took, changed);
      spdlog::debug("rule {}: batch of size {} changed {} rows in {} us{}", rule.id, limit, changed,
                    std::chrono::duration_cast<std::chrono::microseconds>(took).count(),
                    cut_short ? " (cut short)"
                    : covered ? fmt::format(" (stopped at its deadline after {})", *covered)
                              : "");
      // After the last batch too: finish_run's final checkpoint holds off writers for a moment,
      // so a writer that queued behind the last batch gets in first.
      store.between_batches(rule.batch_time / 2);
      if (exhausted)
        break;
      // A batch stopped at its deadline measured how long the part it covered takes; a wait for
      // the write lock says nothing about the size.
      // When what follows the statements (the audit entry's and the commit's syncs: a slow
      // disk, a rollback journal) takes most of the aim, the statements still get half of it:
      // shrinking the batch would not shorten the syncs, only multiply them (a 1 ms
      // batch_time on a rollback journal made batches of one row).
      if (!cut_short)
        limit = next_batch_size(covered.value_or(limit), took - waited_for_lock,
                                std::max<Clock::duration>(batch_aim, batch_tail + batch_aim / 2));
    }
  } catch (const std::exception& error) {
    // The batches committed before the error stay changed: the outcome counts them, and their
    // deleted values still leave the WAL.
    if (outcome.rows > 0)
      finish_after_failure(store, rule);
    throw FailedAfterBatches(error.what(), std::move(outcome), run_left_open);
  }
  // Also when this run changed nothing: a run killed before its finish_run (or whose final
  // checkpoint a reader blocked) may have left deleted values in a SQLite WAL that the
  // application keeps open, and no later run would otherwise take them out. The adapter skips
  // what there is nothing to do for (an empty WAL).
  store.finish_run();

  JsonWriter json;
  json.begin_object();
  json.field("run", run_id);
  json.field("result", outcome.result);
  json.field("cutoff", format_iso8601(outcome.cutoff));
  json.field("batches", std::int64_t{batches});
  json.field("rows_changed", outcome.rows);
  json.field("cascade_rows", outcome.children);
  json.field("files", outcome.files);
  json.field("refused", outcome.refused);
  json.field("held", counts.held);
  json.field("undated", counts.undated);
  json.field("unreadable", counts.unreadable);
  json.end_object();
  m_state->append_audit("rule_done", rule.id, 0, json.str());
  // outcome.rows counts the dependent rows and linked files too (as the audit log does).
  // A run cut short (max_runtime, a signal, a hold) is worth a look: a warning, with why.
  spdlog::log(outcome.result == "ok" ? spdlog::level::info : spdlog::level::warn,
              "rule {}: {} rows {}, {} dependent rows deleted{} ({}{}), cutoff {}", rule.id,
              outcome.rows - outcome.children - outcome.files,
              rule.action == Action::anonymize ? "anonymized" : "deleted", outcome.children,
              rule.files ? fmt::format(", {} linked files removed", outcome.files) : "",
              outcome.result, outcome.message.empty() ? "" : ": " + outcome.message,
              format_iso8601(outcome.cutoff));
  return outcome;
}

}  // namespace retentiond
