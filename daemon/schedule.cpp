#include "daemon/schedule.hpp"

#include <spdlog/fmt/fmt.h>

#include <charconv>
#include <sstream>
#include <vector>

namespace retentiond {
namespace {

struct CronField {
  std::string_view name;
  int low;
  int high;
};

constexpr CronField k_cron_fields[] = {{"minute", 0, 59},
                                       {"hour", 0, 23},
                                       {"day of month", 1, 31},
                                       {"month", 1, 12},
                                       {"day of week", 0, 7}};

std::optional<int> to_int(std::string_view text) {
  int value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

// Validates one comma-separated cron field: "*", "*/N", "A", "A-B", "A-B/N".
std::expected<void, std::string> check_cron_field(std::string_view text, const CronField& field) {
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    std::string_view range = item;
    if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
      const auto step = to_int(item.substr(slash + 1));
      if (!step || *step <= 0)
        return std::unexpected(fmt::format("bad step in {} field '{}'", field.name, item));
      range = item.substr(0, slash);
    }
    if (range != "*") {
      const std::size_t dash = range.find('-');
      const auto low = to_int(range.substr(0, dash));
      const auto high = dash == std::string_view::npos ? low : to_int(range.substr(dash + 1));
      if (!low || !high || *low < field.low || *high > field.high || *low > *high)
        return std::unexpected(fmt::format("{} field '{}' is out of range {}-{}", field.name, item,
                                           field.low, field.high));
    }
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  return {};
}

}  // namespace

std::expected<Schedule, std::string> parse_schedule(std::string_view text) {
  using namespace std::chrono;
  Schedule schedule;
  schedule.text = std::string{text};
  if (text == "hourly") {
    schedule.interval = hours{1};
    return schedule;
  }
  if (text == "daily") {
    schedule.interval = hours{24};
    return schedule;
  }
  if (text == "weekly") {
    schedule.interval = hours{24 * 7};
    return schedule;
  }
  if (text.starts_with("every ")) {
    auto interval = parse_duration(text.substr(6));
    if (!interval)
      return std::unexpected(interval.error());
    if (*interval < seconds{1})
      return std::unexpected(fmt::format("'{}' is too frequent (at least every 1s)", text));
    schedule.interval = *interval;
    return schedule;
  }
  std::istringstream words{std::string{text}};
  std::vector<std::string> fields;
  for (std::string word; words >> word;)
    fields.push_back(word);
  if (fields.size() != 5)
    return std::unexpected(fmt::format("unknown schedule '{}' (expected hourly, daily, weekly, "
                                       "\"every 15m\" or a 5-field cron expression)",
                                       text));
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (auto checked = check_cron_field(fields[i], k_cron_fields[i]); !checked)
      return std::unexpected(fmt::format("schedule '{}': {}", text, checked.error()));
  // The nominal period of a cron rule, for catch-up and staleness: the coarsest field that is
  // not a wildcard decides it.
  if (fields[3] != "*")
    schedule.interval = hours{24 * 366};
  else if (fields[2] != "*")
    schedule.interval = hours{24 * 31};
  else if (fields[4] != "*")
    schedule.interval = hours{24 * 7};
  else if (fields[1] != "*")
    schedule.interval = hours{24};
  else if (fields[0] != "*")
    schedule.interval = hours{1};
  else
    schedule.interval = minutes{1};
  return schedule;
}

}  // namespace retentiond
