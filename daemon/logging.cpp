#include "daemon/logging.hpp"

#include "daemon/cli.hpp"

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

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

}  // namespace

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
  if (stderr_is_journal()) {
    logger->set_formatter(std::make_unique<JournalFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  }
  logger->set_level(parsed);
  spdlog::set_default_logger(std::move(logger));
}

void print_message(spdlog::level::level_enum level, std::string_view text) {
  std::cerr << prefixed_lines(stderr_is_journal() ? journal_prefix(level) : "", text) << std::flush;
}

}  // namespace retentiond
