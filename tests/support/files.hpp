#pragma once

#include <filesystem>
#include <set>
#include <string>

namespace retentiond::test {

// The whole content of a file; empty when it cannot be read.
std::string file_bytes(const std::filesystem::path& path);

// Every path beneath `root`, relative, never following a symlink; directories end with '/'.
std::set<std::string> tree_set(const std::filesystem::path& root);

}  // namespace retentiond::test
