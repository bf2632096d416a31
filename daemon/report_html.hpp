#pragma once

#include "daemon/report.hpp"

#include <string>
#include <string_view>

namespace retentiond {

// The report as one self-contained HTML page for auditors: inline CSS and SVG only, no scripts,
// nothing fetched (a Content-Security-Policy forbids it), printable. A header with the audit
// chain's state, a summary table, then one section per policy clause with each rule's facts,
// age chart and last runs; each rule's section has id="rule-<id>".
std::string report_html(const Report& report);

// The SVG bar chart of `entry.ages` against its cutoff (ages measured at `as_of`); empty when
// the rule has no age buckets (keep rules, rules that failed).
std::string age_chart_svg(const RuleReport& entry, Instant as_of);

// `text` safe in HTML text and in double- or single-quoted attribute values.
std::string html_escape(std::string_view text);

}  // namespace retentiond
