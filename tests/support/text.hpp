#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace retentiond::test {

// Whether `part` occurs in `text`.
bool contains(const std::string& text, std::string_view part);

// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace retentiond::test
