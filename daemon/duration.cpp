#include "daemon/duration.hpp"

#include <spdlog/fmt/fmt.h>

#include <array>
#include <charconv>
#include <limits>
#include <optional>

namespace retentiond {

namespace {

using namespace std::chrono;

struct UnitName {
  std::string_view singular;
  std::string_view plural;
  CalendarUnit unit;
  std::int64_t max_count;  // about 10000 years, so every cutoff stays inside the calendar
};

constexpr std::array<UnitName, 7> k_units{{
    {"second", "seconds", CalendarUnit::seconds, 315'576'000'000},
    {"minute", "minutes", CalendarUnit::minutes, 5'259'600'000},
    {"hour", "hours", CalendarUnit::hours, 87'660'000},
    {"day", "days", CalendarUnit::days, 3'652'500},
    {"week", "weeks", CalendarUnit::weeks, 521'786},
    {"month", "months", CalendarUnit::months, 120'000},
    {"year", "years", CalendarUnit::years, 10'000},
}};

struct ShortUnit {
  std::string_view name;
  milliseconds length;
};

constexpr std::array<ShortUnit, 5> k_short_units{{
    {"ms", milliseconds{1}},
    {"s", seconds{1}},
    {"m", minutes{1}},
    {"h", hours{1}},
    {"d", days{1}},
}};

const UnitName* find_long_unit(std::string_view name) {
  for (const UnitName& unit : k_units)
    if (name == unit.singular || name == unit.plural)
      return &unit;
  return nullptr;
}

const ShortUnit* find_short_unit(std::string_view name) {
  for (const ShortUnit& unit : k_short_units)
    if (name == unit.name)
      return &unit;
  return nullptr;
}

bool is_space(char c) {
  return c == ' ' || c == '\t';
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_space(text.back()))
    text.remove_suffix(1);
  return text;
}

// "<digits><spaces?><unit>", split up; what is wrong with it is reported by the callers.
struct Amount {
  std::int64_t count = 0;
  std::size_t spaces = 0;
  std::string_view unit;
};

enum class AmountProblem { no_number, negative, fractional, too_large };

std::expected<Amount, AmountProblem> split_amount(std::string_view text) {
  if (text.size() >= 2 && text[0] == '-' && is_digit(text[1]))
    return std::unexpected(AmountProblem::negative);
  std::size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits]))
    ++digits;
  if (digits == 0)
    return std::unexpected(AmountProblem::no_number);
  if (digits + 1 < text.size() && (text[digits] == '.' || text[digits] == ',') &&
      is_digit(text[digits + 1]))
    return std::unexpected(AmountProblem::fractional);
  Amount amount;
  const auto [end, error] = std::from_chars(text.data(), text.data() + digits, amount.count);
  if (error == std::errc::result_out_of_range)
    return std::unexpected(AmountProblem::too_large);
  if (error != std::errc{} || end != text.data() + digits)
    return std::unexpected(AmountProblem::no_number);
  std::size_t pos = digits;
  while (pos < text.size() && is_space(text[pos]))
    ++pos;
  amount.spaces = pos - digits;
  amount.unit = text.substr(pos);
  return amount;
}

std::string amount_problem(std::string_view text, AmountProblem problem, std::string_view what,
                           std::string_view examples) {
  switch (problem) {
  case AmountProblem::negative: return fmt::format("'{}' is negative", text);
  case AmountProblem::fractional:
    return fmt::format("'{}' is fractional (use a whole number of a smaller unit)", text);
  case AmountProblem::too_large: return fmt::format("'{}' is too large", text);
  case AmountProblem::no_number: break;
  }
  return fmt::format("'{}' is not {} (expected e.g. {})", text, what, examples);
}

constexpr std::string_view k_retention_examples = "'30 days', '12 months' or 'forever'";
constexpr std::string_view k_duration_examples = "'50ms', '15m' or '15 minutes'";

}  // namespace

std::string Retention::to_string() const {
  if (forever)
    return "forever";
  for (const UnitName& name : k_units)
    if (name.unit == unit)
      return fmt::format("{} {}", count, count == 1 ? name.singular : name.plural);
  return fmt::format("{} ?", count);
}

std::expected<Retention, std::string> parse_retention(std::string_view original) {
  const std::string_view text = trim(original);
  if (text.empty())
    return std::unexpected(
        fmt::format("retention is empty (expected e.g. {})", k_retention_examples));
  if (text == "forever") {
    Retention forever;
    forever.forever = true;
    return forever;
  }

  const auto amount = split_amount(text);
  if (!amount)
    return std::unexpected(
        amount_problem(text, amount.error(), "a retention period", k_retention_examples));
  const std::int64_t count = amount->count;
  const std::string_view unit_text = amount->unit;
  if (unit_text.empty())
    return std::unexpected(fmt::format("'{}' has no unit (expected e.g. '{} days')", text, count));

  if (const UnitName* unit = find_long_unit(unit_text)) {
    if (amount->spaces == 0)
      return std::unexpected(fmt::format("'{}' needs a space: write '{} {}'", text, count,
                                         count == 1 ? unit->singular : unit->plural));
    if (count > unit->max_count)
      return std::unexpected(
          fmt::format("'{}' is too large (at most about 10000 years; use 'forever')", text));
    return Retention{.forever = false, .count = count, .unit = unit->unit};
  }

  // Short forms are refused: in a retention rule a minutes/months mix-up deletes data.
  if (unit_text == "m")
    return std::unexpected(
        fmt::format("'{}' is ambiguous: write '{} minutes' or '{} months'", text, count, count));
  constexpr std::array<std::pair<std::string_view, CalendarUnit>, 5> k_refused_short{{
      {"s", CalendarUnit::seconds},
      {"h", CalendarUnit::hours},
      {"d", CalendarUnit::days},
      {"w", CalendarUnit::weeks},
      {"y", CalendarUnit::years},
  }};
  for (const auto& [short_name, unit] : k_refused_short)
    if (unit_text == short_name) {
      const Retention written{.forever = false, .count = count, .unit = unit};
      return std::unexpected(
          fmt::format("'{}' is a short form: write '{}'", text, written.to_string()));
    }
  return std::unexpected(fmt::format(
      "unknown unit '{}' (expected seconds, minutes, hours, days, weeks, months or years)",
      unit_text));
}

std::expected<milliseconds, std::string> parse_duration(std::string_view original) {
  const std::string_view text = trim(original);
  if (text.empty())
    return std::unexpected(
        fmt::format("duration is empty (expected e.g. {})", k_duration_examples));

  const auto amount = split_amount(text);
  if (!amount)
    return std::unexpected(amount_problem(text, amount.error(), "a duration", k_duration_examples));
  const std::int64_t count = amount->count;
  const std::string_view unit_text = amount->unit;
  if (unit_text.empty())
    return std::unexpected(
        fmt::format("'{}' has no unit (expected e.g. '{}s' or '{} seconds')", text, count, count));

  milliseconds length{0};
  if (const UnitName* unit = find_long_unit(unit_text)) {
    if (unit->unit == CalendarUnit::months || unit->unit == CalendarUnit::years)
      return std::unexpected(std::string{"months and years are not allowed here (use days)"});
    if (amount->spaces == 0)
      return std::unexpected(fmt::format("'{}' needs a space: write '{} {}'", text, count,
                                         count == 1 ? unit->singular : unit->plural));
    switch (unit->unit) {
    case CalendarUnit::seconds: length = seconds{1}; break;
    case CalendarUnit::minutes: length = minutes{1}; break;
    case CalendarUnit::hours: length = hours{1}; break;
    case CalendarUnit::days: length = days{1}; break;
    case CalendarUnit::weeks: length = weeks{1}; break;
    case CalendarUnit::months:
    case CalendarUnit::years: break;
    }
  } else if (const ShortUnit* short_unit = find_short_unit(unit_text)) {
    if (amount->spaces != 0)
      return std::unexpected(fmt::format("'{}' has a space before a short unit: write '{}{}'", text,
                                         count, short_unit->name));
    length = short_unit->length;
  } else {
    return std::unexpected(fmt::format(
        "unknown unit '{}' (expected ms, s, m, h, d, seconds, minutes, hours, days or weeks)",
        unit_text));
  }

  if (count > std::numeric_limits<std::int64_t>::max() / length.count())
    return std::unexpected(fmt::format("'{}' is too large", text));
  return length * count;
}

std::string format_duration(milliseconds duration) {
  const std::int64_t ms = duration.count();
  constexpr std::array<ShortUnit, 4> k_coarsest_first{{
      {"d", days{1}},
      {"h", hours{1}},
      {"m", minutes{1}},
      {"s", seconds{1}},
  }};
  if (ms == 0)
    return "0s";
  for (const ShortUnit& unit : k_coarsest_first)
    if (ms % unit.length.count() == 0)
      return fmt::format("{}{}", ms / unit.length.count(), unit.name);
  return fmt::format("{}ms", ms);
}

}  // namespace retentiond
