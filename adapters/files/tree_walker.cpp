#include "adapters/files/tree_walker.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace retentiond::adapters::files {
namespace {

std::string errno_text(int error) {
  return std::generic_category().message(error);
}

std::string shown(const std::string& path) {
  return path.empty() ? std::string(".") : path;
}

bool not_permitted(int error) {
  return error == EACCES || error == EPERM;
}

}  // namespace

void TreeWalker::DirCloser::operator()(DIR* dir) const noexcept {
  ::closedir(dir);
}

TreeWalker::TreeWalker(std::shared_ptr<const Root> root, GlobPattern glob)
    : m_root(std::move(root)), m_glob(std::move(glob)) {
  push(root_fd(m_root), "", "", m_glob.start());
}

TreeWalker::~TreeWalker() = default;

void TreeWalker::push(SharedFd fd, std::string path, std::string name, GlobPattern::States states) {
  // The stream reads through a fresh open file description of ".", so no two streams (nor a
  // walk and a later one from the same root) ever share a directory offset.
  const int stream_fd = ::openat(fd->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (stream_fd < 0)
    throw std::runtime_error(fmt::format("datastore '{}': cannot read directory '{}': {}",
                                         m_root->datastore, shown(path), errno_text(errno)));
  DIR* stream = ::fdopendir(stream_fd);
  if (stream == nullptr) {
    const int error = errno;
    ::close(stream_fd);
    throw std::runtime_error(fmt::format("datastore '{}': cannot read directory '{}': {}",
                                         m_root->datastore, shown(path), errno_text(error)));
  }
  m_frames.push_back(Frame{std::move(fd), std::unique_ptr<DIR, DirCloser>(stream), std::move(path),
                           std::move(name), std::move(states)});
}

std::optional<TreeWalker::Entry> TreeWalker::next(const std::function<void()>& on_entry) {
  if (m_replay) {
    m_replay = false;
    return m_last;
  }
  m_last.reset();
  while (!m_frames.empty()) {
    Frame& top = m_frames.back();
    errno = 0;
    const dirent* entry = ::readdir(top.stream.get());
    if (entry == nullptr) {
      if (errno != 0)
        throw std::runtime_error(fmt::format("datastore '{}': cannot read directory '{}': {}",
                                             m_root->datastore, shown(top.path),
                                             errno_text(errno)));
      m_frames.pop_back();
      continue;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..")
      continue;
    if (on_entry)
      on_entry();
    GlobPattern::States states = m_glob.step(top.states, name);
    const bool accepts = m_glob.accepts(states);
    const bool alive = m_glob.alive(states);
    if (!accepts && !alive)
      continue;  // nothing at or beneath this name can match: not even stat'ed

    std::string path = top.path.empty() ? std::string(name) : top.path + '/' + std::string(name);
    struct stat status {};
    if (::fstatat(top.fd->get(), entry->d_name, &status, AT_SYMLINK_NOFOLLOW) != 0) {
      const int error = errno;
      if (error == ENOENT)
        continue;  // removed since it was listed
      if (not_permitted(error)) {
        skip(path, fmt::format("cannot stat it: {}", errno_text(error)));
        continue;
      }
      throw std::runtime_error(fmt::format("datastore '{}': cannot stat '{}': {}",
                                           m_root->datastore, path, errno_text(error)));
    }

    if (S_ISDIR(status.st_mode) && alive) {
      if (m_frames.size() > k_max_depth) {
        skip(path, fmt::format("it is more than {} directories deep", k_max_depth));
        continue;
      }
      const int fd =
          ::openat(top.fd->get(), entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) {
        const int error = errno;
        if (error == ENOENT || error == ELOOP || error == ENOTDIR)
          continue;  // removed or replaced since the stat: a symlink is never followed
        if (not_permitted(error)) {
          skip(path, fmt::format("cannot open it: {}", errno_text(error)));
          continue;
        }
        throw std::runtime_error(fmt::format("datastore '{}': cannot open directory '{}': {}",
                                             m_root->datastore, path, errno_text(error)));
      }
      std::string child_name(name);
      // `top` is invalid once push() grows the stack.
      push(std::make_shared<const UniqueFd>(fd), std::move(path), std::move(child_name),
           std::move(states));
      continue;
    }
    // The glob could match beneath it, but a symlink is never followed: say what is left out.
    if (alive && S_ISLNK(status.st_mode)) {
      struct stat target {};
      if (::fstatat(top.fd->get(), entry->d_name, &target, 0) == 0 && S_ISDIR(target.st_mode))
        skip(path, "a symlink to a directory, never followed");
    }
    if (accepts && (S_ISREG(status.st_mode) || S_ISLNK(status.st_mode))) {
      m_last =
          Entry{S_ISREG(status.st_mode) ? Kind::regular : Kind::symlink, std::move(path), status};
      return m_last;
    }
    // Sockets, FIFOs, devices, and directories the glob names but nothing beneath: ignored.
  }
  return std::nullopt;
}

void TreeWalker::skip(const std::string& path, const std::string& reason) const {
  spdlog::warn("datastore '{}': skipped '{}' ({}): nothing beneath it is counted or removed",
               m_root->datastore, path, reason);
}

void TreeWalker::put_back() {
  if (m_last)
    m_replay = true;
}

std::vector<SharedFd> TreeWalker::last_directories() const {
  std::vector<SharedFd> directories;
  directories.reserve(m_frames.size());
  for (const Frame& frame : m_frames)
    directories.push_back(frame.fd);
  return directories;
}

std::optional<std::string> TreeWalker::last_unremovable() const {
  if (!m_last || !m_root->writable || m_frames.empty())
    return std::nullopt;
  return unremovable(m_frames.back().fd->get(), m_last->status);
}

std::unique_ptr<HeldFile> TreeWalker::hold_last() const {
  if (!m_last || m_last->kind != Kind::regular || m_frames.empty())
    throw std::logic_error("TreeWalker::hold_last: no regular file to hold");
  std::vector<std::string> names;
  names.reserve(m_frames.size() - 1);
  for (std::size_t i = 1; i < m_frames.size(); ++i)
    names.push_back(m_frames[i].name);
  const std::size_t slash = m_last->path.rfind('/');
  std::string name = slash == std::string::npos ? m_last->path : m_last->path.substr(slash + 1);
  return std::make_unique<HeldFile>(m_root, last_directories(), std::move(names), std::move(name),
                                    m_last->status, m_glob.literal_depth(), true);
}

}  // namespace retentiond::adapters::files
