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
// (PASSIVE): frames a reader still needs stay for the next checkpoint. A failure is logged.
void checkpoint_passive(sqlite3* db, const std::string& datastore);

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
