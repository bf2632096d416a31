#include "daemon/logging.hpp"

#include "daemon/cli.hpp"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace retentiond {
namespace {

bool stderr_is_journal() {
  static const bool connected = is_journal_stream(STDERR_FILENO, std::getenv("JOURNAL_STREAM"));
  return connected;
}

// `text` with `prefix` before each of its lines, each ended by a line break (a final break
// ends the last line rather than starting an empty one).
std::string prefixed_lines(std::string_view prefix, std::string_view text) {
  std::string lines;
  do {
    const std::size_t end = text.find('\n');
    lines.append(prefix).append(text.substr(0, end)).push_back('\n');
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  } while (!text.empty());
  return lines;
}

// Lines for the journal: the priority prefix before every line of the message (a value echoed
// in an error may hold a line break), so no part is logged at another level.
class JournalFormatter final : public spdlog::formatter {
public:
  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& line) override {
    const std::string lines =
        prefixed_lines(journal_prefix(message.level),
                       std::string_view(message.payload.data(), message.payload.size()));
    line.append(lines.data(), lines.data() + lines.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JournalFormatter>();
  }
};

// Wraps another formatter: control characters in a message are written escaped ("\n",
// "\x1b"). Messages carry values retentiond does not choose (a stored path, a file's name in a
// tree it walks): one must not end the line and forge another, nor reach a terminal as an
// escape sequence.
class EscapingFormatter final : public spdlog::formatter {
public:
  explicit EscapingFormatter(std::unique_ptr<spdlog::formatter> inner)
      : m_inner(std::move(inner)) {}

  void format(const spdlog::details::log_msg& message, spdlog::memory_buf_t& line) override {
    const std::string_view payload(message.payload.data(), message.payload.size());
    if (std::none_of(payload.begin(), payload.end(), is_control)) {
      m_inner->format(message, line);
      return;
    }
    const std::string escaped = escape_controls(payload);
    spdlog::details::log_msg copy = message;
    copy.payload = escaped;
    m_inner->format(copy, line);
    // The colour range the pattern marked (the level's name) is read from the message.
    message.color_range_start = copy.color_range_start;
    message.color_range_end = copy.color_range_end;
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<EscapingFormatter>(m_inner->clone());
  }

private:
  std::unique_ptr<spdlog::formatter> m_inner;
};

}  // namespace

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

std::string escape_controls(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (const char c : text) {
    if (!is_control(c))
      escaped.push_back(c);
    else if (c == '\n')
      escaped += "\\n";
    else if (c == '\t')
      escaped += "\\t";
    else if (c == '\r')
      escaped += "\\r";
    else
      escaped += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
  }
  return escaped;
}

bool is_journal_stream(int fd, const char* journal_stream) {
  if (journal_stream == nullptr)
    return false;
  const std::string_view text(journal_stream);
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos)
    return false;
  const auto number = [](std::string_view digits, unsigned long long& value) {
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
    return error == std::errc{} && end == digits.data() + digits.size() && !digits.empty();
  };
  unsigned long long device = 0;
  unsigned long long inode = 0;
  if (!number(text.substr(0, colon), device) || !number(text.substr(colon + 1), inode))
    return false;
  struct stat stream {};
  return ::fstat(fd, &stream) == 0 && stream.st_dev == device && stream.st_ino == inode;
}

std::string_view journal_prefix(spdlog::level::level_enum level) {
  switch (level) {
  case spdlog::level::critical: return "<2>";
  case spdlog::level::err: return "<3>";
  case spdlog::level::warn: return "<4>";
  case spdlog::level::info: return "<6>";
  default: return "<7>";
  }
}

void configure_logging(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off")
    throw UsageError("--log-level '" + level +
                     "': expected trace, debug, info, warn, error or off");
  auto logger = spdlog::stderr_color_mt("retentiond");
  if (stderr_is_journal())
    logger->set_formatter(
        std::make_unique<EscapingFormatter>(std::make_unique<JournalFormatter>()));
  else
    logger->set_formatter(
        std::make_unique<EscapingFormatter>(std::make_unique<spdlog::pattern_formatter>(
            "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc)));
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
}

void print_message(spdlog::level::level_enum level, std::string_view text) {
  std::cerr << prefixed_lines(stderr_is_journal() ? journal_prefix(level) : "", text) << std::flush;
}

}  // namespace retentiond
