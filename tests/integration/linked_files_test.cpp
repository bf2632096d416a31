// The seed rule "videos rejected in review are deleted 15 days after the review"
// (rules/rejected_videos.toml, loaded as shipped), and file rules on a files datastore, end to
// end: a real SQLite datastore, a real media tree beside files outside it, through
// Engine::run_once and through the real binary (once, report, audit log, audit verify).
#include "adapters/datastore.hpp"
#include "daemon/config.hpp"
#include "daemon/engine.hpp"
#include "daemon/report.hpp"
#include "daemon/sqlite_state_store.hpp"
#include "daemon/state_store.hpp"
#include "daemon/timestamp.hpp"
#include "tests/support/files.hpp"
#include "tests/support/outcomes.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/table_ids.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/text.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <spdlog/fmt/fmt.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <pwd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace retentiond;
using retentiond::test::run_retentiond;
using retentiond::test::RunResult;
using retentiond::test::TempDir;
namespace fs = std::filesystem;
using retentiond::test::contains;
using retentiond::test::file_bytes;
using retentiond::test::lines_of;
using retentiond::test::outcome_of;
using retentiond::test::tree_set;

namespace {

constexpr std::int64_t k_day_s = 86'400;
constexpr const char* k_rule = "rejected_videos";

// Sets a path's mtime (and atime) without following a symlink.
void set_mtime(const fs::path& path, std::int64_t unix_seconds) {
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(unix_seconds);
  times[0].tv_nsec = 0;
  times[1] = times[0];
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

void write_file(const fs::path& path, const std::string& bytes,
                std::optional<std::int64_t> mtime = std::nullopt) {
  fs::create_directories(path.parent_path());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    REQUIRE(out.good());
  }
  if (mtime)
    set_mtime(path, *mtime);
}

// Every entry beneath `dir` (and `dir` itself as "."), never following a symlink: its type,
// bytes or link target, and mtime to the nanosecond. Equal snapshots mean nothing there was
// written, created, removed or touched.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> entries;
  const auto describe = [](const fs::path& path) {
    struct stat status {};
    REQUIRE(::lstat(path.c_str(), &status) == 0);
    std::string text = std::to_string(status.st_mtim.tv_sec) + "." +
                       std::to_string(status.st_mtim.tv_nsec) + " mode " +
                       std::to_string(status.st_mode) + " size " + std::to_string(status.st_size);
    if (S_ISREG(status.st_mode))
      text += " bytes " + file_bytes(path);
    else if (S_ISLNK(status.st_mode))
      text += " -> " + fs::read_symlink(path).string();
    return text;
  };
  entries["."] = describe(dir);
  for (const auto& entry : fs::recursive_directory_iterator(dir))
    entries[entry.path().lexically_relative(dir).string()] = describe(entry.path());
  return entries;
}

// Reads JSON through SQLite's JSON functions, so the tests need no JSON library.
class Json {
public:
  explicit Json(std::string text) : m_db(":memory:"), m_text(std::move(text)) {}

  bool valid() { return eval("SELECT json_valid(?1)").integer == 1; }
  // json_type at `path` ("integer", "text", "null", "object", ...), or "missing".
  std::string type(const std::string& path) {
    const Value value = eval("SELECT json_type(?1, ?2)", path);
    return value.null ? "missing" : value.text;
  }
  // The text at `path`; objects and arrays come back as JSON text.
  std::string text(const std::string& path) {
    return eval("SELECT json_extract(?1, ?2)", path).text;
  }
  std::int64_t integer(const std::string& path) {
    return eval("SELECT json_extract(?1, ?2)", path).integer;
  }
  std::int64_t length(const std::string& path) {
    return eval("SELECT json_array_length(?1, ?2)", path).integer;
  }

private:
  struct Value {
    bool null = true;
    std::string text;
    std::int64_t integer = 0;
  };
  Value eval(const std::string& sql, const std::string& path = "$") {
    SQLite::Statement statement(m_db, sql);
    statement.bind(1, m_text);
    if (contains(sql, "?2"))
      statement.bind(2, path);
    REQUIRE(statement.executeStep());
    const SQLite::Column column = statement.getColumn(0);
    Value value;
    value.null = column.isNull();
    if (!value.null) {
      value.text = column.getString();
      value.integer = column.getInt64();
    }
    return value;
  }

  SQLite::Database m_db;
  std::string m_text;
};

// One audit entry, read either from the StateStore or from `audit log --format json`.
struct Audited {
  std::int64_t seq = 0;
  std::string kind;
  std::string rule;
  std::int64_t rows = 0;
  std::string detail;  // JSON object
};

std::vector<Audited> audited_from(const StateStore& state) {
  std::vector<Audited> entries;
  for (const AuditEntry& entry : state.audit_entries())
    entries.push_back({entry.seq, entry.kind, entry.rule, entry.rows, entry.detail});
  return entries;
}

std::vector<Audited> audited_from(const std::string& json_lines) {
  std::vector<Audited> entries;
  for (const std::string& line : lines_of(json_lines)) {
    Json json(line);
    REQUIRE(json.valid());
    Audited entry;
    entry.seq = json.integer("$.seq");
    entry.kind = json.text("$.kind");
    entry.rule = json.type("$.rule") == "text" ? json.text("$.rule") : "";
    entry.rows = json.integer("$.rows");
    REQUIRE(json.type("$.detail") == "object");
    entry.detail = json.text("$.detail");
    entries.push_back(entry);
  }
  return entries;
}

// What the audit log says of one rule.
struct AuditSummary {
  std::int64_t batch_rows = 0;                   // sum of `rows` over `batch` entries
  int batches = 0;                               // `batch` entries
  int refused_entries = 0;                       // `refused` entries naming linked files
  int rule_refusals = 0;                         // `refused` entries refusing the whole rule
  std::map<std::int64_t, std::string> refusals;  // rowid -> reason, over every refused entry
  std::set<std::string> files_refused;           // "file PATH" records (file rules)
  int rowids_named_twice = 0;                    // a rowid in more than one refusal
  int refused_with_rows = 0;                     // refused entries with rows != 0
  int rule_done = 0;
  int errors = 0;
};

AuditSummary summarize(const std::vector<Audited>& entries, const std::string& rule) {
  AuditSummary summary;
  for (const Audited& entry : entries) {
    if (entry.rule != rule)
      continue;
    Json detail(entry.detail);
    REQUIRE(detail.valid());
    if (entry.kind == "batch") {
      summary.batch_rows += entry.rows;
      ++summary.batches;
    } else if (entry.kind == "rule_done") {
      ++summary.rule_done;
    } else if (entry.kind == "error") {
      ++summary.errors;
    } else if (entry.kind == "refused") {
      summary.refused_with_rows += entry.rows != 0 ? 1 : 0;
      if (detail.type("$.refusals") != "array") {
        ++summary.rule_refusals;
        continue;
      }
      ++summary.refused_entries;
      const std::int64_t count = detail.length("$.refusals");
      CHECK(count > 0);
      for (std::int64_t i = 0; i < count; ++i) {
        const std::string at = "$.refusals[" + std::to_string(i) + "]";
        const std::string record = detail.text(at + ".record");
        if (record.starts_with("file ")) {
          summary.files_refused.insert(record);
          continue;
        }
        REQUIRE(record.starts_with("rowid "));
        const std::int64_t rowid = std::stoll(record.substr(6));
        if (summary.refusals.contains(rowid))
          ++summary.rowids_named_twice;
        summary.refusals[rowid] = detail.text(at + ".reason");
      }
    }
  }
  return summary;
}

// The config's rule files: the seed rule as shipped.
const std::string k_seed_rule = std::string{RETENTIOND_SOURCE_DIR} + "/rules/rejected_videos.toml";

// A temporary installation: retentiond.toml, app.db (datastore "app"), media/ (datastore
// "media", a files datastore), outside/ (files beside the root that must never be touched) and,
// once something writes it, state.db.
class MediaSite {
public:
  MediaSite() {
    fs::create_directories(root());
    fs::create_directories(outside());
    SQLite::Database db(app(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec("CREATE TABLE videos (id INTEGER PRIMARY KEY, account_id INTEGER NOT NULL, "
            "title TEXT NOT NULL, storage_path TEXT, status TEXT NOT NULL, uploaded_at TEXT "
            "NOT NULL, reviewed_at TEXT)");
    db.exec("CREATE INDEX videos_reviewed_at ON videos (reviewed_at)");
    db.exec("CREATE INDEX videos_account_id ON videos (account_id)");
  }

  const fs::path& dir() const { return m_dir.path(); }
  fs::path root() const { return dir() / "media"; }
  fs::path outside() const { return dir() / "outside"; }
  fs::path app() const { return dir() / "app.db"; }
  fs::path state() const { return dir() / "state.db"; }
  fs::path config() const { return dir() / "retentiond.toml"; }

  // Writes retentiond.toml: the seed rule file (when `seed_rule`) and inline `extra` rules.
  void configure(bool seed_rule, const std::string& extra = "") const {
    std::ofstream out(config(), std::ios::binary | std::ios::trunc);
    out << "[state]\npath = \"state.db\"\n\n";
    if (seed_rule)
      out << "[daemon]\nrules = [\"" << k_seed_rule << "\"]\n\n";
    out << "[datastores.app]\ntype = \"sqlite\"\npath = \"app.db\"\n\n"
           "[datastores.media]\ntype = \"files\"\nroot = \"media\"\n\n"
        << extra;
    REQUIRE(out.good());
  }
  std::shared_ptr<const Config> load() const { return load_config(config()); }

  RunResult cli(std::vector<std::string> args) const {
    args.insert(args.begin(), {"-c", config().string()});
    return run_retentiond(args);
  }

  // A videos row; `reviewed_days_ago` empty = NULL, `path` empty = NULL.
  void add_video(std::int64_t id, const std::string& status,
                 std::optional<std::int64_t> reviewed_days_ago, std::optional<std::string> path,
                 std::int64_t account = 1) const {
    SQLite::Database db(app(), SQLite::OPEN_READWRITE);
    SQLite::Statement insert(db, "INSERT INTO videos VALUES (?, ?, ?, ?, ?, ?, ?)");
    insert.bind(1, static_cast<int64_t>(id));
    insert.bind(2, static_cast<int64_t>(account));
    insert.bind(3, "video " + std::to_string(id));
    if (path)
      insert.bind(4, *path);
    else
      insert.bind(4);
    insert.bind(5, status);
    insert.bind(6, iso_days_ago(100));
    if (reviewed_days_ago)
      insert.bind(7, iso_days_ago(*reviewed_days_ago));
    else
      insert.bind(7);
    insert.exec();
  }

  std::string iso_days_ago(std::int64_t days) const {
    return format_iso8601(from_unix_seconds(m_now - days * k_day_s));
  }
  std::int64_t now_s() const { return m_now; }

  std::vector<std::int64_t> ids() const { return retentiond::test::table_ids(app(), "videos"); }

private:
  TempDir m_dir;
  std::int64_t m_now = to_unix_seconds(now_utc());
};

std::vector<std::int64_t> range(std::int64_t from, std::int64_t to) {
  std::vector<std::int64_t> values;
  for (std::int64_t i = from; i <= to; ++i)
    values.push_back(i);
  return values;
}

std::vector<std::int64_t> concat(std::vector<std::int64_t> a, const std::vector<std::int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// The videos scenario (SPEC: rejected videos, 15 days after the review, with their file).
//
// Due, deleted with their file:      1 (20 days, videos/2024/r1.mp4), 7 (25 days, nest/x/y/
//   r7.mp4, alone in its tree), 8 (16 days, shared/one/r8.mp4, beside shared/two/keep.txt).
// Due, deleted, no file to remove:   2 (30 days, file already missing), 3 (40 days, NULL
//   path), 16 (18 days, its directory is missing too), 17 (22 days, a path beneath a regular
//   file: videos/2024/a1.mp4/inner.mp4, which names nothing).
// Kept, not due:                     4 approved (100 days), 5 pending (NULL reviewed_at),
//   6 rejected 3 days ago, 9 rejected with NULL reviewed_at, 100-119 approved (50 days).
// Kept, refused (rejected, 60 days): 10 ../outside/secret.txt, 11 an absolute path to
//   outside/abs.txt, 12 videos/evil.mp4 (a symlink to outside/target.mp4), 13 linkdir/clip.mp4
//   (linkdir a symlink to outside/dir), 14 videos/../videos/2024/a2.mp4 (a '..' that stays
//   inside), 15 videos/2024 (a directory).
struct VideosScenario {
  static constexpr std::int64_t due_rows = 7;
  static constexpr std::int64_t due_files = 3;
  static constexpr std::int64_t hostile_rows = 6;

  std::set<std::string> tree_before;
  std::map<std::string, std::string> outside_before;

  static std::vector<std::int64_t> surviving() {
    return concat({4, 5, 6, 9, 10, 11, 12, 13, 14, 15}, range(100, 119));
  }
  // What each refused rowid's reason must mention.
  static std::map<std::int64_t, std::string> refusal_reasons() {
    return {{10, ".."},
            {11, "absolute"},
            {12, "symlink at 'videos/evil.mp4'"},
            {13, "symlink at 'linkdir'"},
            {14, ".."},
            {15, "regular file"}};
  }
  std::set<std::string> tree_after() const {
    std::set<std::string> expected = tree_before;
    for (const char* gone : {"videos/2024/r1.mp4", "nest/", "nest/x/", "nest/x/y/",
                             "nest/x/y/r7.mp4", "shared/one/", "shared/one/r8.mp4"})
      REQUIRE(expected.erase(gone) == 1);
    return expected;
  }

  void build(const MediaSite& site) {
    const fs::path media = site.root();
    const fs::path outside = site.outside();
    const std::int64_t old = site.now_s() - 100 * k_day_s;
    write_file(outside / "secret.txt", "outside secret\n", old);
    write_file(outside / "abs.txt", "outside, named by an absolute path\n", old);
    write_file(outside / "target.mp4", "outside target of a symlink\n", old);
    write_file(outside / "dir" / "clip.mp4", "outside, through a symlinked directory\n", old);

    write_file(media / "videos/2024/r1.mp4", "rejected video 1\n");
    write_file(media / "videos/2024/a1.mp4", "approved video 4\n");
    write_file(media / "videos/2024/a2.mp4", "named through '..'\n");
    write_file(media / "videos/pending/p1.mp4", "pending video 5\n");
    write_file(media / "videos/recent/r6.mp4", "recently rejected video 6\n");
    write_file(media / "videos/undated.mp4", "rejected, never dated, video 9\n");
    write_file(media / "nest/x/y/r7.mp4", "rejected video 7\n");
    write_file(media / "shared/one/r8.mp4", "rejected video 8\n");
    write_file(media / "shared/two/keep.txt", "not linked to any row\n");
    fs::create_directories(media / "empty");
    fs::create_symlink(outside / "target.mp4", media / "videos/evil.mp4");
    fs::create_directory_symlink(outside / "dir", media / "linkdir");
    for (std::int64_t id = 100; id <= 119; ++id)
      write_file(media / ("videos/approved/" + std::to_string(id) + ".mp4"),
                 "approved video " + std::to_string(id) + "\n");

    site.add_video(1, "rejected", 20, "videos/2024/r1.mp4");
    site.add_video(2, "rejected", 30, "videos/2024/r2.mp4");
    site.add_video(3, "rejected", 40, std::nullopt);
    site.add_video(4, "approved", 100, "videos/2024/a1.mp4");
    site.add_video(5, "pending", std::nullopt, "videos/pending/p1.mp4");
    site.add_video(6, "rejected", 3, "videos/recent/r6.mp4");
    site.add_video(7, "rejected", 25, "nest/x/y/r7.mp4");
    site.add_video(8, "rejected", 16, "shared/one/r8.mp4");
    site.add_video(9, "rejected", std::nullopt, "videos/undated.mp4");
    site.add_video(10, "rejected", 60, "../outside/secret.txt");
    site.add_video(11, "rejected", 60, (outside / "abs.txt").string());
    site.add_video(12, "rejected", 60, "videos/evil.mp4");
    site.add_video(13, "rejected", 60, "linkdir/clip.mp4");
    site.add_video(14, "rejected", 60, "videos/../videos/2024/a2.mp4");
    site.add_video(15, "rejected", 60, "videos/2024");
    site.add_video(16, "rejected", 18, "videos/missing/r16.mp4");
    site.add_video(17, "rejected", 22, "videos/2024/a1.mp4/inner.mp4");
    for (std::int64_t id = 100; id <= 119; ++id)
      site.add_video(id, "approved", 50, "videos/approved/" + std::to_string(id) + ".mp4");

    tree_before = tree_set(media);
    outside_before = snapshot(outside);
  }

  // Nothing outside the root touched, the symlinks still in place.
  void check_outside_untouched(const MediaSite& site) const {
    CHECK(snapshot(site.outside()) == outside_before);
    CHECK(fs::is_symlink(site.root() / "videos/evil.mp4"));
    CHECK(fs::read_symlink(site.root() / "videos/evil.mp4") == site.outside() / "target.mp4");
    CHECK(fs::is_symlink(site.root() / "linkdir"));
    CHECK(fs::read_symlink(site.root() / "linkdir") == site.outside() / "dir");
  }

  void check_after_run(const MediaSite& site) const {
    CHECK(site.ids() == surviving());
    CHECK(tree_set(site.root()) == tree_after());
    CHECK(fs::is_directory(site.root() / "empty"));  // not emptied by retentiond: stays
    CHECK(file_bytes(site.root() / "videos/2024/a2.mp4") == "named through '..'\n");
    CHECK(file_bytes(site.root() / "videos/2024/a1.mp4") == "approved video 4\n");
    check_outside_untouched(site);
  }

  static void check_audit(const AuditSummary& audit, int runs) {
    CHECK(audit.batch_rows == due_rows + due_files);
    CHECK(audit.errors == 0);
    CHECK(audit.rule_refusals == 0);
    CHECK(audit.refused_with_rows == 0);
    CHECK(audit.rule_done == runs);
    // Every run refuses the hostile rows again: one entry per batch (the scenario fits one
    // batch), each naming every hostile rowid once with its reason.
    CHECK(audit.refused_entries == runs);
    CHECK(audit.rowids_named_twice == (runs - 1) * hostile_rows);
    const auto expected = refusal_reasons();
    REQUIRE(audit.refusals.size() == expected.size());
    for (const auto& [rowid, reason] : audit.refusals) {
      CAPTURE(rowid);
      CAPTURE(reason);
      REQUIRE(expected.contains(rowid));
      CHECK(contains(reason, expected.at(rowid)));
    }
  }
};

RunSummary run_engine(const std::shared_ptr<const Config>& config, StateStore& state,
                      RunOptions options = {}) {
  const std::atomic<bool> stop{false};
  Engine engine(config, &state, adapters::AdapterSecrets{}, stop);
  return engine.run_once(options);
}

Report report_now(const Config& config, const fs::path& state_path) {
  const SqliteStateStore state(state_path, StateStore::Mode::read_only);
  return build_report(config, state, {}, now_utc(), {});
}

const RuleReport& report_of(const Report& report, const std::string& rule) {
  for (const RuleReport& entry : report.rules)
    if (entry.rule->id == rule)
      return entry;
  FAIL("no report for rule " << rule);
  throw std::logic_error("unreachable");
}

// The JSONPath of a rule's entry in `report --format json`.
std::string rule_path(Json& report, const std::string& rule) {
  for (std::int64_t i = 0; i < report.length("$.rules"); ++i) {
    const std::string path = "$.rules[" + std::to_string(i) + "]";
    if (report.text(path + ".id") == rule)
      return path;
  }
  FAIL("no report entry for rule " << rule);
  return "";
}

// The file rule of SPEC 3.1 on the media datastore.
const std::string k_tmp_rule = R"toml([rules.tmp_files]
description = "Temporary uploads are deleted 7 days after their last change"
policy = "test policy, temporary files"
datastore = "media"
glob = "tmp/**"
retain = "7 days"
action = "delete"
max_fraction = 1.0
)toml";

// Files beneath media/ for tmp_files, aged by mtime.
// Due: tmp/old.bin (10 days), tmp/edge-old.bin (7 days + 1 minute), tmp/sub/old2.bin (30 days),
//   tmp/gone/deeper/old3.bin (20 days, alone in tmp/gone).
// Kept: tmp/edge-young.bin (7 days - 1 minute), tmp/young.bin (1 hour), tmp/sub/young2.bin
//   (6 days), tmp/future.bin (in 5 days); keep/old.txt and tmpfoo/old.bin (100 days, outside
//   the glob).
// Refused (symlinks matching the glob, 100 days old themselves): tmp/old-link.bin ->
//   outside/target.mp4, tmp/linkdir -> outside/dir (whose clip.mp4 is 100 days old).
// Not counted: keep/old-link -> outside/secret.txt (outside the glob).
struct TmpScenario {
  static constexpr std::int64_t due = 4;
  static constexpr std::int64_t refused = 2;
  static constexpr std::int64_t total = 8;
  // The due symlinks the glob matches: never followed, never removed, refused and audited.
  static std::set<std::string> refused_links() {
    return {"file tmp/linkdir", "file tmp/old-link.bin"};
  }

  std::set<std::string> tree_before;
  std::map<std::string, std::string> outside_before;

  std::set<std::string> tree_after() const {
    std::set<std::string> expected = tree_before;
    for (const char* gone : {"tmp/old.bin", "tmp/edge-old.bin", "tmp/sub/old2.bin", "tmp/gone/",
                             "tmp/gone/deeper/", "tmp/gone/deeper/old3.bin"})
      REQUIRE(expected.erase(gone) == 1);
    return expected;
  }

  void build(const MediaSite& site) {
    const fs::path media = site.root();
    const fs::path outside = site.outside();
    const std::int64_t now = site.now_s();
    const std::int64_t old = now - 100 * k_day_s;
    if (!fs::exists(outside / "secret.txt"))
      write_file(outside / "secret.txt", "outside secret\n", old);
    if (!fs::exists(outside / "target.mp4"))
      write_file(outside / "target.mp4", "outside target of a symlink\n", old);
    if (!fs::exists(outside / "dir" / "clip.mp4"))
      write_file(outside / "dir" / "clip.mp4", "outside, through a symlinked directory\n", old);

    write_file(media / "tmp/old.bin", "old", now - 10 * k_day_s);
    write_file(media / "tmp/edge-old.bin", "edge old", now - 7 * k_day_s - 60);
    write_file(media / "tmp/edge-young.bin", "edge young", now - 7 * k_day_s + 60);
    write_file(media / "tmp/young.bin", "young", now - 3600);
    write_file(media / "tmp/sub/old2.bin", "old 2", now - 30 * k_day_s);
    write_file(media / "tmp/sub/young2.bin", "young 2", now - 6 * k_day_s);
    write_file(media / "tmp/gone/deeper/old3.bin", "old 3", now - 20 * k_day_s);
    write_file(media / "tmp/future.bin", "future", now + 5 * k_day_s);
    write_file(media / "keep/old.txt", "outside the glob", old);
    write_file(media / "tmpfoo/old.bin", "outside the glob too", old);
    fs::create_symlink(outside / "target.mp4", media / "tmp/old-link.bin");
    set_mtime(media / "tmp/old-link.bin", old);
    fs::create_directory_symlink(outside / "dir", media / "tmp/linkdir");
    set_mtime(media / "tmp/linkdir", old);
    fs::create_symlink(outside / "secret.txt", media / "keep/old-link");
    set_mtime(media / "keep/old-link", old);

    tree_before = tree_set(media);
    outside_before = snapshot(outside);
  }

  void check_after_run(const MediaSite& site) const {
    CHECK(tree_set(site.root()) == tree_after());
    CHECK(snapshot(site.outside()) == outside_before);
    CHECK(fs::read_symlink(site.root() / "tmp/old-link.bin") == site.outside() / "target.mp4");
    CHECK(fs::read_symlink(site.root() / "tmp/linkdir") == site.outside() / "dir");
    CHECK(fs::read_symlink(site.root() / "keep/old-link") == site.outside() / "secret.txt");
  }
};

}  // namespace

TEST_CASE("linked files, engine: rejected videos go with their file after 15 days, the rest "
          "stays, hostile paths are refused and audited") {
  MediaSite site;
  VideosScenario scenario;
  scenario.build(site);
  site.configure(true);
  const auto config = site.load();
  REQUIRE(config->rules.size() == 1);
  REQUIRE(config->rules.front().files.has_value());

  // Before: the report counts what once will delete, and the hostile rows apart.
  const Report before = report_now(*config, site.state());
  const RuleReport& planned = report_of(before, k_rule);
  // Rows refused now stay refused: the status says so while others are still due.
  CHECK(planned.status == "refused");
  CHECK(planned.message == "6 due rows are refused and kept: an unsafe linked or listed file path "
                           "(see retentiond audit log --rule rejected_videos)");
  CHECK(planned.counts.due == VideosScenario::due_rows);
  CHECK(refused_rows(planned.counts) == VideosScenario::hostile_rows);
  CHECK(planned.counts.undated == 1);  // 9; 5 is pending, not matched
  CHECK(planned.counts.total == 15);   // every rejected row
  CHECK(planned.counts.held == 0);
  CHECK_FALSE(fs::exists(site.state()));

  SqliteStateStore state(site.state(), StateStore::Mode::read_write);
  const RunSummary summary = run_engine(config, state);
  CHECK_FALSE(summary.any_failed());
  const RuleOutcome& outcome = outcome_of(summary, k_rule);
  CHECK(outcome.result == "ok");
  CHECK(outcome.message == "");
  CHECK(outcome.rows == VideosScenario::due_rows + VideosScenario::due_files);
  CHECK(outcome.files == VideosScenario::due_files);
  CHECK(outcome.children == 0);
  CHECK(outcome.refused == VideosScenario::hostile_rows);
  CHECK(outcome.counts.due == VideosScenario::due_rows);

  scenario.check_after_run(site);
  VideosScenario::check_audit(summarize(audited_from(state), k_rule), 1);
  CHECK(state.verify_audit().ok);

  // After: nothing is due, the hostile rows are still refused, the run is recorded.
  const Report after = report_now(*config, site.state());
  const RuleReport& done = report_of(after, k_rule);
  CHECK(done.status == "refused");
  CHECK(done.counts.due == 0);
  CHECK(refused_rows(done.counts) == VideosScenario::hostile_rows);
  REQUIRE(done.last_runs.size() == 1);
  CHECK(done.last_runs.front().result == "ok");
  CHECK(done.last_runs.front().rows == VideosScenario::due_rows + VideosScenario::due_files);

  SUBCASE("a second run deletes nothing more and refuses the hostile rows again") {
    const RunSummary again = run_engine(config, state);
    CHECK_FALSE(again.any_failed());
    CHECK(outcome_of(again, k_rule).result == "ok");
    CHECK(outcome_of(again, k_rule).rows == 0);
    CHECK(outcome_of(again, k_rule).refused == VideosScenario::hostile_rows);
    scenario.check_after_run(site);
    VideosScenario::check_audit(summarize(audited_from(state), k_rule), 2);
    CHECK(state.verify_audit().ok);
  }
}

TEST_CASE("linked files, cli: once, report --format json, audit log --format json and audit "
          "verify on the seed rule") {
  MediaSite site;
  VideosScenario scenario;
  scenario.build(site);
  site.configure(true);

  const RunResult planned = site.cli({"report", "--format", "json"});
  CHECK(planned.exit_code == 0);
  Json before(planned.out);
  REQUIRE(before.valid());
  const std::string at = rule_path(before, k_rule);
  CHECK(before.text(at + ".status") == "refused");
  CHECK(before.text(at + ".datastore") == "app");
  CHECK(before.text(at + ".target") == "videos");
  CHECK(before.integer(at + ".due") == VideosScenario::due_rows);
  CHECK(before.integer(at + ".refused") == VideosScenario::hostile_rows);
  CHECK(before.integer(at + ".undated") == 1);
  CHECK(before.integer(at + ".total") == 15);
  CHECK_FALSE(fs::exists(site.state()));

  const RunResult once = site.cli({"once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 0);
  CHECK(lines_of(once.out) ==
        std::vector<std::string>{fmt::format(
            "rejected_videos: ok ({} rows, {} linked files; {} refused)", VideosScenario::due_rows,
            VideosScenario::due_files, VideosScenario::hostile_rows)});
  // The log tells rows and files apart.
  CHECK(contains(once.err, fmt::format(" info rule rejected_videos: {} rows deleted, 0 dependent "
                                       "rows deleted, {} linked files removed (ok), cutoff ",
                                       VideosScenario::due_rows, VideosScenario::due_files)));
  scenario.check_after_run(site);

  const RunResult log = site.cli({"audit", "log", "--format", "json"});
  CHECK(log.exit_code == 0);
  const std::vector<Audited> entries = audited_from(log.out);
  VideosScenario::check_audit(summarize(entries, k_rule), 1);
  // The refusal is audited before the batch it belongs to.
  std::int64_t refused_seq = 0;
  std::int64_t batch_seq = 0;
  for (const Audited& entry : entries) {
    if (entry.kind == "refused")
      refused_seq = entry.seq;
    if (entry.kind == "batch")
      batch_seq = entry.seq;
  }
  CHECK(refused_seq > 0);
  CHECK(batch_seq > refused_seq);

  const RunResult verify = site.cli({"audit", "verify"});
  CHECK(verify.exit_code == 0);
  CHECK(contains(verify.out, "audit log verified: "));

  const RunResult done = site.cli({"report", "--format", "json"});
  CHECK(done.exit_code == 0);
  Json after(done.out);
  REQUIRE(after.valid());
  CHECK(after.text(at + ".id") == k_rule);
  CHECK(after.text(at + ".status") == "refused");
  CHECK(after.integer(at + ".due") == 0);
  CHECK(after.integer(at + ".refused") == VideosScenario::hostile_rows);
  CHECK(after.integer("$.audit.verified") == 1);
  REQUIRE(after.length(at + ".last_runs") == 1);
  CHECK(after.text(at + ".last_runs[0].result") == "ok");
  CHECK(after.integer(at + ".last_runs[0].rows") ==
        VideosScenario::due_rows + VideosScenario::due_files);
}

// A refused row is not due (it stays), so it must not stand for the oldest due row either.
TEST_CASE("linked files: the report's oldest_due and worst overshoot describe due rows, not "
          "refused ones") {
  MediaSite site;
  VideosScenario scenario;
  scenario.build(site);
  site.configure(true);

  Json before(site.cli({"report", "--format", "json"}).out);
  REQUIRE(before.valid());
  const std::string at = rule_path(before, k_rule);
  REQUIRE(before.type(at + ".oldest_due") == "text");
  // Row 3, reviewed 40 days ago, is the oldest row the run deletes; 10-15 (60 days) stay.
  CHECK(parse_iso8601(before.text(at + ".oldest_due")) == parse_iso8601(site.iso_days_ago(40)));
  CHECK(before.integer(at + ".worst_overshoot_seconds") <= 25 * k_day_s + 60);

  REQUIRE(site.cli({"once"}).exit_code == 0);
  Json after(site.cli({"report", "--format", "json"}).out);
  REQUIRE(after.valid());
  REQUIRE(after.integer(at + ".due") == 0);
  CHECK(after.type(at + ".oldest_due") == "null");
  CHECK(after.type(at + ".worst_overshoot_seconds") == "null");
}

TEST_CASE("linked files: batches of at most 256 rows each audit their own refusals") {
  // 750 rejected, old videos with their files in bulk/; three hostile rows 300 rowids apart,
  // so no batch (capped at 256 rows with linked files) holds two of them.
  MediaSite site;
  const fs::path outside = site.outside();
  write_file(outside / "secret.txt", "outside secret\n");
  write_file(outside / "abs.txt", "outside, named by an absolute path\n");
  write_file(outside / "target.mp4", "outside target of a symlink\n");
  fs::create_directories(site.root() / "videos");
  fs::create_symlink(outside / "target.mp4", site.root() / "videos/evil.mp4");
  const auto outside_before = snapshot(outside);
  const std::map<std::int64_t, std::string> hostile{{100, "../outside/secret.txt"},
                                                    {400, (outside / "abs.txt").string()},
                                                    {700, "videos/evil.mp4"}};
  {
    SQLite::Database db(site.app(), SQLite::OPEN_READWRITE);
    SQLite::Transaction transaction(db);
    SQLite::Statement insert(db, "INSERT INTO videos VALUES (?, 1, 'v', ?, 'rejected', ?, ?)");
    for (std::int64_t id = 1; id <= 750; ++id) {
      const std::string path =
          hostile.contains(id) ? hostile.at(id) : "bulk/" + std::to_string(id) + ".mp4";
      if (!hostile.contains(id))
        write_file(site.root() / path, "video " + std::to_string(id) + "\n");
      insert.bind(1, static_cast<int64_t>(id));
      insert.bind(2, path);
      insert.bind(3, site.iso_days_ago(100));
      insert.bind(4, site.iso_days_ago(20 + id % 50));
      insert.exec();
      insert.reset();
    }
    transaction.commit();
  }
  site.configure(true);
  const auto config = site.load();
  CHECK(report_of(report_now(*config, site.state()), k_rule).counts.due == 747);

  SqliteStateStore state(site.state(), StateStore::Mode::read_write);
  RunOptions options;
  options.confirm_mass = {k_rule};  // 747 of 750 rows is past the seed rule's max_fraction
  const RunSummary summary = run_engine(config, state, options);
  const RuleOutcome& outcome = outcome_of(summary, k_rule);
  CHECK(outcome.result == "ok");
  CHECK(outcome.rows == 747 * 2);
  CHECK(outcome.files == 747);
  CHECK(outcome.refused == 3);
  CHECK(site.ids() == std::vector<std::int64_t>{100, 400, 700});
  // bulk/ emptied and removed; the symlink and its directory stay.
  CHECK(tree_set(site.root()) == std::set<std::string>{"videos/", "videos/evil.mp4"});
  CHECK(snapshot(outside) == outside_before);

  const AuditSummary audit = summarize(audited_from(state), k_rule);
  CHECK(audit.batch_rows == 747 * 2);
  CHECK(audit.batches >= 3);
  CHECK(audit.refused_entries == 3);  // one per batch that met a hostile row
  CHECK(audit.rowids_named_twice == 0);
  CHECK(audit.refused_with_rows == 0);
  REQUIRE(audit.refusals.size() == 3);
  CHECK(contains(audit.refusals.at(100), ".."));
  CHECK(contains(audit.refusals.at(400), "absolute"));
  CHECK(contains(audit.refusals.at(700), "symlink at 'videos/evil.mp4'"));
  // Each refused entry names exactly one row: its batch's.
  for (const Audited& entry : audited_from(state)) {
    if (entry.kind != "refused")
      continue;
    Json detail(entry.detail);
    CHECK(detail.length("$.refusals") == 1);
  }
  CHECK(state.verify_audit().ok);
}

TEST_CASE("linked files: directories left empty are removed up to, not including, the root") {
  MediaSite site;
  write_file(site.root() / "a/b/c/only.mp4", "the only file\n");
  write_file(site.root() / "d/x/one.mp4", "one\n");
  write_file(site.root() / "d/y/sibling.mp4", "a sibling that stays\n");
  write_file(site.root() / "top.mp4", "at the top\n");
  site.add_video(1, "rejected", 30, "a/b/c/only.mp4");
  site.add_video(2, "rejected", 30, "d/x/one.mp4");
  site.add_video(3, "rejected", 30, "top.mp4");
  for (std::int64_t id = 10; id <= 20; ++id)
    site.add_video(id, "approved", 30, std::nullopt);
  site.configure(true);
  const auto config = site.load();

  SUBCASE("through the engine") {
    SqliteStateStore state(site.state(), StateStore::Mode::read_write);
    const RuleOutcome outcome = outcome_of(run_engine(config, state), k_rule);
    CHECK(outcome.result == "ok");
    CHECK(outcome.rows == 6);
    CHECK(outcome.files == 3);
    CHECK(state.verify_audit().ok);
    CHECK(summarize(audited_from(state), k_rule).batch_rows == 6);
  }
  SUBCASE("through the binary") {
    const RunResult once = site.cli({"once"});
    CAPTURE(once.err);
    CHECK(once.exit_code == 0);
    CHECK(contains(once.out, "rejected_videos: ok (3 rows, 3 linked files)"));
    CHECK(site.cli({"audit", "verify"}).exit_code == 0);
  }
  CHECK(site.ids() == range(10, 20));
  CHECK(tree_set(site.root()) == std::set<std::string>{"d/", "d/y/", "d/y/sibling.mp4"});
  CHECK(fs::is_directory(site.root()));

  // The root itself stays when the last file beneath it goes.
  site.add_video(4, "rejected", 30, "d/y/sibling.mp4");
  const RunResult last = site.cli({"once"});
  CAPTURE(last.err);
  CHECK(last.exit_code == 0);
  CHECK(contains(last.out, "rejected_videos: ok (1 rows, 1 linked files)"));
  CHECK(site.ids() == range(10, 20));
  CHECK(tree_set(site.root()).empty());
  CHECK(fs::is_directory(site.root()));
}

TEST_CASE("linked files: a file rule removes old files, keeps young ones and never a symlink") {
  MediaSite site;
  TmpScenario scenario;
  scenario.build(site);
  site.configure(false, k_tmp_rule);
  const auto config = site.load();

  SUBCASE("through the engine") {
    const Report before = report_now(*config, site.state());
    const RuleReport& planned = report_of(before, "tmp_files");
    CHECK(planned.status == "refused");
    CHECK(planned.counts.due == TmpScenario::due);
    CHECK(refused_rows(planned.counts) == TmpScenario::refused);
    CHECK(planned.counts.total == TmpScenario::total);
    CHECK(planned.counts.future == 1);

    SqliteStateStore state(site.state(), StateStore::Mode::read_write);
    const RunSummary summary = run_engine(config, state);
    CHECK_FALSE(summary.any_failed());
    const RuleOutcome& outcome = outcome_of(summary, "tmp_files");
    CHECK(outcome.result == "ok");
    CHECK(outcome.rows == planned.counts.due);
    scenario.check_after_run(site);
    const AuditSummary audit = summarize(audited_from(state), "tmp_files");
    CHECK(audit.batch_rows == TmpScenario::due);
    CHECK(audit.errors == 0);
    CHECK(audit.rule_refusals == 0);
    CHECK(audit.files_refused == TmpScenario::refused_links());
    CHECK(state.verify_audit().ok);

    const Report after = report_now(*config, site.state());
    const RuleReport& done = report_of(after, "tmp_files");
    CHECK(done.status == "refused");
    CHECK(done.counts.due == 0);
    CHECK(refused_rows(done.counts) == TmpScenario::refused);
  }
  SUBCASE("through the binary") {
    Json before(site.cli({"report", "--format", "json"}).out);
    REQUIRE(before.valid());
    const std::string at = rule_path(before, "tmp_files");
    CHECK(before.text(at + ".status") == "refused");
    CHECK(before.text(at + ".datastore") == "media");
    CHECK(before.text(at + ".target") == "tmp/** (age from mtime)");
    CHECK(before.integer(at + ".due") == TmpScenario::due);
    CHECK(before.integer(at + ".refused") == TmpScenario::refused);
    CHECK(before.integer(at + ".total") == TmpScenario::total);

    const RunResult once = site.cli({"once"});
    CAPTURE(once.err);
    CHECK(once.exit_code == 0);
    CHECK(lines_of(once.out) ==
          std::vector<std::string>{fmt::format("tmp_files: ok ({} rows; {} refused)",
                                               TmpScenario::due, TmpScenario::refused)});
    scenario.check_after_run(site);

    const AuditSummary audit =
        summarize(audited_from(site.cli({"audit", "log", "--format", "json"}).out), "tmp_files");
    CHECK(audit.batch_rows == TmpScenario::due);
    CHECK(audit.files_refused == TmpScenario::refused_links());
    CHECK(audit.refused_with_rows == 0);
    CHECK(site.cli({"audit", "verify"}).exit_code == 0);

    Json after(site.cli({"report", "--format", "json"}).out);
    REQUIRE(after.valid());
    CHECK(after.text(at + ".status") == "refused");
    CHECK(after.integer(at + ".due") == 0);
    CHECK(after.integer(at + ".refused") == TmpScenario::refused);
  }
}

TEST_CASE("linked files: report leaves the datastore, the tree and the state byte-identical") {
  MediaSite site;
  VideosScenario videos;
  videos.build(site);
  TmpScenario tmp;
  tmp.build(site);
  site.configure(true, k_tmp_rule);
  const auto config = site.load();

  // A state with history and a hold, and new due rows and files since that run.
  REQUIRE(site.cli({"once"}).exit_code == 0);
  REQUIRE(site.cli({"hold", "add", "--subject", "42", "--reason", "claim"}).exit_code == 0);
  write_file(site.root() / "videos/2025/r200.mp4", "rejected video 200\n");
  site.add_video(200, "rejected", 17, "videos/2025/r200.mp4");
  site.add_video(201, "rejected", 17, "videos/2025/r201-missing.mp4", 42);  // held
  write_file(site.root() / "tmp/later/old.bin", "old again", site.now_s() - 9 * k_day_s);
  REQUIRE(fs::exists(site.state()));

  const auto everything = snapshot(site.dir());
  const std::string app = file_bytes(site.app());
  const std::string state_bytes = file_bytes(site.state());

  SUBCASE("through the binary, in every format") {
    const RunResult json = site.cli({"report", "--format", "json"});
    CHECK(json.exit_code == 0);
    Json report(json.out);
    REQUIRE(report.valid());
    const std::string at = rule_path(report, k_rule);
    CHECK(report.integer(at + ".due") == 1);
    CHECK(report.integer(at + ".held") == 1);
    CHECK(report.integer(at + ".refused") == VideosScenario::hostile_rows);
    CHECK(report.integer(rule_path(report, "tmp_files") + ".due") == 1);
    for (const char* format : {"md", "csv", "html"})
      CHECK(site.cli({"report", "--format", format}).exit_code == 0);
    CHECK(site.cli({"report", "--rule", k_rule, "--format", "json"}).exit_code == 0);
  }
  SUBCASE("through build_report") {
    const Report report = report_now(*config, site.state());
    CHECK(report.audit.ok);
    CHECK(report_of(report, k_rule).counts.due == 1);
    CHECK(report_of(report, k_rule).counts.held == 1);
    CHECK(report_of(report, "tmp_files").counts.due == 1);
  }

  CHECK(snapshot(site.dir()) == everything);
  CHECK(file_bytes(site.app()) == app);
  CHECK(file_bytes(site.state()) == state_bytes);
}

TEST_CASE("linked files: a held row keeps its file until the hold is released") {
  MediaSite site;
  write_file(site.root() / "videos/held.mp4", "held video\n");
  write_file(site.root() / "videos/free.mp4", "free video\n");
  site.add_video(1, "rejected", 30, "videos/held.mp4", 7);
  site.add_video(2, "rejected", 30, "videos/free.mp4", 8);
  for (std::int64_t id = 10; id <= 20; ++id)
    site.add_video(id, "approved", 30, std::nullopt, 9);
  site.configure(true);

  REQUIRE(site.cli({"hold", "add", "--subject", "7", "--rule", k_rule, "--reason", "claim"})
              .exit_code == 0);
  Json before(site.cli({"report", "--format", "json"}).out);
  REQUIRE(before.valid());
  const std::string at = rule_path(before, k_rule);
  CHECK(before.integer(at + ".due") == 1);
  CHECK(before.integer(at + ".held") == 1);
  CHECK(before.integer(at + ".refused") == 0);

  RunResult once = site.cli({"once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 0);
  CHECK(contains(once.out, "rejected_videos: ok (1 rows, 1 linked files)"));
  CHECK(site.ids() == concat({1}, range(10, 20)));
  CHECK(tree_set(site.root()) == std::set<std::string>{"videos/", "videos/held.mp4"});

  REQUIRE(site.cli({"hold", "release", "1", "--reason", "settled"}).exit_code == 0);
  once = site.cli({"once"});
  CHECK(once.exit_code == 0);
  CHECK(contains(once.out, "rejected_videos: ok (1 rows, 1 linked files)"));
  CHECK(site.ids() == range(10, 20));
  CHECK(tree_set(site.root()).empty());

  const AuditSummary audit =
      summarize(audited_from(site.cli({"audit", "log", "--format", "json"}).out), k_rule);
  CHECK(audit.batch_rows == 4);
  CHECK(audit.refused_entries == 0);
  CHECK(site.cli({"audit", "verify"}).exit_code == 0);
}

namespace {

// A files datastore under `dir` with 60 due files in media/d and the rule "tmp" (glob "d/**");
// returns the config file.
std::string sixty_due_files(const TempDir& dir) {
  std::filesystem::create_directories(dir / "media/d");
  std::filesystem::create_directories(dir / "state");
  const auto old = std::chrono::file_clock::now() - std::chrono::days{3};
  for (int i = 0; i < 60; ++i) {
    const std::filesystem::path file = dir / "media/d" / fmt::format("f{:02}", i);
    std::ofstream(file) << i;
    std::filesystem::last_write_time(file, old);
  }
  std::ofstream(dir / "retentiond.toml") << R"([state]
path = "state/state.db"

[datastores.media]
type = "files"
root = "media"

[rules.tmp]
description = "Temporary files are deleted after a day"
policy = "test policy"
datastore = "media"
glob = "d/**"
retain = "1 day"
action = "delete"
max_fraction = 1.0
)";
  return (dir / "retentiond.toml").string();
}

// Sets or clears a file's immutable attribute (chattr +i); false where the file system or the
// process cannot.
bool set_immutable(const std::filesystem::path& file, bool immutable) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  int flags = 0;
  bool done = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  if (done) {
    flags = immutable ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    done = ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  }
  ::close(fd);
  return done;
}

}  // namespace

TEST_CASE("files: a file its user may not remove is refused and kept, and the others go") {
  // Run as nobody, in a sticky directory, next to a file root owns: only root can set that up.
  if (::geteuid() != 0)
    return;
  const passwd* nobody = ::getpwnam("nobody");
  REQUIRE(nobody != nullptr);
  const TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
  const std::string config = sixty_due_files(dir);
  std::filesystem::permissions(dir / "media/d",
                               std::filesystem::perms::all | std::filesystem::perms::sticky_bit);
  REQUIRE(::chown((dir / "state").c_str(), nobody->pw_uid, nobody->pw_gid) == 0);
  for (int i = 1; i < 60; ++i)
    REQUIRE(::chown((dir / "media/d" / fmt::format("f{:02}", i)).c_str(), nobody->pw_uid,
                    nobody->pw_gid) == 0);
  const RunResult once = retentiond::test::run_program(
      "/usr/bin/setpriv", {"--reuid=nobody", "--regid=nogroup", "--clear-groups", RETENTIOND_BINARY,
                           "-c", config, "once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 0);
  CHECK(contains(once.err, "rule tmp: file d/f00 kept, refused: cannot be removed: its directory "
                           "is sticky and the file belongs to another user"));
  CHECK(contains(once.out, "tmp: ok (59 rows"));
  CHECK(tree_set(dir / "media") == std::set<std::string>{"d/", "d/f00"});
  const AuditSummary audit = summarize(
      audited_from(run_retentiond({"-c", config, "audit", "log", "--format", "json"}).out), "tmp");
  CHECK(audit.batch_rows == 59);
  CHECK(audit.refused_entries == 1);
}

TEST_CASE("files: a name with line breaks or escape sequences cannot forge a log line") {
  const TempDir dir;
  const std::string config = sixty_due_files(dir);
  // A due symlink is refused, and its name goes into the warning that says so.
  const fs::path link = dir / "media/d/x\n2026-01-01T00:00:00.000Z error FAKE\x1b[31m";
  fs::create_symlink("f00", link);
  set_mtime(link, std::time(nullptr) - 3 * k_day_s);
  const RunResult once = run_retentiond({"-c", config, "once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 0);
  CHECK(contains(once.err, "rule tmp: file d/x\\n2026-01-01T00:00:00.000Z error FAKE\\x1b[31m "
                           "kept, refused: symlink at "
                           "'d/x\\n2026-01-01T00:00:00.000Z error FAKE\\x1b[31m'\n"));
  for (const std::string& line : lines_of(once.err))
    CHECK_FALSE(line.starts_with("2026-01-01T00:00:00.000Z error FAKE"));
  CHECK(once.err.find('\x1b') == std::string::npos);
  // The audit log keeps the name as it is (JSON-escaped).
  const std::string audit = run_retentiond({"-c", config, "audit", "log", "--format", "json"}).out;
  CHECK(contains(audit, "d/x\\n2026-01-01T00:00:00.000Z error FAKE\\u001b[31m"));
}

TEST_CASE("files: a symlinked directory the glob reaches into is skipped, and says so") {
  const TempDir dir;
  const std::string config = sixty_due_files(dir);
  fs::create_directories(dir / "media/other");
  std::ofstream(dir / "media/other/x") << "kept";
  set_mtime(dir / "media/other/x", std::time(nullptr) - 3 * k_day_s);
  // The link itself is young: not due, so not refused either; only the warning tells.
  fs::create_directory_symlink("../other", dir / "media/d/linked");
  const RunResult once = run_retentiond({"-c", config, "once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 0);
  CHECK(lines_of(once.out) == std::vector<std::string>{"tmp: ok (60 rows)"});
  CHECK(contains(once.err, "datastore 'media': skipped 'd/linked' (a symlink to a directory, "
                           "never followed): nothing beneath it is counted or removed\n"));
  CHECK(fs::exists(dir / "media/other/x"));
  CHECK(fs::is_symlink(dir / "media/d/linked"));
}

namespace {

// The record of `path` beneath `root` as a batch writes it (HeldFile::pending).
PendingFile pending_file(const fs::path& root, const std::string& path) {
  struct statx status {};
  REQUIRE(::statx(AT_FDCWD, (root / path).c_str(), AT_SYMLINK_NOFOLLOW, STATX_BTIME, &status) == 0);
  PendingFile file{path, makedev(status.stx_dev_major, status.stx_dev_minor), status.stx_ino, 0};
  if ((status.stx_mask & STATX_BTIME) != 0)
    file.born_ns = static_cast<std::int64_t>(status.stx_btime.tv_sec) * 1'000'000'000 +
                   status.stx_btime.tv_nsec;
  return file;
}

}  // namespace

namespace {

// What the run after a dead one over sixty_due_files saw.
struct AfterDeadRun {
  RunResult once;              // the `once` that closed the dead run
  std::string audit;           // rule tmp's audit log, as JSON lines
  std::int64_t dead_run = 0;   // the run that died
  std::int64_t batch_seq = 0;  // its batch's entry
  std::int64_t audited() const { return summarize(audited_from(audit), "tmp").batch_rows; }
};

// A dead run of rule tmp over sixty_due_files: its batch entry for the 60 files with the record
// of them, the first 20 removed (then `on_removed`), then `after` (the entries the dead process
// wrote after the batch's commit), its run left `running`; then `once`.
AfterDeadRun once_after_dead_run(
    const TempDir& dir,
    const std::function<void(SqliteStateStore&, std::int64_t, std::int64_t)>& after = {},
    const std::function<void()>& on_removed = {}) {
  const std::string config = sixty_due_files(dir);
  PendingFiles pending{"00000000000000aa", {}};
  for (int i = 0; i < 60; ++i)
    pending.files.push_back(pending_file(dir / "media", fmt::format("d/f{:02}", i)));
  for (int i = 0; i < 20; ++i)
    fs::remove(dir / "media/d" / fmt::format("f{:02}", i));
  if (on_removed)
    on_removed();
  AfterDeadRun result;
  {
    SqliteStateStore state(dir / "state/state.db", StateStore::Mode::read_write);
    result.dead_run = state.begin_run("tmp", now_utc());
    result.batch_seq =
        state
            .append_batch_audit("tmp", 60,
                                fmt::format("{{\"run\":{},\"batch\":1,\"token\":\"{}\","
                                            "\"datastore\":\"media\",\"glob\":\"d/**\","
                                            "\"table_rows\":60,\"cascade_rows\":0,"
                                            "\"files\":0}}",
                                            result.dead_run, pending.token),
                                pending)
            .seq;
    if (after)
      after(state, result.dead_run, result.batch_seq);
  }
  result.once = run_retentiond({"-c", config, "once"});
  result.audit =
      run_retentiond({"-c", config, "audit", "log", "--rule", "tmp", "--format", "json"}).out;
  return result;
}

}  // namespace

TEST_CASE("files: a run that died among a batch's removals has the files it left taken back") {
  const TempDir dir;
  const AfterDeadRun after = once_after_dead_run(dir);
  CAPTURE(after.once.err);
  CHECK(after.once.exit_code == 0);
  CHECK(lines_of(after.once.out) == std::vector<std::string>{"tmp: ok (40 rows)"});
  CHECK(fs::is_empty(dir / "media/d"));
  // 60 counted, the 40 still there taken back, then counted again as this run removes them.
  CHECK(contains(after.audit, fmt::format("\"rows\":-40,\"detail\":{{\"run\":{},\"corrects\":{},"
                                          "\"reason\":\"the process ended before the batch had "
                                          "removed these files, which are still there\"}}",
                                          after.dead_run, after.batch_seq)));
  CHECK(after.audited() == 60);
  SqliteStateStore state(dir / "state/state.db", StateStore::Mode::read_only);
  CHECK(state.pending_files("tmp") == std::nullopt);  // cleared
}

TEST_CASE("files: what entries already took back of a dead batch is not taken back again") {
  // After the dead batch's entry, the dead process (or a run that closed it and died in turn)
  // wrote an entry taking 40 of its 60 files back: `member` names the batch's entry.
  const auto taking_back = [](const std::string& member, const std::string& reason) {
    return [=](SqliteStateStore& state, std::int64_t run, std::int64_t seq) {
      state.append_audit(
          "batch", "tmp", -40,
          fmt::format("{{\"run\":{},\"{}\":{},\"reason\":\"{}\"}}", run, member, seq, reason));
    };
  };
  const TempDir dir;
  AfterDeadRun after;
  SUBCASE("its commit failed after 20 removals, and was taken back (Engine::enforce)") {
    after = once_after_dead_run(dir, taking_back("reverts", "commit failed"));
  }
  SUBCASE("its commit ended with 40 files left in place (written after they were found due)") {
    after = once_after_dead_run(
        dir,
        taking_back("corrects", "files had gone or changed when the batch came to remove them"));
  }
  SUBCASE("the run that closed it took the files back, then died before it cleared the record") {
    after = once_after_dead_run(dir, taking_back("corrects", "the process ended before the batch "
                                                             "had removed these files, which are "
                                                             "still there"));
  }
  CAPTURE(after.once.err);
  CHECK(after.once.exit_code == 0);
  CHECK(fs::is_empty(dir / "media/d"));
  CHECK(after.audited() == 60);
}

TEST_CASE("files: a new file under a removed file's path is not taken for it (inode reuse)") {
  // The batch removed d/f00 (one of the 20); before the next run a new file is written under the
  // same name, and ext4 hands it the freed inode number: same path, device and inode. Its birth
  // time tells it apart. (File systems stamp times from a clock that ticks every few
  // milliseconds: the new file is written a tick later, as any real one would be.)
  const TempDir dir;
  const AfterDeadRun after = once_after_dead_run(dir, {}, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    std::ofstream(dir / "media/d/f00") << "new";
  });
  CHECK(after.once.exit_code == 0);
  CHECK(after.audited() == 60);  // the 60 files of the dead run went; the new d/f00 is not due
}

TEST_CASE("files: a removal that fails part way is audited as far as it went") {
  // A file whose permissions allow its removal but that cannot be unlinked: immutable (chattr
  // +i), which only root can set, on a file system that has the attribute.
  if (::geteuid() != 0)
    return;
  const TempDir dir;
  const std::string config = sixty_due_files(dir);
  const std::filesystem::path stuck = dir / "media/d/f30";
  if (!set_immutable(stuck, true)) {
    WARN_MESSAGE(false, "no immutable attribute here: the test needs it");
    return;
  }
  struct Release {
    std::filesystem::path file;
    ~Release() { set_immutable(file, false); }
  } release{stuck};
  const RunResult once = run_retentiond({"-c", config, "once"});
  CAPTURE(once.err);
  CHECK(once.exit_code == 1);
  CHECK(contains(once.err, "cannot remove 'd/f30': Operation not permitted"));
  const auto left = tree_set(dir / "media");
  CHECK(left.contains("d/f30"));
  const auto removed = static_cast<std::int64_t>(60 - (left.size() - 1));  // and "d/"
  if (removed == 0)
    WARN_MESSAGE(false, "the immutable file came first: nothing to learn this time");
  // Files removed before the failure stay removed: the audit and the run say so.
  const AuditSummary audit = summarize(
      audited_from(run_retentiond({"-c", config, "audit", "log", "--format", "json"}).out), "tmp");
  CHECK(audit.batch_rows == removed);
  CHECK(contains(once.out, "tmp: error (" + std::to_string(removed) + " rows)"));
}
