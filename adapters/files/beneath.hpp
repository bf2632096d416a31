#pragma once

#include "adapters/datastore.hpp"
#include "adapters/files/unique_fd.hpp"

#include <sys/stat.h>

#include <cstddef>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace retentiond::adapters::files {

// A files datastore's root directory, opened once. Everything beneath it is reached from this
// descriptor with openat/fstatat/unlinkat, one component at a time, never following a symlink.
struct Root {
  std::string datastore;       // for messages: "datastore 'media': ..."
  std::filesystem::path path;  // as configured, for messages only: never opened again
  UniqueFd fd;
  struct stat status {};  // identifies the root when climbing '..' from a held directory
  bool writable = false;  // false when the datastore is open read_only: remove() throws
};

// Opens `root` (following symlinks in the configured path itself, which the operator chose).
// Throws std::runtime_error "datastore 'NAME': root PATH does not exist or is not a directory",
// or "... is not readable: REASON".
std::shared_ptr<const Root> open_root(const std::string& datastore,
                                      const std::filesystem::path& root, bool writable);

// Why this process could not remove the file `file` (its fstat) from the directory open as
// `directory`, as far as permissions tell before trying: no write or search permission, a
// read-only file system, or a sticky directory where neither the file nor the directory is
// ours. nullopt when they allow it (the unlink may still fail, which fails its batch). A row or
// file refused this way is kept and counted, instead of stopping every later batch at its
// unlink.
std::optional<std::string> unremovable(int directory, const struct stat& file);

// The root's descriptor as the first link of a chain of held directories.
inline SharedFd root_fd(const std::shared_ptr<const Root>& root) {
  return {root, &root->fd};
}

// A regular file beneath the root, held by the open directories that lead to it (root first).
// remove() acts on those descriptors, never on a path string, so replacing a directory on the
// way by a symlink after resolution cannot redirect it.
class HeldFile final : public ResolvedFile {
public:
  // `directories` starts with the root; `directory_names[i]` is the name of directories[i + 1]
  // in directories[i]; `status` is the file's fstatat(AT_SYMLINK_NOFOLLOW) at resolution.
  // `kept_depth`: how many directories below the root remove() never prunes (a file rule's
  // "uploads/tmp/**" keeps uploads and uploads/tmp: they are the rule's place, not its matches).
  // `aged_by_mtime`: the file was chosen for its mtime (a file rule), so a file written since
  // (a new mtime) is left in place.
  HeldFile(std::shared_ptr<const Root> root, std::vector<SharedFd> directories,
           std::vector<std::string> directory_names, std::string name, const struct stat& status,
           std::size_t kept_depth = 0, bool aged_by_mtime = false);

  // Unlinks the file if it is still the one resolved (same device and inode, still a regular
  // file, its directory still beneath the root), then removes each directory it leaves empty,
  // up to but never including the root or the kept directories. Returns false when the file is gone
  // or was replaced meanwhile (the replacement is left alone). Throws std::runtime_error when the
  // datastore is read-only, the directory was moved out of the root, or the unlink fails otherwise.
  bool remove() override;
  PendingFile pending() const override;

  // "a/b/c.jpg": the components resolved, without empty or "." ones.
  std::string relative_path() const;

private:
  void prune_empty_directories() const;

  std::shared_ptr<const Root> m_root;
  std::vector<SharedFd> m_directories;
  std::vector<std::string> m_directory_names;
  std::string m_name;
  dev_t m_device;
  ino_t m_inode;
  std::size_t m_kept_depth;
  // When aged by its mtime: the mtime and ctime it was chosen with (the ctime changes with any
  // write, even one that puts the mtime back, as rsync -t or touch -r do).
  std::optional<std::pair<struct timespec, struct timespec>> m_times;
};

// Directories that files resolved earlier still hold open, offered to later resolutions so a
// batch of many files in few directories holds few descriptors. An entry is only reused while
// some file holds it and while it is still the very directory (device and inode) under its
// name in the parent just resolved; otherwise the directory is opened afresh. Thread-safe.
class DirectoryCache {
public:
  // The held descriptor of `path` ("a/b"), if alive and still named `name` in `parent`.
  SharedFd find(const std::string& path, int parent, const std::string& name);
  // Offers `fd`, just opened for `path`, to later resolutions.
  void remember(const std::string& path, const SharedFd& fd);

private:
  std::mutex m_mutex;
  std::unordered_map<std::string, std::weak_ptr<const UniqueFd>> m_entries;
  std::size_t m_sweep_at = 64;  // entries at which expired ones are dropped
};

// Resolves `relative_path` beneath the root (see LinkedFiles::resolve): the held file; nullptr
// when it does not exist; or the reason it is refused: "empty path", "absolute path",
// "path contains a NUL byte", "path contains '..'", "symlink at 'a/b'", "not a regular file",
// "path is more than 128 directories deep", "cannot open 'a/b': Permission denied", or (when
// the root is writable) why it could not be removed (see unremovable). `cache` (optional)
// shares directories with files still held. Throws std::runtime_error only when the process
// runs out of descriptors or memory: that is not the row's fault.
std::expected<std::unique_ptr<HeldFile>, std::string>
resolve_beneath(const std::shared_ptr<const Root>& root, std::string_view relative_path,
                DirectoryCache* cache = nullptr);

}  // namespace retentiond::adapters::files
