#include "adapters/datastore.hpp"
#include "tests/support/files.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>

using namespace retentiond;
using retentiond::test::error_of;
using retentiond::test::TempDir;
namespace fs = std::filesystem;
using retentiond::test::tree_set;
using std::chrono::days;
using std::chrono::hours;

namespace {

// Sets the mtime of `path` itself (of a symlink, not of what it points at).
void set_mtime(const fs::path& path, Instant mtime) {
  const std::int64_t millis = to_unix_millis(mtime);
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(millis / 1000);
  times[0].tv_nsec = static_cast<long>((millis % 1000) * 1000000);
  times[1] = times[0];
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

void write_file(const fs::path& path, Instant mtime, const std::string& bytes = "data") {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
  set_mtime(path, mtime);
}

// tree_set(root), sorted and joined with spaces, so a mismatch prints legibly.
std::string tree(const fs::path& root) {
  std::string joined;
  for (const std::string& path : tree_set(root))
    joined += (joined.empty() ? "" : " ") + path;
  return joined;
}

DatastoreConfig files_config(const fs::path& root) {
  DatastoreConfig config;
  config.name = "media";
  config.type = "files";
  config.root = root;
  return config;
}

Rule file_rule(std::string glob) {
  Rule rule;
  rule.id = "media_tmp";
  rule.datastore = "media";
  rule.glob = std::move(glob);
  rule.action = Action::delete_rows;
  return rule;
}

// What batches did: the files each batch that removed some removed, and every refused record.
struct Batches {
  std::vector<std::int64_t> rows;
  std::set<std::string> refused;
};

// Runs batches of `limit` until the datastore reports nothing more, as the engine does.
Batches run_batches(adapters::Datastore& store, const adapters::Selection& selection,
                    std::int64_t limit) {
  Batches done;
  for (int guard = 0; guard < 1000; ++guard) {
    auto batch = store.begin_batch(selection, limit);
    if (!batch)
      break;
    CHECK(batch->children() == 0);
    CHECK(batch->files() == 0);
    CHECK(batch->rows() + static_cast<std::int64_t>(batch->refusals().size()) <= limit);
    if (batch->rows() > 0)
      done.rows.push_back(batch->rows());
    for (const auto& [record, reason] : batch->refusals()) {
      CHECK(reason == "symlink at '" + record.substr(5) + "'");
      done.refused.insert(record);
    }
    batch->commit();
    if (batch->exhausted())
      break;
  }
  return done;
}

const std::set<std::string> k_old_links{"file uploads/tmp/inner_link",
                                        "file uploads/tmp/outer_link"};

struct MediaTree {
  TempDir dir;
  fs::path root = dir / "root";
  Instant now = now_utc();
  Instant cutoff = now - days{7};

  MediaTree() {
    write_file(root / "uploads/tmp/old1.bin", now - days{30});
    write_file(root / "uploads/tmp/sub/deeper/old2.bin", now - days{10});
    write_file(root / "uploads/tmp/young.bin", now - hours{1});
    write_file(root / "uploads/tmp/future.bin", now + days{1});
    write_file(root / "uploads/tmp/edge.bin", cutoff);          // exactly at the cutoff: not older
    write_file(root / "uploads/keep/old.bin", now - days{30});  // outside the glob
    write_file(dir / "outside.bin", now - days{30}, "outside");
    fs::create_symlink("../keep/old.bin", root / "uploads/tmp/inner_link");
    set_mtime(root / "uploads/tmp/inner_link", now - days{30});
    fs::create_symlink(dir / "outside.bin", root / "uploads/tmp/outer_link");
    set_mtime(root / "uploads/tmp/outer_link", now - days{30});
    fs::create_directory_symlink(dir.path(), root / "uploads/tmp/dir_link");  // young
    REQUIRE(::mkfifo((root / "uploads/tmp/fifo").c_str(), 0600) == 0);
  }
};

}  // namespace

TEST_CASE("files datastore: count classifies matching files by mtime") {
  MediaTree media;
  auto store =
      adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_only, {});
  const Rule rule = file_rule("uploads/tmp/**");
  const adapters::Selection selection{rule, media.cutoff, media.now, {}, nullptr};

  CHECK(store->check_schema(rule).errors.empty());
  CHECK(store->check_schema(rule).warnings.empty());
  const adapters::RuleCounts counts = store->count(selection);
  CHECK(counts.table_rows == 5);
  CHECK(counts.total == 5);
  CHECK(counts.due == 2);
  CHECK(counts.future == 1);
  CHECK(counts.refused == 2);  // the two old symlinks, whatever they point at
  CHECK(counts.held == 0);
  CHECK(counts.undated == 0);
  CHECK(counts.unreadable == 0);
  REQUIRE(counts.oldest_due.has_value());
  CHECK(*counts.oldest_due == media.now - days{30});

  const auto buckets = store->count_by_anchor(selection, {media.cutoff, media.now});
  CHECK(buckets == std::vector<std::int64_t>{2, 2, 1});
}

TEST_CASE("files datastore: a stop (SIGTERM) ends the census, not the batches") {
  MediaTree media;
  auto store =
      adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("uploads/tmp/**");
  const std::atomic<bool> stop{true};
  adapters::Selection selection{rule, media.cutoff, media.now, {}, nullptr, &stop};
  const std::string before = tree(media.root);

  CHECK(error_of([&] { store->count(selection); }) == "stopped by signal during the census");
  CHECK_THROWS_AS(store->count_by_anchor(selection, {media.cutoff}), adapters::CensusStopped);
  CHECK(tree(media.root) == before);
  CHECK(run_batches(*store, selection, 10).rows == std::vector<std::int64_t>{2});
}

TEST_CASE("files datastore: the census and the batches' walk report progress at every entry") {
  MediaTree media;
  auto store =
      adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("uploads/tmp/**");
  int calls = 0;
  const std::function<void()> progress = [&calls] { ++calls; };
  adapters::Selection selection{rule, media.cutoff, media.now, {}, nullptr, nullptr, &progress};

  // Every entry read, matching or not: uploads/, its tmp/ and keep/ (not entered), tmp's nine
  // entries, sub/deeper/ and old2.bin. A long stretch the glob passes over still shows progress.
  store->count(selection);
  CHECK(calls == 14);
  calls = 0;
  CHECK(run_batches(*store, selection, 10).rows == std::vector<std::int64_t>{2});
  CHECK(calls == 14);
}

TEST_CASE("files datastore: batches remove exactly the due files") {
  MediaTree media;
  const std::string before = tree(media.root);
  auto store =
      adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("uploads/tmp/**");
  const adapters::Selection selection{rule, media.cutoff, media.now, {}, nullptr};
  REQUIRE(store->linked_files() != nullptr);

  SUBCASE("one batch") {
    auto batch = store->begin_batch(selection, 100);
    REQUIRE(batch != nullptr);
    CHECK(batch->rows() == 2);
    CHECK(batch->refusals().size() == 2);  // the old symlinks, for the audit log
    CHECK(batch->exhausted());
    CHECK(tree(media.root) == before);  // nothing changes before commit
    batch->commit();
  }
  SUBCASE("batches of one: a refused symlink takes a file's place") {
    const Batches done = run_batches(*store, selection, 1);
    CHECK(done.rows == std::vector<std::int64_t>{1, 1});
    CHECK(done.refused == k_old_links);
  }
  SUBCASE("an uncommitted batch changes nothing and the next one finds the same files") {
    {
      auto batch = store->begin_batch(selection, 3);
      REQUIRE(batch != nullptr);
      CHECK(batch->rows() + static_cast<std::int64_t>(batch->refusals().size()) == 3);
      CHECK_FALSE(batch->exhausted());
    }
    CHECK(tree(media.root) == before);
    const Batches done = run_batches(*store, selection, 1);
    CHECK(done.rows == std::vector<std::int64_t>{1, 1});
    CHECK(done.refused == k_old_links);
  }

  CHECK(tree(media.root) ==
        "uploads/ uploads/keep/ uploads/keep/old.bin uploads/tmp/ uploads/tmp/dir_link "
        "uploads/tmp/edge.bin uploads/tmp/fifo uploads/tmp/future.bin uploads/tmp/inner_link "
        "uploads/tmp/outer_link uploads/tmp/young.bin");
  CHECK(fs::exists(media.dir / "outside.bin"));
  CHECK(fs::is_symlink(media.root / "uploads/tmp/outer_link"));
  // The next run removes nothing and refuses the old symlinks again.
  const Batches again = run_batches(*store, selection, 100);
  CHECK(again.rows.empty());
  CHECK(again.refused == k_old_links);
  CHECK(store->count(selection).due == 0);
  CHECK(store->count(selection).refused == 2);
}

TEST_CASE("files datastore: directories emptied below the glob's fixed part go, that part stays") {
  TempDir dir;
  const fs::path root = dir / "root";
  const Instant now = now_utc();
  write_file(root / "uploads/tmp/sub/deeper/old.bin", now - days{30});
  write_file(root / "uploads/tmp/old.bin", now - days{30});
  auto store = adapters::open_datastore(files_config(root), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("uploads/tmp/**");
  const adapters::Selection selection{rule, now - days{7}, now, {}, nullptr};
  CHECK(run_batches(*store, selection, 100).rows == std::vector<std::int64_t>{2});
  // uploads/tmp is where the rule looks (the application's spool), not something it matched.
  CHECK(tree(root) == "uploads/ uploads/tmp/");
}

TEST_CASE("files datastore: a file written after its batch found it due is left in place") {
  TempDir dir;
  const fs::path root = dir / "root";
  const Instant now = now_utc();
  write_file(root / "spool/a.bin", now - days{30});
  write_file(root / "spool/b.bin", now - days{30});
  auto store = adapters::open_datastore(files_config(root), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("spool/*");
  const adapters::Selection selection{rule, now - days{7}, now, {}, nullptr};
  auto batch = store->begin_batch(selection, 100);
  REQUIRE(batch != nullptr);
  CHECK(batch->rows() == 2);
  set_mtime(root / "spool/b.bin", now);  // the application writes it again meanwhile
  batch->commit();
  CHECK(batch->vanished() == 1);
  CHECK(batch->files_removed() == 1);
  CHECK(tree(root) == "spool/ spool/b.bin");
}

TEST_CASE("files datastore: a tree with one file per directory is removed in bounded batches") {
  TempDir dir;
  const Instant now = now_utc();
  for (int i = 0; i < 300; ++i)
    write_file(dir / "many" / ("d" + std::to_string(i)) / "f.bin", now - days{30});
  write_file(dir / "many/young/f.bin", now);
  auto store =
      adapters::open_datastore(files_config(dir.path()), adapters::OpenMode::read_write, {});
  const Rule rule = file_rule("many/**");
  const adapters::Selection selection{rule, now - days{7}, now, {}, nullptr};
  CHECK(store->count(selection).due == 300);

  const std::vector<std::int64_t> rows = run_batches(*store, selection, 1000).rows;
  REQUIRE(rows.size() >= 2);  // the directories one batch may hold open are capped
  std::int64_t sum = 0;
  for (const std::int64_t count : rows)
    sum += count;
  CHECK(sum == 300);
  CHECK(tree(dir.path()) == "many/ many/young/ many/young/f.bin");
}

TEST_CASE("files datastore: read-only and misconfigured") {
  MediaTree media;
  const Rule rule = file_rule("uploads/tmp/**");
  const adapters::Selection selection{rule, media.cutoff, media.now, {}, nullptr};

  SUBCASE("read-only counts but never removes") {
    auto store =
        adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_only, {});
    CHECK(store->count(selection).due == 2);
    CHECK_THROWS_WITH_AS(store->begin_batch(selection, 10), "datastore 'media' is open read-only",
                         std::runtime_error);
    auto resolved = store->linked_files()->resolve("uploads/tmp/old1.bin");
    REQUIRE(resolved.has_value());
    REQUIRE(*resolved != nullptr);
    CHECK_THROWS_AS((*resolved)->remove(), std::runtime_error);
    CHECK(fs::exists(media.root / "uploads/tmp/old1.bin"));
  }
  SUBCASE("a missing root") {
    CHECK_THROWS_WITH_AS(adapters::open_datastore(files_config(media.dir / "missing"),
                                                  adapters::OpenMode::read_only, {}),
                         ("datastore 'media': root " + (media.dir / "missing").string() +
                          " does not exist or is not a directory")
                             .c_str(),
                         std::runtime_error);
  }
  SUBCASE("a rule without a glob") {
    auto store =
        adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_only, {});
    const auto check = store->check_schema(file_rule(""));
    REQUIRE(check.errors.size() == 1);
    CHECK(check.errors[0] == "rule 'media_tmp' has no glob: rules on files datastore 'media' "
                             "select files with glob = \"...\"");
  }
  SUBCASE("linked files resolve through the registry's datastore") {
    auto store =
        adapters::open_datastore(files_config(media.root), adapters::OpenMode::read_write, {});
    auto refused = store->linked_files()->resolve("uploads/tmp/outer_link");
    REQUIRE_FALSE(refused.has_value());
    CHECK(refused.error() == "symlink at 'uploads/tmp/outer_link'");
    auto resolved = store->linked_files()->resolve("uploads/tmp/young.bin");
    REQUIRE(resolved.has_value());
    REQUIRE(*resolved != nullptr);
    CHECK((*resolved)->remove());
    CHECK_FALSE(fs::exists(media.root / "uploads/tmp/young.bin"));
  }
}
