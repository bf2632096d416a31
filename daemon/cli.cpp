#include "daemon/cli.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <map>
#include <set>

namespace retentiond {

std::string usage_text() {
  return R"(usage: retentiond [-c FILE] [--log-level LEVEL] COMMAND [OPTIONS]

  run                         long-running service: schedule rules until SIGTERM (SIGHUP
                              reloads the configuration)
  once [--rule ID]... [--dry-run] [--confirm-mass ID]... [--metrics-file FILE]
                              apply every rule (or the named ones) once, then exit
  report [--format html|json|md|csv] [--output FILE] [--rule ID]... [--as-of DATE]
                              dry run: what each rule would change now (or on DATE)
  check [--connect]           validate config and rules; with --connect, also open every
                              datastore and check tables, columns and indexes
  audit verify                verify the audit log's hash chain
  audit log [--rule ID] [--since DATE] [--format text|json]
  hold add (--subject VALUE | --all) [--rule ID] --reason TEXT [--until DATE]
  hold list [--format text|json]
  hold release ID --reason TEXT
  --version, --help

Config file: -c FILE, else $RETENTIOND_CONFIG, else /etc/retentiond/retentiond.toml.
Exit status: 0 success, 1 a rule failed or was refused, 2 usage error, 75 another instance
holds the lock, 78 invalid configuration.
)";
}

namespace {

// The options each command accepts.
const std::map<std::string, std::set<std::string>>& command_options() {
  static const std::map<std::string, std::set<std::string>> options{
      {"run", {}},
      {"once", {"--rule", "--dry-run", "--confirm-mass", "--metrics-file"}},
      {"report", {"--format", "--output", "--rule", "--as-of"}},
      {"check", {"--connect"}},
      {"audit verify", {}},
      {"audit log", {"--rule", "--since", "--format"}},
      {"hold add", {"--subject", "--all", "--rule", "--reason", "--until"}},
      {"hold list", {"--format"}},
      {"hold release", {"--reason"}},
  };
  return options;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine line;
  std::size_t i = 0;
  const auto value_of = [&](const std::string& option) -> std::string {
    if (i + 1 >= args.size())
      throw UsageError(fmt::format("option '{}' needs a value", option));
    return args[++i];
  };

  // Global options come before the command.
  for (; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (word == "-c" || word == "--config")
      line.config_file = value_of(word);
    else if (word == "--log-level")
      line.log_level = value_of(word);
    else if (word == "--help" || word == "-h")
      line.help = true;
    else if (word == "--version")
      line.version = true;
    else if (word.starts_with("-"))
      throw UsageError(fmt::format("unknown option '{}' (see retentiond --help)", word));
    else
      break;
  }
  if (line.help || line.version)
    return line;
  if (i >= args.size())
    throw UsageError("missing command (see retentiond --help)");

  std::string command = args[i++];
  if (command == "audit" || command == "hold") {
    if (i >= args.size() || args[i].starts_with("-"))
      throw UsageError(fmt::format("'{}' needs a subcommand (see retentiond --help)", command));
    line.command = {command, args[i++]};
    command += " " + line.command[1];
  } else {
    line.command = {command};
  }
  const auto allowed = command_options().find(command);
  if (allowed == command_options().end())
    throw UsageError(fmt::format("unknown command '{}' (see retentiond --help)", command));

  for (; i < args.size(); ++i) {
    const std::string& word = args[i];
    if (!word.starts_with("-")) {
      if (command == "hold release" && !line.hold_id) {
        line.hold_id = word;
        continue;
      }
      throw UsageError(fmt::format("unexpected argument '{}' for {}", word, command));
    }
    if (word == "--help" || word == "-h") {
      line.help = true;
      continue;
    }
    if (!allowed->second.contains(word))
      throw UsageError(
          fmt::format("unknown option '{}' for {} (see retentiond --help)", word, command));
    if (word == "--rule")
      line.rules.push_back(value_of(word));
    else if (word == "--confirm-mass")
      line.confirm_mass.push_back(value_of(word));
    else if (word == "--dry-run")
      line.dry_run = true;
    else if (word == "--connect")
      line.connect = true;
    else if (word == "--all")
      line.all = true;
    else if (word == "--format")
      line.format = value_of(word);
    else if (word == "--output")
      line.output = value_of(word);
    else if (word == "--as-of")
      line.as_of = value_of(word);
    else if (word == "--since")
      line.since = value_of(word);
    else if (word == "--until")
      line.until = value_of(word);
    else if (word == "--subject")
      line.subject = value_of(word);
    else if (word == "--reason")
      line.reason = value_of(word);
    else if (word == "--metrics-file")
      line.metrics_file = value_of(word);
  }

  if (command == "hold add") {
    if (line.subject.has_value() == line.all)
      throw UsageError("hold add needs exactly one of --subject VALUE or --all");
    if (!line.reason)
      throw UsageError("hold add needs --reason TEXT (it is written to the audit log)");
    if (line.subject && line.subject->empty())
      throw UsageError("--subject: empty; give the value of the rule's subject_column to protect");
  }
  if (command == "hold release") {
    if (!line.hold_id)
      throw UsageError("hold release needs the hold ID (see retentiond hold list)");
    if (!line.reason)
      throw UsageError("hold release needs --reason TEXT (it is written to the audit log)");
  }
  if (line.reason && line.reason->find_first_not_of(" \t\r\n") == std::string::npos)
    throw UsageError("--reason: empty; say why (it is written to the audit log)");
  if ((command.starts_with("hold ") || command == "audit log") && line.rules.size() > 1)
    throw UsageError(fmt::format("{} takes at most one --rule", command));
  return line;
}

}  // namespace retentiond
