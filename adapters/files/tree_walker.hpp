#pragma once

#include "adapters/files/beneath.hpp"
#include "adapters/files/glob_match.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace retentiond::adapters::files {

// Walks the tree beneath a root depth-first and yields, one at a time, the regular files and
// symlinks whose path matches a glob. Memory stays bounded whatever the tree's size: only the
// open directories from the root to the current one are kept (one stack frame each), subtrees
// the glob cannot match are never opened, and symlinks are never followed.
class TreeWalker {
public:
  enum class Kind { regular, symlink };

  struct Entry {
    Kind kind = Kind::regular;
    std::string path;       // relative to the root: "uploads/tmp/a.jpg"
    struct stat status {};  // fstatat(AT_SYMLINK_NOFOLLOW)
  };

  // Deeper than this beneath the root, the walk skips a directory rather than hold more
  // descriptors.
  static constexpr std::size_t k_max_depth = 128;

  TreeWalker(std::shared_ptr<const Root> root, GlobPattern glob);
  ~TreeWalker();
  TreeWalker(const TreeWalker&) = delete;
  TreeWalker& operator=(const TreeWalker&) = delete;

  // The next matching regular file or symlink; nullopt once the whole tree has been walked.
  // Entries that vanish while walking are skipped. A directory the process may not read or
  // search (EACCES, EPERM), deeper than k_max_depth, or a symlink to a directory the glob
  // reaches into, is skipped with a warning: whatever is beneath it is neither counted nor
  // removed, and the rest of the tree goes on. Throws
  // std::runtime_error when the root cannot be read, or reading fails otherwise (EIO, EMFILE).
  // `on_entry`, when given, is called
  // for every entry read, matching or not (a long stretch of files the glob passes over still
  // shows progress; it may throw to end the walk).
  std::optional<Entry> next(const std::function<void()>& on_entry = {});
  // Makes the next call to next() return the last entry again.
  void put_back();
  // Holds the last entry returned (a regular file) by the directories leading to it; they
  // are shared with the walk and with other files held in the same directories.
  std::unique_ptr<HeldFile> hold_last() const;
  // The directories hold_last() would share, root first.
  std::vector<SharedFd> last_directories() const;
  // Why the last entry returned (a regular file) could not be removed (see unremovable), when
  // the root is writable; nullopt otherwise.
  std::optional<std::string> last_unremovable() const;

private:
  // Warns that `path` and whatever is beneath it are left out of the walk, and why.
  void skip(const std::string& path, const std::string& reason) const;

  struct DirCloser {
    void operator()(DIR* dir) const noexcept;
  };
  struct Frame {
    SharedFd fd;
    std::unique_ptr<DIR, DirCloser> stream;  // on its own open file description
    std::string path;                        // relative; empty for the root
    std::string name;                        // this directory's name in its parent
    GlobPattern::States states;
  };

  void push(SharedFd fd, std::string path, std::string name, GlobPattern::States states);

  std::shared_ptr<const Root> m_root;
  GlobPattern m_glob;
  std::vector<Frame> m_frames;
  std::optional<Entry> m_last;
  bool m_replay = false;
};

}  // namespace retentiond::adapters::files
