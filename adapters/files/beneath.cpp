#include "adapters/files/beneath.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace retentiond::adapters::files {
namespace {

// How far climbing '..' may go before giving up: deeper than any real tree.
constexpr int k_max_ascent = 4096;
// Directories a stored path may go through: each one stays open while its file is held, and a
// path deeper than any real tree is refused before it uses up the process's descriptors.
constexpr std::size_t k_max_path_directories = 128;

std::string errno_text(int error) {
  return std::generic_category().message(error);
}

bool same_inode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

enum class Placement { beneath, outside, gone };

// Where the directory `fd` is now: climbs its '..' chain (the kernel's real parents, never a
// symlink) until it meets the root, or the top of the filesystem.
Placement placement(const Root& root, int fd) {
  struct stat current {};
  if (::fstat(fd, &current) != 0)
    throw std::runtime_error(fmt::format("datastore '{}': cannot stat a held directory: {}",
                                         root.datastore, errno_text(errno)));
  UniqueFd up_holder;
  int at = fd;
  for (int level = 0; level < k_max_ascent; ++level) {
    if (same_inode(current, root.status))
      return Placement::beneath;
    UniqueFd up(::openat(at, "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!up) {
      if (errno == ENOENT)
        return Placement::gone;
      throw std::runtime_error(fmt::format("datastore '{}': cannot open the parent of a held "
                                           "directory: {}",
                                           root.datastore, errno_text(errno)));
    }
    struct stat parent {};
    if (::fstat(up.get(), &parent) != 0)
      throw std::runtime_error(fmt::format("datastore '{}': cannot stat a held directory: {}",
                                           root.datastore, errno_text(errno)));
    if (same_inode(parent, current))
      return Placement::outside;  // '..' of the top is itself
    current = parent;
    up_holder = std::move(up);
    at = up_holder.get();
  }
  return Placement::outside;
}

std::string join(const std::vector<std::string>& components, std::size_t count) {
  std::string path;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0)
      path += '/';
    path += components[i];
  }
  return path;
}

}  // namespace

std::optional<std::string> unremovable(int directory, const struct stat& file) {
  if (::faccessat(directory, "", W_OK | X_OK, AT_EMPTY_PATH | AT_EACCESS) != 0) {
    const int error = errno;
    if (error == EROFS)
      return "cannot be removed: its directory is on a read-only file system";
    if (error == EACCES || error == EPERM)
      return "cannot be removed: retentiond may not write to its directory";
    return std::nullopt;  // the question cannot be asked here (an old kernel): unlink decides
  }
  struct stat status {};
  const uid_t self = ::geteuid();
  if (self != 0 && ::fstat(directory, &status) == 0 && (status.st_mode & S_ISVTX) != 0 &&
      file.st_uid != self && status.st_uid != self)
    return "cannot be removed: its directory is sticky and the file belongs to another user";
  return std::nullopt;
}

std::shared_ptr<const Root> open_root(const std::string& datastore,
                                      const std::filesystem::path& root, bool writable) {
  auto opened = std::make_shared<Root>();
  opened->datastore = datastore;
  opened->path = root;
  opened->writable = writable;
  if (root.empty())
    throw std::runtime_error(fmt::format("datastore '{}': no root configured", datastore));
  opened->fd = UniqueFd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!opened->fd) {
    const int error = errno;
    if (error == ENOENT || error == ENOTDIR)
      throw std::runtime_error(fmt::format("datastore '{}': root {} does not exist or is not a "
                                           "directory",
                                           datastore, root.string()));
    throw std::runtime_error(fmt::format("datastore '{}': root {} is not readable: {}", datastore,
                                         root.string(), errno_text(error)));
  }
  if (::fstat(opened->fd.get(), &opened->status) != 0)
    throw std::runtime_error(fmt::format("datastore '{}': cannot stat root {}: {}", datastore,
                                         root.string(), errno_text(errno)));
  return opened;
}

HeldFile::HeldFile(std::shared_ptr<const Root> root, std::vector<SharedFd> directories,
                   std::vector<std::string> directory_names, std::string name,
                   const struct stat& status, std::size_t kept_depth, bool aged_by_mtime)
    : m_root(std::move(root)), m_directories(std::move(directories)),
      m_directory_names(std::move(directory_names)), m_name(std::move(name)),
      m_device(status.st_dev), m_inode(status.st_ino), m_kept_depth(kept_depth) {
  if (aged_by_mtime)
    m_times = std::pair{status.st_mtim, status.st_ctim};
}

std::string HeldFile::relative_path() const {
  std::string path = join(m_directory_names, m_directory_names.size());
  if (!path.empty())
    path += '/';
  return path + m_name;
}

PendingFile HeldFile::pending() const {
  PendingFile file{relative_path(), static_cast<std::uint64_t>(m_device),
                   static_cast<std::uint64_t>(m_inode), 0};
  // The birth time tells this file from one created later under the same inode number.
  struct statx status {};
  if (::statx(m_directories.back()->get(), m_name.c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME,
              &status) == 0 &&
      (status.stx_mask & STATX_BTIME) != 0 && status.stx_ino == m_inode)
    file.born_ns = static_cast<std::int64_t>(status.stx_btime.tv_sec) * 1'000'000'000 +
                   status.stx_btime.tv_nsec;
  return file;
}

bool HeldFile::remove() {
  if (!m_root->writable)
    throw std::runtime_error(fmt::format("datastore '{}': cannot remove '{}': the datastore is "
                                         "open read-only",
                                         m_root->datastore, relative_path()));
  const int parent = m_directories.back()->get();
  switch (placement(*m_root, parent)) {
  case Placement::beneath: break;
  case Placement::gone: return false;
  case Placement::outside:
    throw std::runtime_error(fmt::format("datastore '{}': the directory of '{}' was moved out of "
                                         "root {} after it was resolved; nothing removed",
                                         m_root->datastore, relative_path(),
                                         m_root->path.string()));
  }
  struct stat now {};
  if (::fstatat(parent, m_name.c_str(), &now, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT)
      return false;
    throw std::runtime_error(fmt::format("datastore '{}': cannot stat '{}': {}", m_root->datastore,
                                         relative_path(), errno_text(errno)));
  }
  if (!S_ISREG(now.st_mode) || now.st_dev != m_device || now.st_ino != m_inode) {
    spdlog::warn("datastore '{}': '{}' was replaced after it was resolved; left in place",
                 m_root->datastore, relative_path());
    return false;
  }
  const auto same = [](const struct timespec& a, const struct timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
  };
  if (m_times && (!same(now.st_mtim, m_times->first) || !same(now.st_ctim, m_times->second))) {
    spdlog::warn("datastore '{}': '{}' was written after it was found due; left in place",
                 m_root->datastore, relative_path());
    return false;
  }
  if (::unlinkat(parent, m_name.c_str(), 0) != 0) {
    if (errno == ENOENT)
      return false;
    throw std::runtime_error(fmt::format("datastore '{}': cannot remove '{}': {}",
                                         m_root->datastore, relative_path(), errno_text(errno)));
  }
  prune_empty_directories();
  return true;
}

void HeldFile::prune_empty_directories() const {
  // m_directories[0] is the root and [1..m_kept_depth] the kept ones: the loop never reaches
  // them as something to remove.
  for (std::size_t i = m_directories.size() - 1; i > m_kept_depth; --i) {
    const int parent = m_directories[i - 1]->get();
    const std::string& name = m_directory_names[i - 1];
    struct stat held {};
    struct stat named {};
    // Only the very directory held, still under its name in a parent still beneath the root.
    if (::fstat(m_directories[i]->get(), &held) != 0 ||
        ::fstatat(parent, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISDIR(named.st_mode) || !same_inode(held, named) ||
        placement(*m_root, parent) != Placement::beneath)
      return;
    if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0) {
      const int error = errno;
      // Not empty, gone, a mount point, or not ours to remove (EACCES, EPERM: a sticky or
      // read-only parent): left, and said once per file only when debugging.
      if (error == EACCES || error == EPERM)
        spdlog::debug("datastore '{}': cannot remove directory '{}': {}", m_root->datastore,
                      join(m_directory_names, i), errno_text(error));
      else if (error != ENOTEMPTY && error != EEXIST && error != ENOENT && error != EBUSY)
        spdlog::warn("datastore '{}': cannot remove empty directory '{}': {}", m_root->datastore,
                     join(m_directory_names, i), errno_text(error));
      return;
    }
  }
}

SharedFd DirectoryCache::find(const std::string& path, int parent, const std::string& name) {
  SharedFd held;
  {
    const std::lock_guard lock(m_mutex);
    const auto entry = m_entries.find(path);
    if (entry == m_entries.end())
      return nullptr;
    held = entry->second.lock();
    if (!held) {
      m_entries.erase(entry);
      return nullptr;
    }
  }
  struct stat held_status {};
  struct stat named {};
  if (::fstat(held->get(), &held_status) != 0 ||
      ::fstatat(parent, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) != 0 ||
      !S_ISDIR(named.st_mode) || !same_inode(held_status, named))
    return nullptr;
  return held;
}

void DirectoryCache::remember(const std::string& path, const SharedFd& fd) {
  const std::lock_guard lock(m_mutex);
  m_entries[path] = fd;
  if (m_entries.size() < m_sweep_at)
    return;
  std::erase_if(m_entries, [](const auto& entry) { return entry.second.expired(); });
  m_sweep_at = std::max<std::size_t>(64, 2 * m_entries.size());
}

std::expected<std::unique_ptr<HeldFile>, std::string>
resolve_beneath(const std::shared_ptr<const Root>& root, std::string_view relative_path,
                DirectoryCache* cache) {
  if (relative_path.empty())
    return std::unexpected("empty path");
  if (relative_path.find('\0') != std::string_view::npos)
    return std::unexpected("path contains a NUL byte");
  if (relative_path.front() == '/')
    return std::unexpected("absolute path");

  std::vector<std::string> components;
  bool spelled_one_way = true;
  std::size_t begin = 0;
  while (begin <= relative_path.size()) {
    std::size_t end = relative_path.find('/', begin);
    if (end == std::string_view::npos)
      end = relative_path.size();
    const std::string_view component = relative_path.substr(begin, end - begin);
    if (component == "..")
      return std::unexpected("path contains '..'");
    if (!component.empty() && component != ".")
      components.emplace_back(component);
    else
      spelled_one_way = false;
    begin = end + 1;
  }
  if (components.empty())
    return std::unexpected("not a regular file");  // it names the root itself
  if (components.size() - 1 > k_max_path_directories)
    return std::unexpected(
        fmt::format("path is more than {} directories deep", k_max_path_directories));
  // Rows that name one file are found by the path as stored (a file another row still names
  // stays): "./v/a.mp4" or "v//a.mp4" would hide a row that says "v/a.mp4".
  if (!spelled_one_way)
    return std::unexpected(fmt::format("path has an empty or '.' component (write it as '{}')",
                                       join(components, components.size())));

  std::vector<SharedFd> directories{root_fd(root)};
  std::string walked;  // the components opened so far: "a/b"
  for (std::size_t i = 0; i + 1 < components.size(); ++i) {
    const int at = directories.back()->get();
    const std::string& component = components[i];
    if (i > 0)
      walked += '/';
    walked += component;
    if (cache != nullptr) {
      if (SharedFd held = cache->find(walked, at, component)) {
        directories.push_back(std::move(held));
        continue;
      }
    }
    // O_PATH with O_NOFOLLOW opens a symlink itself, so what fstat describes is the very entry
    // held: a name swapped between a directory and a symlink is refused whichever it was.
    UniqueFd opened(::openat(at, component.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!opened) {
      const int error = errno;
      if (error == ENOENT || error == ENAMETOOLONG || error == ENOTDIR)
        return nullptr;
      if (error == EMFILE || error == ENFILE || error == ENOMEM)
        throw std::runtime_error(fmt::format("datastore '{}': cannot open '{}': {}",
                                             root->datastore, walked, errno_text(error)));
      // Not ours to reach (EACCES): this row's file only; the others go on.
      return std::unexpected(fmt::format("cannot open '{}': {}", walked, errno_text(error)));
    }
    struct stat opened_status {};
    if (::fstat(opened.get(), &opened_status) != 0)
      return std::unexpected(fmt::format("cannot stat '{}': {}", walked, errno_text(errno)));
    if (S_ISLNK(opened_status.st_mode))
      return std::unexpected(fmt::format("symlink at '{}'", walked));
    if (!S_ISDIR(opened_status.st_mode))
      return nullptr;  // a file where a directory would be: nothing can be beneath it
    directories.push_back(std::make_shared<const UniqueFd>(std::move(opened)));
    if (cache != nullptr)
      cache->remember(walked, directories.back());
  }

  const std::string name = components.back();
  struct stat status {};
  if (::fstatat(directories.back()->get(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
    const int error = errno;
    if (error == ENOENT || error == ENAMETOOLONG || error == ENOTDIR)
      return nullptr;
    return std::unexpected(fmt::format("cannot stat '{}': {}", join(components, components.size()),
                                       errno_text(error)));
  }
  if (S_ISLNK(status.st_mode))
    return std::unexpected(fmt::format("symlink at '{}'", join(components, components.size())));
  if (!S_ISREG(status.st_mode))
    return std::unexpected("not a regular file");
  if (root->writable)
    if (auto reason = unremovable(directories.back()->get(), status))
      return std::unexpected(std::move(*reason));
  components.pop_back();
  return std::make_unique<HeldFile>(root, std::move(directories), std::move(components), name,
                                    status);
}

}  // namespace retentiond::adapters::files
