#include "adapters/files/files_datastore.hpp"

#include "adapters/files/beneath.hpp"
#include "adapters/files/glob_match.hpp"
#include "adapters/files/tree_walker.hpp"
#include "daemon/digest.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <unordered_set>

namespace retentiond::adapters::files {
namespace {

// The most distinct directories the files of one batch may hold open: a batch stops early
// (not exhausted) rather than run out of descriptors on a tree with one file per directory.
constexpr std::size_t k_max_held_directories = 256;
// The most files one batch removes: their paths are recorded in the state before the
// removals start (see Batch::pending_files), and that record stays small.
constexpr std::int64_t k_max_files_per_batch = 1000;

// mtimes are clamped to years 1..9999 so a hostile timestamp can neither overflow nor print
// as nonsense in the report.
constexpr std::int64_t k_min_seconds = -62135596800;
constexpr std::int64_t k_max_seconds = 253402300799;

// A file's mtime, floored to the millisecond: `mtime < cutoff` is exact because cutoffs are
// whole milliseconds.
Instant mtime_of(const struct stat& status) {
  const std::int64_t seconds =
      std::clamp(static_cast<std::int64_t>(status.st_mtim.tv_sec), k_min_seconds, k_max_seconds);
  return from_unix_millis(seconds * 1000 +
                          static_cast<std::int64_t>(status.st_mtim.tv_nsec) / 1000000);
}

// Where a walk stopped between two batches of one rule run, so the next batch goes on from
// there instead of re-reading what the previous one passed over.
struct Resume {
  std::string rule_id;
  Instant cutoff;
  std::unique_ptr<TreeWalker> walker;
};

// Due files, held open; removed at commit. Nothing changes before commit, so destroying the
// batch uncommitted leaves the tree as it was.
class FilesBatch final : public Batch {
public:
  FilesBatch(std::vector<std::unique_ptr<HeldFile>> files,
             std::vector<std::pair<std::string, std::string>> refusals, bool exhausted,
             std::optional<Resume>& resume_slot, Resume resume)
      : m_files(std::move(files)), m_refusals(std::move(refusals)), m_exhausted(exhausted),
        m_resume_slot(resume_slot), m_resume(std::move(resume)), m_token(random_hex(8)) {}

  std::int64_t rows() const override { return static_cast<std::int64_t>(m_files.size()); }
  std::int64_t children() const override { return 0; }
  bool exhausted() const override { return m_exhausted; }
  const std::vector<std::pair<std::string, std::string>>& refusals() const override {
    return m_refusals;
  }
  std::string token() const override { return m_token; }
  std::vector<PendingFile> pending_files() const override { return pending_files_of(m_files); }

  void commit() override {
    std::int64_t gone = 0;
    for (const auto& file : m_files) {
      if (file->remove())
        ++m_removed;
      else
        ++gone;
    }
    if (gone > 0)
      spdlog::info("{} due file(s) had gone, or changed, when the batch committed", gone);
    m_vanished = gone;
    m_files.clear();
    // Only a committed batch lets the next one carry on: after a rollback the files it
    // passed over are still there and must be found again.
    if (!m_exhausted)
      m_resume_slot = std::move(m_resume);
  }

  std::int64_t vanished() const override { return m_vanished; }
  std::int64_t files_removed() const override { return m_removed; }

private:
  std::int64_t m_vanished = 0;
  std::int64_t m_removed = 0;
  std::vector<std::unique_ptr<HeldFile>> m_files;
  std::vector<std::pair<std::string, std::string>> m_refusals;  // due symlinks it passed
  bool m_exhausted;
  std::optional<Resume>& m_resume_slot;
  Resume m_resume;
  std::string m_token;  // names the batch in its audit entry and its record of pending files
};

class FilesDatastore final : public Datastore, public LinkedFiles {
public:
  FilesDatastore(const DatastoreConfig& config, OpenMode mode)
      : m_name(config.name),
        m_root(open_root(config.name, config.root, mode == OpenMode::read_write)) {}

  SchemaCheck check_schema(const Rule& rule) override {
    m_resume.reset();
    SchemaCheck check;
    if (rule.glob.empty())
      check.errors.push_back(fmt::format("rule '{}' has no glob: rules on files datastore '{}' "
                                         "select files with glob = \"...\"",
                                         rule.id, m_name));
    struct stat status {};
    if (::fstat(m_root->fd.get(), &status) != 0 || !S_ISDIR(status.st_mode))
      check.errors.push_back(
          fmt::format("datastore '{}': root {} is not a directory", m_name, m_root->path.string()));
    else if (status.st_nlink == 0)
      check.errors.push_back(fmt::format("datastore '{}': root {} was removed after it was "
                                         "opened; restart to open it again",
                                         m_name, m_root->path.string()));
    else if (::faccessat(m_root->fd.get(), ".", R_OK | X_OK, AT_EACCESS) != 0)
      check.errors.push_back(fmt::format("datastore '{}': root {} is not readable: {}", m_name,
                                         m_root->path.string(),
                                         std::generic_category().message(errno)));
    return check;
  }

  RuleCounts count(const Selection& selection) override {
    m_resume.reset();
    RuleCounts counts;
    TreeWalker walker(m_root, GlobPattern(selection.rule.glob));
    // A large tree takes a while: every entry read, matching or not, shows progress.
    while (const auto entry = walker.next([&] { census_step(selection); })) {
      if (entry->kind == TreeWalker::Kind::symlink) {
        // Never followed, never removed: a due one is refused, as the batches say.
        if (mtime_of(entry->status) < selection.cutoff)
          ++counts.refused;
        continue;
      }
      ++counts.table_rows;
      ++counts.total;
      const Instant mtime = mtime_of(entry->status);
      if (mtime > selection.now)
        ++counts.future;
      if (mtime < selection.cutoff && walker.last_unremovable()) {
        ++counts.refused;
      } else if (mtime < selection.cutoff) {
        ++counts.due;
        if (!counts.oldest_due || mtime < *counts.oldest_due)
          counts.oldest_due = mtime;
      }
    }
    return counts;
  }

  std::vector<std::int64_t> count_by_anchor(const Selection& selection,
                                            const std::vector<Instant>& edges) override {
    m_resume.reset();
    std::vector<std::int64_t> buckets(edges.size() + 1, 0);
    TreeWalker walker(m_root, GlobPattern(selection.rule.glob));
    while (const auto entry = walker.next([&] { census_step(selection); })) {
      if (entry->kind != TreeWalker::Kind::regular)
        continue;
      const auto bucket = std::upper_bound(edges.begin(), edges.end(), mtime_of(entry->status));
      ++buckets[static_cast<std::size_t>(bucket - edges.begin())];
    }
    return buckets;
  }

  // Removing files holds no lock an application waits for: the deadline is not needed.
  std::unique_ptr<Batch> begin_batch(const Selection& selection, std::int64_t limit,
                                     std::chrono::steady_clock::duration) override {
    const Rule& rule = selection.rule;
    if (!m_root->writable)
      throw std::runtime_error(fmt::format("datastore '{}' is open read-only", m_name));
    if (rule.action != Action::delete_rows || limit <= 0) {
      m_resume.reset();
      return nullptr;
    }
    limit = std::min(limit, k_max_files_per_batch);
    std::unique_ptr<TreeWalker> walker;
    if (m_resume && m_resume->rule_id == rule.id && m_resume->cutoff == selection.cutoff)
      walker = std::move(m_resume->walker);
    m_resume.reset();
    if (!walker)
      walker = std::make_unique<TreeWalker>(m_root, GlobPattern(rule.glob));

    std::vector<std::unique_ptr<HeldFile>> files;
    std::vector<std::pair<std::string, std::string>> refusals;
    std::unordered_set<const UniqueFd*> held_directories;
    bool walked_all = false;
    while (static_cast<std::int64_t>(files.size() + refusals.size()) < limit) {
      // Few due files in a large tree: the batch walks as long as a census.
      const auto entry = walker->next([&] { report_progress(selection); });
      if (!entry) {
        walked_all = true;
        break;
      }
      if (!(mtime_of(entry->status) < selection.cutoff))
        continue;
      if (entry->kind == TreeWalker::Kind::symlink) {
        refusals.emplace_back("file " + entry->path, fmt::format("symlink at '{}'", entry->path));
        continue;
      }
      if (auto reason = walker->last_unremovable()) {
        refusals.emplace_back("file " + entry->path, std::move(*reason));
        continue;
      }
      const std::vector<SharedFd> directories = walker->last_directories();
      std::size_t new_directories = 0;
      for (const SharedFd& directory : directories)
        new_directories += held_directories.contains(directory.get()) ? 0 : 1;
      if (!files.empty() && held_directories.size() + new_directories > k_max_held_directories) {
        walker->put_back();  // the next batch starts with it
        break;
      }
      for (const SharedFd& directory : directories)
        held_directories.insert(directory.get());
      files.push_back(walker->hold_last());
    }
    if (files.empty() && refusals.empty())
      return nullptr;
    const bool exhausted = walked_all;
    return std::make_unique<FilesBatch>(std::move(files), std::move(refusals), exhausted, m_resume,
                                        Resume{rule.id, selection.cutoff, std::move(walker)});
  }

  LinkedFiles* linked_files() override { return this; }

  void finish_run() override { m_resume.reset(); }

  std::expected<std::unique_ptr<ResolvedFile>, std::string>
  resolve(std::string_view relative_path) override {
    auto resolved = resolve_beneath(m_root, relative_path, &m_directories);
    if (!resolved)
      return std::unexpected(std::move(resolved.error()));
    return std::unique_ptr<ResolvedFile>(std::move(*resolved));
  }

  std::int64_t count_present(const std::vector<PendingFile>& files) override {
    std::int64_t present = 0;
    for (const PendingFile& file : files) {
      auto resolved = resolve_beneath(m_root, file.path);
      if (!resolved) {
        spdlog::warn("datastore '{}': cannot tell whether '{}' is still there ({}); it stays "
                     "counted as removed",
                     m_name, file.path, resolved.error());
        continue;
      }
      if (!*resolved)
        continue;  // gone
      const PendingFile now = (*resolved)->pending();
      // A birth time of 0: the file system keeps none, and device and inode have to do.
      if (now.device == file.device && now.inode == file.inode &&
          (file.born_ns == 0 || now.born_ns == file.born_ns))
        ++present;
    }
    return present;
  }

private:
  std::string m_name;
  std::shared_ptr<const Root> m_root;
  DirectoryCache m_directories;    // shared by the linked files a batch holds
  std::optional<Resume> m_resume;  // only between consecutive batches of one rule run
};

}  // namespace

std::unique_ptr<Datastore> open_files_datastore(const DatastoreConfig& config, OpenMode mode,
                                                const AdapterSecrets& /*secrets*/) {
  return std::make_unique<FilesDatastore>(config, mode);
}

}  // namespace retentiond::adapters::files
