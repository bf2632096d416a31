#pragma once

#include "daemon/report.hpp"

#include <string>
#include <string_view>

namespace retentiond {

// A Markdown document for people: the header facts, a summary table with one row per rule, then
// one section per policy clause with the rules that cite it (facts and last runs).
std::string report_markdown(const Report& report);

// `text` safe inside Markdown running text and table cells: characters Markdown would read as
// markup are backslash-escaped, line breaks become spaces.
std::string markdown_escape(std::string_view text);

}  // namespace retentiond
