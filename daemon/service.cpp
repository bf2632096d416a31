#include "daemon/service.hpp"

#include "daemon/cli.hpp"
#include "daemon/command_support.hpp"
#include "daemon/engine.hpp"
#include "daemon/metrics_server.hpp"
#include "daemon/postgres_support.hpp"
#include "daemon/schedule.hpp"
#include "daemon/service_metrics.hpp"
#include "daemon/state_store.hpp"
#include "daemon/systemd_notify.hpp"
#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <map>
#include <mutex>
#include <pthread.h>
#include <thread>

namespace retentiond {
namespace {

using Clock = std::chrono::steady_clock;

// A state dsn for messages, without its password; empty for a SQLite state.
std::string describe_state_dsn(const std::string& dsn) {
  return dsn.empty() ? std::string{} : postgres_support().describe_dsn(dsn);
}

// Between runs the loop wakes at least this often, even with no watchdog to feed.
constexpr auto k_longest_sleep = std::chrono::minutes{1};

// SIGTERM, SIGINT and SIGHUP, blocked in every thread and taken by one thread with sigwait:
// no async-signal-safety puzzles, and the scheduler is woken through a condition variable.
sigset_t service_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  return signals;
}

// How much later than this process noted the start of a run its run record may say it started
// (the engine takes the rule lock and records the start after that).
constexpr std::chrono::seconds k_own_run_slack{5};

class Service {
public:
  // `audit_key`: the key `state` was opened with, which its chain keeps.
  Service(std::filesystem::path config_file, std::shared_ptr<const Config> config,
          StateStore& state, std::optional<std::string> audit_key)
      : m_config_file(std::move(config_file)), m_config(std::move(config)), m_state(state),
        m_audit_key(std::move(audit_key)) {}

  int run() {
    std::thread signals([this] { take_signals(); });
    std::unique_ptr<MetricsServer> metrics_server;
    try {
      if (m_config->metrics_listen)
        metrics_server = std::make_unique<MetricsServer>(*m_config->metrics_listen,
                                                         [this] { return m_metrics.render(); });
      m_metrics.record_reload(true, now_utc());
      audit_config();
      learn_last_runs();
      spdlog::info("service started: {} rules{}", m_config->rules.size(),
                   m_config->metrics_listen ? ", metrics on " + *m_config->metrics_listen : "");
      m_status = idle_status();
      m_notifier.notify("READY=1\nSTATUS=" + m_status);
      schedule_until_stopped();
    } catch (...) {
      stop_signal_thread(signals);
      throw;
    }
    m_notifier.notify("STOPPING=1\nSTATUS=stopping");
    spdlog::info("service stopped");
    stop_signal_thread(signals);
    return k_exit_ok;
  }

private:
  void take_signals() {
    const sigset_t signals = service_signals();
    while (true) {
      int signal = 0;
      if (sigwait(&signals, &signal) != 0)
        continue;
      const std::scoped_lock lock(m_mutex);
      if (signal == SIGHUP) {
        m_reload_requested = true;
      } else {
        if (!m_stop.load() && !m_quitting)
          spdlog::info("{} received: finishing the current batch, then stopping",
                       signal == SIGINT ? "SIGINT" : "SIGTERM");
        m_stop.store(true);
      }
      m_wake.notify_all();
      if (m_quitting)
        return;
    }
  }

  // The signal thread waits in sigwait: wake it with a signal it takes, after saying it may go.
  void stop_signal_thread(std::thread& signals) {
    {
      const std::scoped_lock lock(m_mutex);
      m_quitting = true;
    }
    pthread_kill(signals.native_handle(), SIGTERM);
    signals.join();
  }

  void schedule_until_stopped() {
    while (!m_stop.load()) {
      reload_if_requested();
      const auto [rule, due] = next_due_rule();
      const Instant now = now_utc();
      if (rule != nullptr && due <= now) {
        bool elsewhere = false;
        try {
          elsewhere = ran_elsewhere(*rule, last_run_of(*rule));
        } catch (const std::exception& error) {
          // The state is out of reach: the run itself fails (audited where it can be) and the
          // rule is tried again at its next time; the service stays up.
          spdlog::warn("rule {}: {}", rule->id, error.what());
        }
        if (!elsewhere)
          run_rule(*rule);
        continue;
      }
      feed_watchdog(true);
      report_status(idle_status(rule, due));
      auto sleep = rule == nullptr
                       ? k_longest_sleep
                       : std::min<std::chrono::milliseconds>(due - now, k_longest_sleep);
      if (auto period = m_notifier.watchdog_period())
        sleep = std::min<std::chrono::milliseconds>(
            sleep, std::chrono::duration_cast<std::chrono::milliseconds>(*period));
      std::unique_lock lock(m_mutex);
      m_wake.wait_for(lock, sleep, [this] { return m_stop.load() || m_reload_requested; });
    }
  }

  // The rule to run next and when; rules whose action is keep never run.
  std::pair<const Rule*, Instant> next_due_rule() const {
    const Rule* next = nullptr;
    Instant next_time = Instant::max();
    const Instant now = now_utc();
    for (const Rule& rule : m_config->rules) {
      if (rule.action == Action::keep)
        continue;
      const auto last = m_last_run.find(rule.id);
      const Instant due = next_run_time(
          rule.schedule,
          last == m_last_run.end() ? std::nullopt : std::optional<Instant>{last->second}, now);
      if (due < next_time) {
        next = &rule;
        next_time = due;
      }
    }
    return {next, next_time};
  }

  // The configuration in use, audited when it changed; a state out of reach leaves that to
  // the next run, which audits it before anything else.
  void audit_config() {
    try {
      audit_config_change(m_state, *m_config);
    } catch (const std::exception& error) {
      spdlog::warn("configuration change not audited yet: {}", error.what());
    }
  }

  // When each rule last started, from the run history: a rule that ran recently before a
  // restart is not run again at once.
  void learn_last_runs() {
    for (const Rule& rule : m_config->rules) {
      if (m_last_run.contains(rule.id))
        continue;
      const std::vector<RunRecord> runs = m_state.last_runs(rule.id, 1);
      // A run still "running" died with its process, and one that SIGTERM cut short did not
      // finish either: the rule carries on at once.
      if (runs.empty() || runs.front().result == "running" || cut_short_by_signal(runs.front()))
        continue;
      if (auto started = parse_iso8601(runs.front().started))
        m_last_run[rule.id] = *started;
    }
  }

  std::optional<Instant> last_run_of(const Rule& rule) const {
    const auto known = m_last_run.find(rule.id);
    return known == m_last_run.end() ? std::nullopt : std::optional<Instant>{known->second};
  }

  // Whether another process sharing the state (another host, with a PostgreSQL state) started
  // the rule after `since`, when this one last did: its schedule then counts from that run.
  bool ran_elsewhere(const Rule& rule, std::optional<Instant> since) {
    const std::vector<RunRecord> runs = m_state.last_runs(rule.id, 1);
    if (runs.empty() || runs.front().result == "running" || cut_short_by_signal(runs.front()))
      return false;
    const auto started = parse_iso8601(runs.front().started);
    // This process's own run is recorded a moment after it noted the start.
    if (!started || (since && *started <= *since + k_own_run_slack))
      return false;
    m_last_run[rule.id] = *started;
    return true;
  }

  // The configuration in use from now on: audited when it changed, its rules' metrics kept
  // and others dropped; new rules learn their last run from the history, or (the state out of
  // reach) run when due and fail there, audited.
  void take_up_config() {
    std::vector<std::string> ids;
    for (const Rule& rule : m_config->rules)
      ids.push_back(rule.id);
    m_metrics.keep_only(ids);
    audit_config();
    try {
      learn_last_runs();
    } catch (const std::exception& error) {
      spdlog::warn("{}", error.what());
    }
  }

  // A SIGHUP is taken by the scheduling loop, and between the batches of a run: a long run
  // does not hold it back (systemctl reload waits for it).
  void reload_if_requested() {
    bool reload = false;
    {
      const std::scoped_lock lock(m_mutex);
      reload = std::exchange(m_reload_requested, false);
    }
    if (reload)
      reload_config();
  }

  void run_rule(const Rule& rule) {
    // A reload between batches replaces m_config: the run keeps the configuration it started
    // with (`rule` is one of its rules), and the next run takes the new one.
    const std::shared_ptr<const Config> config = m_config;
    m_running_rule = rule.id;
    // The run feeds it too: after each batch, and while its census makes progress.
    feed_watchdog(false);
    const std::optional<Instant> previous = last_run_of(rule);
    m_last_run[rule.id] = now_utc();
    report_status("running rule " + rule.id);
    RunOptions options;
    options.only_rules = {rule.id};
    options.command = "run";
    // Checked again under the rule's lock: another host may have run it since the loop looked.
    options.still_due = [this, previous](const Rule& locked) {
      return !ran_elsewhere(locked, previous);
    };
    options.on_batch = [this](const Rule& batch_rule, std::chrono::nanoseconds took,
                              std::int64_t rows) {
      m_metrics.record_batch(batch_rule.id, took, rows);
      feed_watchdog(false);
      reload_if_requested();
    };
    // A census of a large table can outlast WatchdogSec= while it makes progress.
    options.on_census_progress = [this] { feed_watchdog(false); };
    try {
      Engine engine(config, &m_state, secrets_of(*config), m_stop);
      // The engine has logged each outcome that is not ok, and why.
      for (const RuleOutcome& outcome : engine.run_once(options).outcomes)
        m_metrics.record_run(outcome, m_state.last_success(outcome.rule));
    } catch (const std::exception& error) {
      // The state DB or a key file failed: the next run tries again, the service stays up.
      spdlog::error("rule {}: {}", rule.id, error.what());
      RuleOutcome failed;
      failed.rule = rule.id;
      failed.result = "error";
      m_metrics.record_run(failed, std::nullopt);
    }
    m_running_rule.reset();
    if (std::exchange(m_config_changed_during_run, false))
      take_up_config();
    feed_watchdog(false);
  }

  void reload_config() {
    m_notifier.notify("RELOADING=1\n" + monotonic_usec_field() + "\nSTATUS=reloading");
    try {
      auto fresh = load_config(m_config_file);
      if (fresh->state_path != m_config->state_path)
        throw ConfigError({fresh->file.string(), 0, 0},
                          fmt::format("state.path: changed from '{}' to '{}'; a new state file "
                                      "takes a restart (systemctl restart retentiond)",
                                      m_config->state_path.string(), fresh->state_path.string()));
      if (fresh->state_dsn != m_config->state_dsn)
        throw ConfigError({fresh->file.string(), 0, 0},
                          fmt::format("state.dsn: changed from '{}' to '{}'; a new state takes a "
                                      "restart (systemctl restart retentiond)",
                                      describe_state_dsn(m_config->state_dsn),
                                      describe_state_dsn(fresh->state_dsn)));
      // The chain is written with the key it began with: entries under another could never
      // be verified with it.
      if (audit_key_of(*fresh) != m_audit_key)
        throw ConfigError(fresh->audit_key_file ? fresh->audit_key_file_position
                                                : SourcePosition{fresh->file.string(), 0, 0},
                          "state.audit_key_file: the audit key changed; the audit chain stays "
                          "under the key it began with (undo the change; a new key takes a new "
                          "state and a restart)");
      if (fresh->metrics_listen != m_config->metrics_listen)
        spdlog::warn("daemon.metrics_listen changed: the new address applies after a restart");
      if (fresh->state_password_file != m_config->state_password_file)
        spdlog::warn("state.password_file changed: the state's connection is open; the new file "
                     "is read after a restart");
      (void)secrets_of(*fresh);  // unreadable key files reject the reload, not a later run
      m_config = std::move(fresh);
      m_metrics.record_reload(true, now_utc());
      spdlog::info("configuration reloaded: {} rules, digest {}", m_config->rules.size(),
                   m_config->digest);
      m_reload_failed = false;
    } catch (const std::exception& error) {
      m_metrics.record_reload(false, now_utc());
      spdlog::error("configuration reload failed, still running the previous one: {}",
                    error.what());
      m_reload_failed = true;
    }
    // During a run, its rule's batches still come from the configuration it started with:
    // the new one is audited, and rules it removed leave the metrics, when the run ends.
    if (m_running_rule)
      m_config_changed_during_run = true;
    else
      take_up_config();
    m_status = m_running_rule ? "running rule " + *m_running_rule : idle_status();
    m_notifier.notify("READY=1\nSTATUS=" + m_status);
  }

  // STATUS= only when it changed: the loop wakes for the watchdog far more often.
  void report_status(const std::string& status) {
    if (status == m_status)
      return;
    m_status = status;
    m_notifier.notify("STATUS=" + status);
  }

  // WATCHDOG=1 from the scheduling loop, from each batch's completion and from a census that
  // makes progress, so a hung run (not just a live process) makes systemd restart the service.
  // `always`: the loop is about to sleep for up to one period.
  void feed_watchdog(bool always) {
    const auto period = m_notifier.watchdog_period();
    if (!period)
      return;
    const auto now = Clock::now();
    if (always || now - m_last_watchdog >= *period) {
      m_notifier.notify("WATCHDOG=1");
      m_last_watchdog = now;
    }
  }

  std::string idle_status() const {
    const auto [rule, due] = next_due_rule();
    return idle_status(rule, due);
  }

  std::string idle_status(const Rule* rule, Instant due) const {
    // A rejected reload stays visible in systemctl status until one succeeds.
    const std::string_view reload = m_reload_failed ? " (last reload failed: see the log)" : "";
    if (rule == nullptr)
      return fmt::format("idle: no rule to enforce{}", reload);
    return fmt::format("idle: next rule {} at {}{}", rule->id,
                       format_iso8601(std::max(due, now_utc())), reload);
  }

  std::filesystem::path m_config_file;
  std::shared_ptr<const Config> m_config;
  StateStore& m_state;
  const std::optional<std::string> m_audit_key;
  SystemdNotifier m_notifier;
  ServiceMetrics m_metrics;
  std::map<std::string, Instant> m_last_run;
  Clock::time_point m_last_watchdog{};
  std::string m_status;  // the last STATUS= sent
  std::optional<std::string> m_running_rule;
  bool m_config_changed_during_run = false;  // a reload took effect during the run
  bool m_reload_failed = false;

  std::mutex m_mutex;  // guards the requests below
  std::condition_variable m_wake;
  std::atomic<bool> m_stop{false};
  bool m_reload_requested = false;
  bool m_quitting = false;
};

}  // namespace

void block_service_signals() {
  const sigset_t signals = service_signals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

int command_run(const std::filesystem::path& config_file, std::shared_ptr<const Config> config) {
  // Before any thread starts, so that every thread inherits the mask (main blocks them even
  // earlier; a signal that came meanwhile is pending, and taken by the signal thread).
  block_service_signals();
  (void)secrets_of(*config);
  create_state_directory(*config);
  std::optional<InstanceLock> lock;
  if (!lock_state(*config, lock))
    return k_exit_locked;
  std::optional<std::string> audit_key = audit_key_of(*config);
  const auto state = open_state_store(*config, StateStore::Mode::read_write, audit_key);
  Service service(config_file, std::move(config), *state, std::move(audit_key));
  return service.run();
}

}  // namespace retentiond
