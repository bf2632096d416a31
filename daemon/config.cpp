#include "daemon/config.hpp"

#include <spdlog/fmt/fmt.h>

namespace retentiond {

std::string SourcePosition::to_string() const {
  if (line == 0)
    return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

ConfigError::ConfigError(const SourcePosition& where, const std::string& message)
    : std::runtime_error(where.file.empty() ? message : where.to_string() + ": " + message),
      m_where(where) {}

std::string_view to_string(Action action) {
  switch (action) {
  case Action::delete_rows: return "delete";
  case Action::anonymize: return "anonymize";
  case Action::keep: return "keep";
  }
  return "?";
}

std::string_view to_string(AgeFormat format) {
  switch (format) {
  case AgeFormat::native: return "native";
  case AgeFormat::unix_seconds: return "unix_seconds";
  case AgeFormat::unix_millis: return "unix_millis";
  case AgeFormat::iso8601: return "iso8601";
  }
  return "?";
}

std::string_view to_string(Mask mask) {
  switch (mask) {
  case Mask::null: return "null";
  case Mask::hmac: return "hmac";
  case Mask::ip_prefix: return "ip_prefix";
  case Mask::redact: return "redact";
  case Mask::year: return "year";
  }
  return "?";
}

const Rule* Config::find_rule(std::string_view id) const {
  for (const Rule& rule : rules)
    if (rule.id == id)
      return &rule;
  return nullptr;
}

}  // namespace retentiond
