#include "adapters/sqlite/wal_checkpointer.hpp"

#include "adapters/files/unique_fd.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace retentiond::adapters::sqlite {
namespace {

// Syncs the WAL file itself: fdatasync on a descriptor of our own writes what any connection
// wrote to it.
void sync_log(sqlite3* db, const std::string& datastore) {
  const char* log = sqlite3_filename_wal(sqlite3_db_filename(db, "main"));
  const files::UniqueFd fd(::open(log, O_RDONLY | O_CLOEXEC));
  if (!fd || ::fdatasync(fd.get()) != 0)
    spdlog::warn("datastore '{}': cannot sync the WAL {}: {}", datastore, log,
                 std::strerror(errno));
}

}  // namespace

bool log_needs_sync(int result, int log_frames, int copied_frames) {
  return result != SQLITE_OK || copied_frames < log_frames;
}

void checkpoint_passive(sqlite3* db, const std::string& datastore) {
  const auto started = std::chrono::steady_clock::now();
  int log_frames = -1;
  int copied_frames = -1;
  const int result = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log_frames,
                                               &copied_frames);
  // Busy: another connection is checkpointing right now, which copies the same pages.
  if (result != SQLITE_OK && result != SQLITE_BUSY)
    spdlog::warn("datastore '{}': WAL checkpoint failed: {}", datastore, sqlite3_errmsg(db));
  if (log_needs_sync(result, log_frames, copied_frames))
    sync_log(db, datastore);
  spdlog::trace("datastore '{}': checkpoint copied {} of {} frames in {} us", datastore,
                copied_frames, log_frames,
                std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count());
}

WalCheckpointer::WalCheckpointer(const std::filesystem::path& path, std::string datastore,
                                 std::chrono::milliseconds busy_timeout)
    : m_datastore(std::move(datastore)),
      m_db(path.string(), SQLite::OPEN_READWRITE, static_cast<int>(busy_timeout.count())) {
  // A connection takes the database for WAL mode only once it has read it; before, a
  // checkpoint does nothing.
  m_db.exec("PRAGMA journal_mode");
  // The log is synced before it is copied, and the file after: as durable as the inline
  // checkpoint it replaces.
  m_db.exec("PRAGMA synchronous = NORMAL");
  m_thread = std::thread([this] { loop(); });
}

WalCheckpointer::~WalCheckpointer() {
  {
    const std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_changed.notify_all();
  m_thread.join();
}

std::uint64_t WalCheckpointer::request() {
  std::uint64_t ticket = 0;
  {
    const std::lock_guard lock(m_mutex);
    ticket = ++m_requested;
  }
  m_changed.notify_all();
  return ticket;
}

void WalCheckpointer::wait(std::uint64_t ticket) {
  std::unique_lock lock(m_mutex);
  const std::uint64_t until = std::min(ticket, m_requested);
  m_changed.wait(lock, [&] { return m_done >= until; });
}

void WalCheckpointer::loop() {
  std::unique_lock lock(m_mutex);
  while (true) {
    m_changed.wait(lock, [&] { return m_stopping || m_done != m_requested; });
    if (m_done == m_requested)
      return;  // stopping, with nothing asked for
    // One checkpoint answers every request made before it starts.
    const std::uint64_t answered = m_requested;
    lock.unlock();
    checkpoint_passive(m_db.getHandle(), m_datastore);
    lock.lock();
    m_done = answered;
    m_changed.notify_all();
  }
}

}  // namespace retentiond::adapters::sqlite
