#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond {

// A file a batch is about to remove: its path beneath its datastore's root, and which file it
// was then: device, inode and birth time (a file created later may get the same inode number).
struct PendingFile {
  std::string path;
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::int64_t born_ns = 0;  // nanoseconds since the epoch; 0 where the file system keeps none
  bool operator==(const PendingFile&) const = default;
};

// The files one batch's commit is about to remove, recorded in the state with the batch's
// audit entry: after a crash among the removals, the rule's next run counts those still there
// and takes them back out of the audited rows.
struct PendingFiles {
  std::string token;  // the batch's (Batch::token), as its audit entry names it
  std::vector<PendingFile> files;
  bool operator==(const PendingFiles&) const = default;
};

// As text for the state: the token, then a line per file ("device inode born path", the path in
// hex: names may hold any byte but '/' and NUL, and PostgreSQL text takes only UTF-8).
std::string encode_pending_files(const PendingFiles& pending);
// nullopt, with a warning naming `rule`, when `text` is not what encode_pending_files writes:
// the state then reads no record (and the rule's next run that ends clears it).
std::optional<PendingFiles> decode_pending_files(std::string_view text, std::string_view rule);

}  // namespace retentiond
