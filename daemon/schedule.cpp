#include "daemon/schedule.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <bitset>
#include <cctype>
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

// The longest `every`: as long as the nominal period of the rarest cron expression (yearly).
constexpr std::chrono::milliseconds k_max_interval = std::chrono::days{366};

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

// Parses one comma-separated cron field: "*", "*/N", "A", "A-B", "A-B/N". Returns the values
// it allows, one bit each.
std::expected<std::bitset<64>, std::string> parse_cron_field(std::string_view text,
                                                             const CronField& field) {
  std::bitset<64> allowed;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t comma = text.find(',', start);
    std::optional<int> step_by;
    const std::string_view item =
        text.substr(start, comma == std::string_view::npos ? text.npos : comma - start);
    std::string_view range = item;
    if (const std::size_t slash = item.find('/'); slash != std::string_view::npos) {
      const auto step = to_int(item.substr(slash + 1));
      if (!step || *step <= 0)
        return std::unexpected(fmt::format("bad step in {} field '{}'", field.name, item));
      range = item.substr(0, slash);
      step_by = *step;
    }
    int low = field.low;
    int high = field.high;
    if (range != "*") {
      const std::size_t dash = range.find('-');
      const auto first = to_int(range.substr(0, dash));
      const auto last = dash == std::string_view::npos ? first : to_int(range.substr(dash + 1));
      if (std::any_of(range.begin(), range.end(),
                      [](char c) { return std::isalpha(static_cast<unsigned char>(c)); }))
        return std::unexpected(fmt::format("{} field '{}': names are not supported; write the "
                                           "number ({}-{})",
                                           field.name, item, field.low, field.high));
      if (!first || !last || *first < field.low || *last > field.high)
        return std::unexpected(fmt::format("{} field '{}' is out of range {}-{}", field.name, item,
                                           field.low, field.high));
      if (*first > *last) {
        // A range does not wrap around the end of the field: two ranges do.
        const std::string_view step = item.substr(range.size());  // "/N" or empty
        const auto span = [&step](int from, int to) {
          // "A/N" would mean from A to the end of the field: with a step, always "A-B/N".
          return from == to && step.empty() ? fmt::format("{}", from)
                                            : fmt::format("{}-{}", from, to);
        };
        return std::unexpected(fmt::format(
            "{} field '{}': the start is after the end (a range does not wrap around; write "
            "'{}{},{}{}')",
            field.name, item, span(*first, field.high), step, span(field.low, *last), step));
      }
      low = *first;
      // "5/15" means from 5 to the end of the range, every 15.
      high = dash == std::string_view::npos && step_by ? field.high : *last;
    }
    for (int value = low; value <= high; value += step_by.value_or(1))
      allowed.set(static_cast<std::size_t>(value));
    if (comma == std::string_view::npos)
      break;
    start = comma + 1;
  }
  return allowed;
}

template <std::size_t N> std::bitset<N> narrow(const std::bitset<64>& bits) {
  std::bitset<N> result;
  for (std::size_t i = 0; i < N; ++i)
    result[i] = bits[i];
  return result;
}

bool day_matches(const CronFields& cron, std::chrono::sys_days day) {
  using namespace std::chrono;
  const year_month_day date{day};
  if (!cron.months[static_cast<unsigned>(date.month())])
    return false;
  const bool day_of_month = cron.days_of_month[static_cast<unsigned>(date.day())];
  const bool day_of_week = cron.days_of_week[weekday{day}.c_encoding()];
  if (cron.any_day_of_month || cron.any_day_of_week)
    return day_of_month && day_of_week;
  return day_of_month || day_of_week;
}

// The first minute after `after` that the expression names; nothing when it names no date that
// exists. Dates and weekdays repeat every 400 years (146,097 days, a whole number of weeks), so
// looking that far ahead finds any date there is ("0 0 29 2 */6": 29 February on a weekend).
std::optional<Instant> next_cron_match(const CronFields& cron, Instant after) {
  using namespace std::chrono;
  constexpr int k_gregorian_cycle_days = 146'097;
  const sys_time<minutes> first = floor<minutes>(after) + minutes{1};
  sys_days day = floor<days>(first);
  for (int i = 0; i <= k_gregorian_cycle_days; ++i, day += days{1}) {
    if (!day_matches(cron, day))
      continue;
    for (minutes minute = i == 0 ? first - day : minutes{0}; minute < days{1};
         minute += minutes{1}) {
      const hh_mm_ss time{minute};
      if (cron.hours[static_cast<std::size_t>(time.hours().count())] &&
          cron.minutes[static_cast<std::size_t>(time.minutes().count())])
        return time_point_cast<milliseconds>(day + minute);
    }
  }
  return std::nullopt;
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
    // A longer one is a mistake, and twice it (the report's staleness) must stay computable.
    if (*interval > k_max_interval)
      return std::unexpected(fmt::format("'{}' is too rare (at most every {}; for a yearly run, "
                                         "write a cron expression such as \"0 3 1 1 *\")",
                                         text, format_duration(k_max_interval)));
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
  std::bitset<64> allowed[5];
  for (std::size_t i = 0; i < fields.size(); ++i) {
    auto parsed = parse_cron_field(fields[i], k_cron_fields[i]);
    if (!parsed)
      return std::unexpected(fmt::format("schedule '{}': {}", text, parsed.error()));
    allowed[i] = *parsed;
  }
  CronFields cron;
  cron.minutes = narrow<60>(allowed[0]);
  cron.hours = narrow<24>(allowed[1]);
  cron.days_of_month = narrow<32>(allowed[2]);
  cron.months = narrow<13>(allowed[3]);
  cron.days_of_week = narrow<7>(allowed[4]);
  if (allowed[4][7])
    cron.days_of_week.set(0);
  cron.any_day_of_month = fields[2].starts_with('*');
  cron.any_day_of_week = fields[4].starts_with('*');
  if (!next_cron_match(cron, Instant{}))
    return std::unexpected(fmt::format("schedule '{}' names no date that exists", text));
  schedule.cron = cron;
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

Instant next_run_time(const Schedule& schedule, std::optional<Instant> last_run, Instant now) {
  if (!last_run)
    return now;
  if (schedule.cron) {
    // parse_schedule found a match within one 400-year cycle, so there is one after any date.
    if (auto next = next_cron_match(*schedule.cron, *last_run))
      return *next;
  }
  return *last_run + schedule.interval;
}

}  // namespace retentiond
