#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace retentiond {

// Exit statuses of SPEC 2.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_rule_failed = 1;
inline constexpr int k_exit_usage = 2;
inline constexpr int k_exit_locked = 75;
inline constexpr int k_exit_config = 78;

// A command line that does not parse: exit 2.
class UsageError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The parsed command line. Options that a command does not take are refused by the parser.
struct CommandLine {
  std::optional<std::string> config_file;  // -c FILE
  std::string log_level = "info";
  std::vector<std::string> command;       // e.g. {"audit", "verify"}, {"hold", "add"}
  std::vector<std::string> rules;         // --rule, repeatable
  std::vector<std::string> confirm_mass;  // --confirm-mass, repeatable
  bool dry_run = false;
  bool connect = false;
  bool all = false;
  std::optional<std::string> format;
  std::optional<std::string> output;
  std::optional<std::string> as_of;
  std::optional<std::string> since;
  std::optional<std::string> until;
  std::optional<std::string> subject;
  std::optional<std::string> reason;
  std::optional<std::string> metrics_file;
  std::optional<std::string> hold_id;  // hold release ID
  bool help = false;
  bool version = false;
};

// Parses argv. Throws UsageError with a message that names the offending word.
CommandLine parse_command_line(const std::vector<std::string>& args);

// The text of --help.
std::string usage_text();

}  // namespace retentiond
