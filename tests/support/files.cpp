#include "tests/support/files.hpp"

#include <fstream>
#include <iterator>

namespace retentiond::test {

std::string file_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::set<std::string> tree_set(const std::filesystem::path& root) {
  std::set<std::string> paths;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    std::string path = entry.path().lexically_relative(root).string();
    if (entry.is_directory() && !entry.is_symlink())
      path += '/';
    paths.insert(path);
  }
  return paths;
}

}  // namespace retentiond::test
