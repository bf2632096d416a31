#pragma once

#include <SQLiteCpp/Database.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace retentiond::adapters::sqlite {

// Copies what the WAL of `db` holds into the database file without waiting for anyone
// (PASSIVE): frames a reader still needs stay for the next checkpoint. Either way every frame
// committed before the call is on disk when it returns (see log_needs_sync). A failure is
// logged.
void checkpoint_passive(sqlite3* db, const std::string& datastore);

// Whether a PASSIVE checkpoint that returned `result`, with `copied_frames` of `log_frames`
// copied, may have left frames of the log unsynced. SQLite syncs the log only before it copies
// frames; a checkpoint that copied none (a reader of the application holds an old snapshot, or
// the first frame), gave way to another checkpointer (SQLITE_BUSY) or failed synced nothing, and
// with synchronous = NORMAL neither did the COMMITs since the last one.
bool log_needs_sync(int result, int log_frames, int copied_frames);

// Copies a WAL-mode database's log into its file (a PASSIVE checkpoint: it waits for no one)
// on a thread and connection of its own, so the engine's connection goes on with the next
// batch meanwhile: the copy and its two fsyncs overlap the batch's statements instead of
// following them.
class WalCheckpointer {
public:
  // Opens its own connection to `path` (waiting up to `busy_timeout` for a lock); throws what
  // SQLite::Database throws.
  WalCheckpointer(const std::filesystem::path& path, std::string datastore,
                  std::chrono::milliseconds busy_timeout);
  ~WalCheckpointer();

  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Asks for a checkpoint of everything committed so far, and returns its ticket.
  std::uint64_t request();
  // Returns once the checkpoint of `ticket` has run (by default, of every request so far).
  void wait(std::uint64_t ticket = k_every_request);

  static constexpr std::uint64_t k_every_request = std::numeric_limits<std::uint64_t>::max();

private:
  void loop();

  std::string m_datastore;
  SQLite::Database m_db;
  std::mutex m_mutex;
  std::condition_variable m_changed;
  std::uint64_t m_requested = 0;
  std::uint64_t m_done = 0;
  bool m_stopping = false;
  std::thread m_thread;  // last: starts once the members it uses exist
};

}  // namespace retentiond::adapters::sqlite
