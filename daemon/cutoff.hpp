#pragma once

#include "daemon/duration.hpp"
#include "daemon/timestamp.hpp"

namespace retentiond {

// Subtracts a retention period from a point in time, in UTC. Months and years are calendar
// units clamped to the end of the month (2026-03-31 - 1 month = 2026-02-28;
// 2024-02-29 - 1 year = 2023-02-28); the time of day is kept. Precondition: !retain.forever.
Instant subtract_retention(Instant from, const Retention& retain);

// The cutoff of a rule evaluated at `now`: records whose anchor is strictly older expire.
// Precondition: !retain.forever.
Instant cutoff_for(Instant now, const Retention& retain);

}  // namespace retentiond
