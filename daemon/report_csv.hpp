#pragma once

#include "daemon/report.hpp"

#include <string>
#include <string_view>

namespace retentiond {

// The report as CSV (RFC 4180: CRLF line ends, fields quoted when needed): a header row, then
// one row per rule. Absent values (a keep rule's cutoff, no runs yet) are empty fields; the
// last_run_* columns describe the newest run.
std::string report_csv(const Report& report);

// One RFC 4180 field: `text` as is, or in double quotes (inner quotes doubled) when it holds a
// comma, a double quote, CR or LF, or starts or ends with a space. Text that a spreadsheet
// would run as a formula (starting with = + - @, a tab or CR) gets a leading apostrophe.
std::string csv_field(std::string_view text);

}  // namespace retentiond
