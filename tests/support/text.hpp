#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond::test {

// Whether `part` occurs in `text`.
bool contains(const std::string& text, std::string_view part);

// The message of the std::runtime_error `action` throws, or "no error".
std::string error_of(const std::function<void()>& action);

// The non-empty lines of `text`.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace retentiond::test
