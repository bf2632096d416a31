#include "daemon/commands.hpp"

#include "daemon/command_support.hpp"
#include "daemon/config.hpp"
#include "daemon/engine.hpp"
#include "daemon/instance_lock.hpp"
#include "daemon/json_writer.hpp"
#include "daemon/logging.hpp"
#include "daemon/report.hpp"
#include "daemon/service.hpp"
#include "daemon/service_metrics.hpp"
#include "daemon/state_store.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <sstream>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace retentiond {
namespace {

std::filesystem::path config_path(const CommandLine& line) {
  if (line.config_file)
    return *line.config_file;
  if (const char* env = std::getenv("RETENTIOND_CONFIG"); env != nullptr && *env != '\0')
    return env;
  return "/etc/retentiond/retentiond.toml";
}

// Reads a secret key file. A trailing newline is not part of the key (echo adds one). Errors
// point at the key's value in the configuration (`where`).
std::string read_key_file(const SourcePosition& where, std::string_view key,
                          const std::filesystem::path& path) {
  // A directory opens, and reads as nothing: not "holds 0 bytes".
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw ConfigError(where, fmt::format("{}: cannot read key file '{}': is a directory, not a "
                                         "file (name the file holding the key)",
                                         key, path.string()));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ConfigError(where, fmt::format("{}: cannot read key file '{}': {}", key, path.string(),
                                         std::generic_category().message(errno)));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  std::string secret = bytes.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r'))
    secret.pop_back();
  if (secret.size() < 16)
    throw ConfigError(where,
                      fmt::format("{}: key file '{}' holds {} bytes; use at least 16 random bytes "
                                  "(head -c 32 /dev/urandom > FILE)",
                                  key, path.string(), secret.size()));
  struct stat info {};
  if (::stat(path.c_str(), &info) == 0 && (info.st_mode & S_IROTH) != 0)
    spdlog::warn("{}: key file '{}' is readable by every user (chmod 600 it)", key, path.string());
  return secret;
}

}  // namespace

adapters::AdapterSecrets secrets_of(const Config& config) {
  adapters::AdapterSecrets secrets;
  if (config.hmac_key_file)
    secrets.hmac_key =
        read_key_file(config.hmac_key_file_position, "daemon.hmac_key_file", *config.hmac_key_file);
  return secrets;
}

std::optional<std::string> audit_key_of(const Config& config) {
  if (!config.audit_key_file)
    return std::nullopt;
  return read_key_file(config.audit_key_file_position, "state.audit_key_file",
                       *config.audit_key_file);
}

void create_state_directory(const Config& config) {
  if (!config.state_dsn.empty())
    return;
  const std::filesystem::path directory = config.state_path.parent_path();
  if (!directory.empty())
    std::filesystem::create_directories(directory);
}

bool lock_state(const Config& config, std::optional<InstanceLock>& lock) {
  if (!config.state_dsn.empty())
    return true;
  std::string holder;
  auto acquired = InstanceLock::try_acquire(config.state_path, holder);
  if (acquired)
    lock.emplace(std::move(*acquired));
  else
    print_message(
        spdlog::level::err,
        fmt::format("retentiond: error: another retentiond{} holds the lock on {}; try again "
                    "when it has finished",
                    holder.empty() ? "" : " (pid " + holder + ")", config.state_path.string()));
  return lock.has_value();
}

namespace {

Instant parse_date_option(std::string_view option, const std::string& text) {
  auto instant = parse_iso8601(text);
  if (!instant)
    throw UsageError(fmt::format("{}: {}", option, instant.error()));
  return *instant;
}

void check_rule_names(const Config& config, const std::vector<std::string>& names,
                      std::string_view option) {
  for (const std::string& name : names)
    if (config.find_rule(name) == nullptr)
      throw UsageError(fmt::format("{}: unknown rule '{}' (see retentiond check)", option, name));
}

// Writes all of `text` to `fd`; false, with errno set, when it cannot (ENOSPC: a full disk).
bool write_all(int fd, std::string_view text) {
  while (!text.empty()) {
    const ssize_t written = ::write(fd, text.data(), text.size());
    if (written < 0 && errno == EINTR)
      continue;
    if (written < 0)
      return false;
    text.remove_prefix(static_cast<std::size_t>(written));
  }
  return true;
}

[[noreturn]] void cannot_write(const std::string& path, int error) {
  throw std::runtime_error(
      fmt::format("cannot write {}: {}", path, std::generic_category().message(error)));
}

// Who may read a file write_output creates.
enum class OutputAccess {
  by_umask,  // the process's umask decides (a report: the operator's choice)
  everyone,  // 0644 whatever the umask: metrics for a collector running as another user
};

void write_output(const std::optional<std::string>& output, const std::string& text,
                  OutputAccess access = OutputAccess::by_umask) {
  if (!output || *output == "-") {
    std::cout << text << std::flush;
    if (!std::cout)
      throw std::runtime_error("cannot write the standard output");
    return;
  }
  // A device, pipe or symlink (/dev/null, /dev/stdout, a FIFO a collector reads, a link an
  // operator keeps) is written in place: renaming over it would replace it with a plain file.
  std::error_code error;
  const auto target = std::filesystem::symlink_status(*output, error);
  if (std::filesystem::exists(target) && !std::filesystem::is_regular_file(target)) {
    // O_CREAT: a symlink whose target does not exist yet gets it created.
    const int fd = ::open(output->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
      cannot_write(*output, errno);
    const bool written = write_all(fd, text);
    const int failure = errno;
    ::close(fd);
    if (!written)
      cannot_write(*output, failure);
    return;
  }
  // A file: write beside it, then rename, so that a reader never sees half a report and a
  // failed write (a full disk) leaves the previous one in place.
  const std::string temporary = *output + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0)
    cannot_write(*output, errno);
  bool written = (access == OutputAccess::by_umask || ::fchmod(fd, 0644) == 0) &&
                 write_all(fd, text) && ::fsync(fd) == 0;
  int failure = errno;
  if (::close(fd) != 0 && written) {
    written = false;
    failure = errno;
  }
  if (written && ::rename(temporary.c_str(), output->c_str()) != 0) {
    written = false;
    failure = errno;
  }
  if (!written) {
    ::unlink(temporary.c_str());
    cannot_write(*output, failure);
  }
}

int command_check(const CommandLine& line, const Config& config) {
  const adapters::AdapterSecrets secrets = secrets_of(config);
  (void)audit_key_of(config);
  if (!line.connect) {
    std::cout << fmt::format("configuration OK: {} rules, {} datastores, {} files (digest {})\n",
                             config.rules.size(), config.datastores.size(), config.files.size(),
                             config.digest.substr(0, 16));
    return k_exit_ok;
  }
  int problems = 0;
  adapters::DatastorePool stores(config, adapters::OpenMode::read_only, secrets);
  const auto complain = [&](spdlog::level::level_enum level, const Rule& rule,
                            const std::string& message) {
    print_message(level, fmt::format("retentiond: {}: {}: rules.{}: {}",
                                     level == spdlog::level::warn ? "warning" : "error",
                                     rule.position.to_string(), rule.id, message));
  };
  // A PostgreSQL state is a server too: reach it as every command will.
  if (!config.state_dsn.empty()) {
    try {
      (void)open_state_store(config, StateStore::Mode::read_only, audit_key_of(config));
    } catch (const std::exception& error) {
      print_message(spdlog::level::err, fmt::format("retentiond: error: state: {}", error.what()));
      ++problems;
    }
  }
  for (const Rule& rule : config.rules) {
    try {
      adapters::Datastore& store = stores.get(rule.datastore);
      const adapters::SchemaCheck check = store.check_schema(rule);
      for (const std::string& warning : check.warnings)
        complain(spdlog::level::warn, rule, warning);
      for (const std::string& error : check.errors)
        complain(spdlog::level::err, rule, error);
      problems += static_cast<int>(check.errors.size());
      if (check.errors.empty() && rule.action != Action::keep) {
        const Instant now = now_utc();
        const adapters::Selection selection{rule, now, now, {}, stores.linked_files_of(rule)};
        const adapters::RuleCounts counts = store.count(selection);
        if (counts.wrong_scale > 0) {
          complain(spdlog::level::err, rule, wrong_scale_problem(rule, counts.wrong_scale));
          ++problems;
        }
      }
    } catch (const std::exception& error) {
      complain(spdlog::level::err, rule, error.what());
      ++problems;
    }
  }
  // A datastore that no rule uses yet is opened too (check --connect opens every datastore), so
  // that a rule added later does not find it unreachable.
  for (const auto& [name, store_config] : config.datastores) {
    const bool used = std::any_of(config.rules.begin(), config.rules.end(), [&](const Rule& rule) {
      return rule.datastore == name || (rule.files && rule.files->datastore == name);
    });
    if (used)
      continue;
    try {
      (void)stores.get(name);
    } catch (const std::exception& error) {
      print_message(spdlog::level::err,
                    fmt::format("retentiond: error: {}: datastores.{}: {}",
                                store_config.position.to_string(), name, error.what()));
      ++problems;
    }
  }
  if (problems > 0)
    return k_exit_config;
  std::cout << fmt::format("configuration OK: {} rules checked against {} datastores\n",
                           config.rules.size(), stores.open_count());
  return k_exit_ok;
}

// What a run changed, told apart: "6 rows, 2 dependent rows, 6 linked files; 3 refused". The
// audit's `rows` is the sum of the three.
std::string changes(const RuleOutcome& outcome) {
  std::string text = fmt::format("{} rows", outcome.rows - outcome.children - outcome.files);
  if (outcome.children > 0)
    text += fmt::format(", {} dependent rows", outcome.children);
  if (outcome.files > 0)
    text += fmt::format(", {} linked files", outcome.files);
  if (outcome.refused > 0)
    text += fmt::format("; {} refused", outcome.refused);
  return text;
}

void write_metrics(const std::string& path, const RunSummary& summary, const StateStore& state) {
  std::string text;
  metric_family(text, "retentiond_rows_affected", "gauge",
                "Rows deleted or anonymized by the last run of a rule.");
  for (const RuleOutcome& outcome : summary.outcomes)
    text += fmt::format("retentiond_rows_affected{{rule=\"{}\"}} {}\n", outcome.rule, outcome.rows);
  metric_family(text, "retentiond_rule_result", "gauge",
                "Result of the last run of a rule (1 for its result).");
  for (const RuleOutcome& outcome : summary.outcomes)
    text += fmt::format("retentiond_rule_result{{rule=\"{}\",result=\"{}\"}} 1\n", outcome.rule,
                        outcome.result);
  metric_family(text, "retentiond_due_rows", "gauge",
                "Rows due when the last run of a rule started.");
  for (const RuleOutcome& outcome : summary.outcomes)
    text +=
        fmt::format("retentiond_due_rows{{rule=\"{}\"}} {}\n", outcome.rule, outcome.counts.due);
  metric_family(text, "retentiond_backlog_runs", "gauge",
                "Runs in a row that ended (max_runtime) with rows still due.");
  for (const RuleOutcome& outcome : summary.outcomes)
    text += fmt::format("retentiond_backlog_runs{{rule=\"{}\"}} {}\n", outcome.rule,
                        outcome.backlog_runs);
  metric_family(text, "retentiond_last_success_timestamp_seconds", "gauge",
                "Finish time of a rule's last successful run.");
  for (const RuleOutcome& outcome : summary.outcomes)
    if (auto success = state.last_success(outcome.rule))
      text += fmt::format("retentiond_last_success_timestamp_seconds{{rule=\"{}\"}} {}\n",
                          outcome.rule, to_unix_seconds(*success));
  // The node exporter's textfile collector reads it as its own user; it holds no personal data.
  write_output(path, text, OutputAccess::everyone);
}

int command_once(const CommandLine& line, const std::shared_ptr<const Config>& config,
                 const std::atomic<bool>& stop) {
  check_rule_names(*config, line.rules, "--rule");
  check_rule_names(*config, line.confirm_mass, "--confirm-mass");
  // A dry run opens the datastores read-only and masks nothing: it needs no hmac key.
  const adapters::AdapterSecrets secrets =
      line.dry_run ? adapters::AdapterSecrets{} : secrets_of(*config);
  RunOptions options;
  options.only_rules = line.rules;
  options.dry_run = line.dry_run;
  options.confirm_mass = {line.confirm_mass.begin(), line.confirm_mass.end()};

  if (line.dry_run) {
    // A dry run reads only: no lock, no audit entry, no run record.
    const auto state =
        open_state_store(*config, StateStore::Mode::read_only, audit_key_of(*config));
    Engine engine(config, state.get(), secrets, stop);
    const RunSummary summary = engine.run_once(options);
    for (const RuleOutcome& outcome : summary.outcomes) {
      const Rule& rule = *config->find_rule(outcome.rule);
      if (outcome.result == "dry_run")
        std::cout << fmt::format(
            "{}: would {} {} rows (held {}, undated {}, unreadable {}; cutoff {})\n", outcome.rule,
            rule.action == Action::anonymize ? "anonymize" : "delete", outcome.rows,
            outcome.counts.held, outcome.counts.undated, outcome.counts.unreadable,
            format_iso8601(outcome.cutoff));
      else
        std::cout << fmt::format("{}: {}{}\n", outcome.rule, outcome.result,
                                 outcome.message.empty() ? "" : ": " + outcome.message);
    }
    return summary.any_failed() ? k_exit_rule_failed : k_exit_ok;
  }

  create_state_directory(*config);
  std::optional<InstanceLock> lock;
  if (!lock_state(*config, lock))
    return k_exit_locked;
  const auto state = open_state_store(*config, StateStore::Mode::read_write, audit_key_of(*config));
  Engine engine(config, state.get(), secrets, stop);
  const RunSummary summary = engine.run_once(options);
  for (const RuleOutcome& outcome : summary.outcomes)
    std::cout << fmt::format("{}: {} ({}){}\n", outcome.rule, outcome.result, changes(outcome),
                             outcome.message.empty() ? "" : ": " + outcome.message);
  if (line.metrics_file)
    write_metrics(*line.metrics_file, summary, *state);
  return summary.any_failed() ? k_exit_rule_failed : k_exit_ok;
}

// --format, else the extension of --output (.html .json .md .csv, any case), else md.
std::string report_format(const CommandLine& line) {
  if (line.format) {
    if (std::find(std::begin(k_report_formats), std::end(k_report_formats), *line.format) ==
        std::end(k_report_formats))
      throw UsageError(fmt::format(
          "--format '{}': unknown report format; use html, json, md or csv", *line.format));
    return *line.format;
  }
  if (line.output && *line.output != "-") {
    std::string extension = std::filesystem::path(*line.output).extension().string();
    for (char& c : extension)
      if (c >= 'A' && c <= 'Z')
        c = static_cast<char>(c - 'A' + 'a');
    for (const std::string_view format : k_report_formats)
      if (extension.size() > 1 && extension.substr(1) == format)
        return std::string{format};
    throw UsageError(fmt::format("--output '{}': cannot tell the report format from the extension; "
                                 "name the file .html, .json, .md or .csv, or add --format "
                                 "html|json|md|csv",
                                 *line.output));
  }
  return "md";
}

// --format of `audit log` and `hold list`.
std::string text_or_json(const CommandLine& line) {
  const std::string format = line.format.value_or("text");
  if (format != "text" && format != "json")
    throw UsageError(fmt::format("--format '{}': expected text or json", format));
  return format;
}

std::int64_t hold_id_of(const CommandLine& line) {
  try {
    std::size_t used = 0;
    const std::int64_t id = std::stoll(*line.hold_id, &used);
    if (used != line.hold_id->size())
      throw std::invalid_argument("trailing");
    return id;
  } catch (const std::exception&) {
    throw UsageError(fmt::format("hold release: '{}' is not a hold id (see retentiond hold list)",
                                 *line.hold_id));
  }
}

std::optional<Instant> hold_until(const CommandLine& line, Instant now) {
  if (!line.until)
    return std::nullopt;
  const Instant until = parse_date_option("--until", *line.until);
  if (until <= now)
    throw UsageError(fmt::format("--until '{}' is in the past", *line.until));
  return until;
}

// Every usage error that needs no configuration, found before it is read: `report --format
// pdf` is exit 2 whatever state the configuration is in. (Rule names need the configuration.)
void check_usage(const CommandLine& line) {
  const std::string& command = line.command.front();
  if (command == "report") {
    (void)report_format(line);
    if (line.as_of)
      (void)parse_date_option("--as-of", *line.as_of);
  }
  if (command == "audit" && line.command[1] == "log") {
    (void)text_or_json(line);
    if (line.since)
      (void)parse_date_option("--since", *line.since);
  }
  if (command == "hold") {
    const std::string& verb = line.command[1];
    if (verb == "list")
      (void)text_or_json(line);
    if (verb == "add")
      (void)hold_until(line, now_utc());
    if (verb == "release")
      (void)hold_id_of(line);
  }
}

int command_report(const CommandLine& line, const Config& config) {
  check_rule_names(config, line.rules, "--rule");
  const std::string format = report_format(line);
  const Instant as_of = line.as_of ? parse_date_option("--as-of", *line.as_of) : now_utc();
  const auto state = open_state_store(config, StateStore::Mode::read_only, audit_key_of(config));
  const Report report =
      // Read-only datastores mask nothing: an auditor's account needs no hmac key.
      build_report(config, *state, adapters::AdapterSecrets{}, as_of, line.rules, format == "html");
  write_output(line.output, render_report(report, format));
  const bool failed = std::any_of(report.rules.begin(), report.rules.end(),
                                  [](const RuleReport& r) { return r.status == "error"; });
  return failed ? k_exit_rule_failed : k_exit_ok;
}

int command_audit(const CommandLine& line, const Config& config) {
  const auto state = open_state_store(config, StateStore::Mode::read_only, audit_key_of(config));
  if (line.command[1] == "verify") {
    const AuditVerification result = state->verify_audit();
    if (!result.ok) {
      // No failing entry: the chain could not be checked at all (another audit key).
      print_message(
          spdlog::level::err,
          fmt::format(fmt::runtime(result.bad_seq ? "retentiond: error: audit log {} is broken: {}"
                                                  : "retentiond: error: cannot verify the audit "
                                                    "log {}: {}"),
                      state->describe(), result.problem));
      return k_exit_rule_failed;
    }
    std::cout << fmt::format("audit log verified: {} entries, head {}\n", result.entries,
                             result.head_hash);
    return k_exit_ok;
  }
  const std::string format = text_or_json(line);
  AuditFilter filter;
  if (!line.rules.empty())
    filter.rule = line.rules.front();
  if (line.since)
    filter.since = parse_date_option("--since", *line.since);
  // Written as read, page by page: a slow reader of the output (a pager) holds no lock on the
  // state meanwhile.
  state->for_each_audit_entry(filter, [&](const AuditEntry& entry) {
    if (format == "json")
      std::cout << audit_entry_json(entry) << '\n';
    else
      std::cout << fmt::format("{:>6} {} {:<12} {:<20} {:>8} {}\n", entry.seq, entry.time,
                               entry.kind, entry.rule.empty() ? "-" : entry.rule, entry.rows,
                               entry.detail);
  });
  return k_exit_ok;
}

std::string hold_json(const Hold& hold) {
  JsonWriter json;
  json.begin_object();
  json.field("id", hold.id);
  json.field("subject", hold.subject);
  json.field("rule", hold.rule);
  json.field("reason", hold.reason);
  json.field("created", hold.created);
  json.field("until", hold.until);
  json.field("released", hold.released);
  json.field("release_reason", hold.release_reason);
  json.end_object();
  return json.str();
}

int command_hold(const CommandLine& line, const Config& config) {
  const std::string& verb = line.command[1];
  check_rule_names(config, line.rules, "--rule");
  const Instant now = now_utc();
  if (verb == "add") {
    std::optional<std::string> rule;
    if (!line.rules.empty()) {
      rule = line.rules.front();
      if (line.subject && !config.find_rule(*rule)->subject_column)
        throw UsageError(
            fmt::format("--subject: rule '{}' has no subject_column, so a subject cannot "
                        "be held in it (use --all to suspend the rule, or add "
                        "subject_column to the rule)",
                        *rule));
    } else if (line.subject &&
               std::none_of(config.rules.begin(), config.rules.end(),
                            [](const Rule& r) { return r.subject_column.has_value(); })) {
      throw UsageError(
          "--subject: no rule has a subject_column, so the hold would protect nothing");
    }
    const std::optional<Instant> until = hold_until(line, now);
    create_state_directory(config);
    const auto state = open_state_store(config, StateStore::Mode::read_write, audit_key_of(config));
    const Hold hold = state->add_hold(line.subject, rule, *line.reason, until, now);
    std::cout << fmt::format("hold {} added\n", hold.id);
    return k_exit_ok;
  }
  if (verb == "release") {
    const std::int64_t id = hold_id_of(line);
    // No state file: no hold was ever added. Say so rather than create an empty state.
    if (config.state_dsn.empty() && !std::filesystem::exists(config.state_path)) {
      print_message(spdlog::level::err,
                    fmt::format("retentiond: error: hold {} does not exist (no state file at {}: "
                                "no hold was ever added; see retentiond hold list)",
                                id, config.state_path.string()));
      return k_exit_rule_failed;
    }
    const auto state = open_state_store(config, StateStore::Mode::read_write, audit_key_of(config));
    try {
      state->release_hold(id, *line.reason, now);
    } catch (const std::runtime_error& error) {
      print_message(spdlog::level::err, fmt::format("retentiond: error: {}", error.what()));
      return k_exit_rule_failed;
    }
    std::cout << fmt::format("hold {} released\n", id);
    return k_exit_ok;
  }
  const std::string format = text_or_json(line);
  const auto state = open_state_store(config, StateStore::Mode::read_only, audit_key_of(config));
  for (const Hold& hold : state->holds(false, now)) {
    if (format == "json")
      std::cout << hold_json(hold) << '\n';
    else
      std::cout << fmt::format("{:>4} {:<24} {:<20} since {} until {}: {}\n", hold.id,
                               hold.subject ? "subject " + *hold.subject : "all rows",
                               hold.rule ? "rule " + *hold.rule : "every rule", hold.created,
                               hold.until.value_or("released"), hold.reason);
  }
  return k_exit_ok;
}

}  // namespace

int run_command(const CommandLine& line, const std::atomic<bool>& stop) {
  const std::string& command = line.command.front();
  const std::filesystem::path config_file = config_path(line);
  check_usage(line);
  const std::shared_ptr<const Config> config = load_config(config_file);
  if (command == "run")
    return command_run(config_file, config);
  if (command == "check")
    return command_check(line, *config);
  if (command == "once")
    return command_once(line, config, stop);
  if (command == "report")
    return command_report(line, *config);
  if (command == "audit")
    return command_audit(line, *config);
  return command_hold(line, *config);
}

}  // namespace retentiond
