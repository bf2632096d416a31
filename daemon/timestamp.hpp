#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <string>
#include <string_view>

namespace retentiond {

// A point in time in UTC, with millisecond precision (enough for unix_millis anchors).
using Instant = std::chrono::sys_time<std::chrono::milliseconds>;

// The current time, UTC.
Instant now_utc();

// "2026-11-23T19:00:00Z"; milliseconds are appended (".250") only when non-zero.
std::string format_iso8601(Instant instant);

// Parses an ISO 8601 / RFC 3339 timestamp: "YYYY-MM-DD", "YYYY-MM-DDTHH:MM[:SS[.fraction]]"
// with 'T' or a space, and an optional "Z" or "+HH:MM"/"-HH:MM" offset (none means UTC).
// Returns a lowercase message naming what is wrong on failure; never guesses.
std::expected<Instant, std::string> parse_iso8601(std::string_view text);

// Seconds and milliseconds since the Unix epoch.
std::int64_t to_unix_seconds(Instant instant);
std::int64_t to_unix_millis(Instant instant);
Instant from_unix_seconds(std::int64_t seconds);
Instant from_unix_millis(std::int64_t millis);

// The same, held to the years 0001-9999 that ISO 8601 text can write: an absurd anchor (-9e18
// seconds) reads as the earliest instant, and durations from it do not overflow.
Instant from_unix_millis_in_calendar(std::int64_t millis);

}  // namespace retentiond
