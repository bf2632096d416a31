// The HTML report in a real browser: Debian's Chromium, headless, loads the file offline, and
// the DOM it builds and a screenshot are checked. Then the real binary writes each format.
//
// Needs /usr/bin/chromium (Debian package `chromium`, which tools/install-build-deps installs);
// without it these tests fail rather than skip, so that CI cannot pass without running them.
// RETENTIOND_REPORT_SCREENSHOT=FILE keeps the browser's screenshot for a human to look at.
#include "daemon/report.hpp"
#include "daemon/report_html.hpp"
#include "tests/support/files.hpp"
#include "tests/support/run_binary.hpp"
#include "tests/support/temp_dir.hpp"

#include <SQLiteCpp/SQLiteCpp.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <sys/wait.h>
#include <thread>
#include <vector>

using namespace retentiond;
using retentiond::test::file_bytes;
using retentiond::test::run_program;
using retentiond::test::run_retentiond;
using retentiond::test::RunResult;
using retentiond::test::TempDir;

namespace {

constexpr std::string_view k_chromium = "/usr/bin/chromium";

Instant at(std::string_view text) {
  auto instant = parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

void write_file(const std::filesystem::path& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

std::size_t occurrences(std::string_view text, std::string_view what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string_view::npos;
       at = text.find(what, at + what.size()))
    ++count;
  return count;
}

void require_chromium() {
  REQUIRE_MESSAGE(std::filesystem::exists(k_chromium),
                  "/usr/bin/chromium is missing: install the Debian package `chromium` "
                  "(apt-get install chromium; tools/install-build-deps does it)");
}

struct BrowserRun {
  int exit_code = -1;
  std::string out;
  std::string log;  // stderr
};

// Runs headless Chromium on `page` with `action` (--dump-dom, --screenshot=...), offline and with
// a fresh profile; gives up after two minutes. Paths come from TempDir and need no quoting
// beyond single quotes.
BrowserRun run_chromium(const std::filesystem::path& page, const std::vector<std::string>& action) {
  const TempDir profile;
  const TempDir logs;
  std::string command = "exec timeout 120 " + std::string{k_chromium} +
                        " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                        " --disable-background-networking --disable-component-update --disable-sync"
                        " --user-data-dir='" +
                        profile.path().string() + "'";
  for (const std::string& argument : action)
    command += " '" + argument + "'";
  command += " 'file://" + page.string() + "' 2>'" + (logs / "stderr").string() + "'";
  BrowserRun run;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[65536];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    run.out.append(buffer, n);
  const int status = ::pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.log = file_bytes(logs / "stderr");
  return run;
}

// A week of hourly buckets would not say much: this is a year-scale picture with a backlog
// past the cutoff and steady growth inside it, the shape real tables have.
std::vector<AgeBucket> realistic_ages(Instant as_of, Instant cutoff, std::chrono::milliseconds span,
                                      std::int64_t per_bucket, std::int64_t backlog) {
  using std::chrono::milliseconds;
  const milliseconds width = span / 10;
  std::vector<AgeBucket> buckets;
  buckets.push_back({2 * span, std::nullopt, backlog * 3, true});
  for (int k = 20; k >= 1; --k) {
    const milliseconds min_age = (k - 1) * width, max_age = k * width;
    const bool past = as_of - min_age <= cutoff;
    const std::int64_t rows = past ? backlog / k : per_bucket + (per_bucket * (k % 4)) / 10;
    buckets.push_back({min_age, max_age, rows, past});
  }
  buckets.push_back({std::nullopt, milliseconds{0}, 2, false});
  return buckets;
}

// Five rules: two cite one clause; one is due with a backlog, one ok, one failed, one stale,
// one kept; texts that must be escaped.
struct RealisticReport {
  Rule connection_logs, cookies, videos, events, tickets;
  Report report;

  RealisticReport() {
    const std::string yealink =
        "Yealink Privacy Policy (January 2023), section V 'How long we retain your "
        "Personal Data', note following 5.2";
    const auto rule = [](Rule& r, std::string id, std::string description, std::string policy,
                         Retention retain, Action action, Schedule schedule) {
      r.id = std::move(id);
      r.description = std::move(description);
      r.policy = std::move(policy);
      r.datastore = "app";
      r.table = r.id;
      r.retain = retain;
      r.action = action;
      r.schedule = std::move(schedule);
    };
    rule(connection_logs, "connection_logs",
         "Connection logs are kept 12 months, rolling, from the connection time", yealink,
         {false, 12, CalendarUnit::months}, Action::delete_rows,
         {"hourly", std::chrono::hours{1}, {}});
    rule(cookies, "cookies",
         "Cookies are deleted 12 months after consent <script>alert('x')</script> was given",
         yealink, {false, 12, CalendarUnit::months}, Action::delete_rows,
         {"daily", std::chrono::hours{24}, {}});
    rule(videos, "rejected_videos",
         "Videos rejected in review are deleted 15 days after the review",
         "Reolink Privacy Policy (May 16th, 2022), section II, (VI) item (6) & \"review\"",
         {false, 15, CalendarUnit::days}, Action::delete_rows,
         {"daily", std::chrono::hours{24}, {}});
    videos.table = "videos";
    rule(events, "event_participation_logs",
         "Event participation logs are deleted 30 days after the event",
         "Reolink Privacy Policy (May 16th, 2022), section II, (VI) item (7)",
         {false, 30, CalendarUnit::days}, Action::delete_rows,
         {"daily", std::chrono::hours{24}, {}});
    events.age_from = ParentAnchor{"events", "ended_at", "id", "event_id"};
    rule(tickets, "support_tickets", "Support tickets are kept permanently",
         "Akuvox Ticket Privacy Policy, 4.1", {true, 0, CalendarUnit::days}, Action::keep,
         {"weekly", std::chrono::hours{24 * 7}, {}});

    report.as_of = at("2026-03-01T12:00:00Z");
    report.generated_at = at("2026-03-01T12:00:02Z");
    report.config_digest = "03ba267bdb34db00ce0f426e63eef20de4918aef9b8b4e3285205411814e0f2d";
    report.audit = {true, 1284, "7dc82753f2b7f6693a1fc444721e60dbf988298aa4c2d307c896ccb7708e5fb9",
                    std::nullopt, ""};

    const auto year = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::days{365});
    const auto days = [](int n) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::days{n});
    };

    RuleReport logs;
    logs.rule = &connection_logs;
    logs.status = "due";
    logs.cutoff = at("2025-03-01T12:00:00Z");
    logs.counts = {.table_rows = 20000,
                   .total = 20000,
                   .due = 1240,
                   .held = 12,
                   .undated = 0,
                   .unreadable = 0,
                   .future = 2,
                   .wrong_scale = 0,
                   .oldest_due = at("2025-02-20T08:00:00Z")};
    logs.worst_overshoot = *logs.cutoff - *logs.counts.oldest_due;
    logs.last_runs = {
        {41, "connection_logs", "2026-03-01T11:00:00Z", "2026-03-01T11:00:03Z", "partial", 5000,
         "max_runtime 10m reached; the rest is due at the next run"},
        {40, "connection_logs", "2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", "ok", 120, ""}};
    logs.ages = realistic_ages(report.as_of, *logs.cutoff, year, 900, 1240);

    RuleReport consent;
    consent.rule = &cookies;
    consent.status = "ok";
    consent.cutoff = logs.cutoff;
    consent.counts = {.table_rows = 2969,
                      .total = 2969,
                      .due = 0,
                      .held = 0,
                      .undated = 15,
                      .unreadable = 0,
                      .future = 0,
                      .wrong_scale = 0,
                      .oldest_due = std::nullopt};
    consent.last_runs = {
        {39, "cookies", "2026-03-01T03:00:00Z", "2026-03-01T03:00:01Z", "ok", 31, ""}};
    consent.ages = realistic_ages(report.as_of, *consent.cutoff, year, 140, 0);

    RuleReport rejected;
    rejected.rule = &videos;
    rejected.status = "error";
    rejected.cutoff = at("2026-02-14T12:00:00Z");
    rejected.message = "column 'reviewed_at' does not exist in table 'videos' <datastore app>";
    rejected.last_runs = {
        {38, "rejected_videos", "2026-02-28T03:00:00Z", "", "error", 0, "disk I/O error"}};

    RuleReport participation;
    participation.rule = &events;
    participation.status = "stale";
    participation.message =
        "last success 2026-02-25T03:00:00Z is older than twice the schedule (daily)";
    participation.cutoff = at("2026-01-30T12:00:00Z");
    participation.counts = {.table_rows = 6000,
                            .total = 6000,
                            .due = 88,
                            .held = 0,
                            .undated = 66,
                            .unreadable = 3,
                            .future = 0,
                            .wrong_scale = 0,
                            .oldest_due = at("2026-01-20T00:00:00Z")};
    participation.worst_overshoot = *participation.cutoff - *participation.counts.oldest_due;
    participation.last_runs = {{30, "event_participation_logs", "2026-02-25T03:00:00Z",
                                "2026-02-25T03:00:02Z", "ok", 412, ""}};
    participation.ages = realistic_ages(report.as_of, *participation.cutoff, days(30), 40, 88);

    RuleReport kept;
    kept.rule = &tickets;
    kept.status = "keep";

    report.rules = {logs, consent, rejected, participation, kept};
  }
};

// The PNG's width and height from its IHDR chunk, or {0, 0} when it is no PNG.
std::pair<std::uint32_t, std::uint32_t> png_size(const std::string& bytes) {
  if (bytes.size() < 24 || bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") != 0 ||
      bytes.compare(12, 4, "IHDR") != 0)
    return {0, 0};
  const auto be32 = [&](std::size_t at) {
    std::uint32_t value = 0;
    for (std::size_t i = 0; i < 4; ++i)
      value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
    return value;
  };
  return {be32(16), be32(20)};
}

}  // namespace

TEST_CASE("chromium renders the html report: every rule section, the summary and the charts") {
  require_chromium();
  const RealisticReport sample;
  const TempDir dir;
  const std::filesystem::path page = dir / "report.html";
  write_file(page, report_html(sample.report));

  const BrowserRun dom = run_chromium(page, {"--dump-dom"});
  INFO("chromium stderr:\n" << dom.log);
  REQUIRE(dom.exit_code == 0);
  CHECK(dom.out.find("<table class=\"summary\" id=\"summary-table\">") != std::string::npos);
  for (const RuleReport& entry : sample.report.rules) {
    CHECK_MESSAGE(occurrences(dom.out, "id=\"rule-" + entry.rule->id + "\"") == 1, entry.rule->id);
    CHECK_MESSAGE(dom.out.find("<a href=\"#rule-" + entry.rule->id + "\">") != std::string::npos,
                  entry.rule->id);
  }
  // Three rules have ages: three charts, parsed as SVG; the policy clauses became four sections.
  CHECK(occurrences(dom.out, "<svg viewBox=") == 3);
  CHECK(occurrences(dom.out, "<section class=\"policy\"") == 4);
  // Escaped text stays text: the browser built no script element from a description.
  CHECK(dom.out.find("<script") == std::string::npos);
  CHECK(dom.out.find("consent &lt;script&gt;alert('x')&lt;/script&gt; was given") !=
        std::string::npos);

  const std::filesystem::path shot = dir / "report.png";
  const BrowserRun screenshot =
      run_chromium(page, {"--screenshot=" + shot.string(), "--window-size=1280,2000"});
  INFO("chromium stderr:\n" << screenshot.log);
  REQUIRE(screenshot.exit_code == 0);
  REQUIRE(std::filesystem::exists(shot));
  const std::string png = file_bytes(shot);
  CHECK(png_size(png) == std::pair<std::uint32_t, std::uint32_t>{1280, 2000});
  // A blank 1280x2000 page compresses to a few kilobytes; a rendered report is far larger.
  CHECK(png.size() > 60'000);
  // RETENTIOND_REPORT_SCREENSHOT=FILE keeps a copy, to look at what the browser drew.
  if (const char* keep = std::getenv("RETENTIOND_REPORT_SCREENSHOT");
      keep != nullptr && *keep != '\0')
    std::filesystem::copy_file(shot, keep, std::filesystem::copy_options::overwrite_existing);
}

TEST_CASE("report writes the format --format or --output's extension names") {
  const TempDir dir;
  {
    SQLite::Database app((dir / "app.db").string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    app.exec(
        "CREATE TABLE sessions(id INTEGER PRIMARY KEY, ended_at INTEGER);"
        "CREATE INDEX sessions_ended_at ON sessions(ended_at);"
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
        "INSERT INTO sessions(ended_at) SELECT 1767225600 + i * 86400 FROM n;");  // 2026-01-02 ..
  }
  write_file(dir / "retentiond.toml", R"([state]
path = "state.db"

[datastores.app]
type = "sqlite"
path = "app.db"

[rules.sessions]
description = "Sessions <ended> are deleted 30 days after they ended, \"rolling\""
policy = "test policy, clause 1"
datastore = "app"
table = "sessions"
age_column = "ended_at"
age_format = "unix_seconds"
retain = "30 days"
action = "delete"
max_fraction = 1
)");
  const std::string config = (dir / "retentiond.toml").string();
  const auto report = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", config, "report", "--as-of", "2026-03-01"});
    return run_retentiond(args);
  };

  SUBCASE("markdown on stdout by default") {
    const RunResult run = report({});
    CHECK(run.exit_code == 0);
    CHECK(run.out.starts_with("# Retention report\n"));
    CHECK(run.out.find("| `sessions` | due |") != std::string::npos);
  }
  SUBCASE("each extension, in any case") {
    for (const auto& [name, start] :
         std::vector<std::pair<std::string, std::string>>{{"r.html", "<!DOCTYPE html>"},
                                                          {"r.JSON", "{\"generated_at\":"},
                                                          {"r.md", "# Retention report"},
                                                          {"r.csv", "id,description,policy,"}}) {
      const RunResult run = report({"--output", (dir / name).string()});
      CHECK_MESSAGE(run.exit_code == 0, name << ": " << run.err);
      CHECK_MESSAGE(file_bytes(dir / name).starts_with(start), name);
    }
    CHECK(file_bytes(dir / "r.html").find("id=\"rule-sessions\"") != std::string::npos);
    CHECK(file_bytes(dir / "r.csv")
              .find("\r\nsessions,\"Sessions <ended> are deleted 30 days after they ended, "
                    "\"\"rolling\"\"\",") != std::string::npos);
  }
  SUBCASE("--format wins over the extension, and goes to stdout") {
    RunResult run = report({"--format", "csv", "--output", (dir / "r.md").string()});
    CHECK(run.exit_code == 0);
    CHECK(file_bytes(dir / "r.md").starts_with("id,description,"));
    run = report({"--format", "html"});
    CHECK(run.exit_code == 0);
    CHECK(run.out.starts_with("<!DOCTYPE html>"));
  }
  SUBCASE("a pipe or a symlink is written in place, never replaced by a file") {
    // As /dev/null would be: `report --output /dev/null` once replaced it with a plain file.
    const auto fifo = dir / "collector.json";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    // Opened without waiting for a writer, read until the writer closes or 30 s pass, so that
    // a report that replaced the pipe fails the test instead of hanging it.
    const int read_end = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(read_end >= 0);
    std::string received;
    std::thread reader([&] {
      bool writer_seen = false;
      for (;;) {
        pollfd ready{read_end, POLLIN, 0};
        if (::poll(&ready, 1, 30'000) <= 0)
          break;
        char buffer[4096];
        const ssize_t got = ::read(read_end, buffer, sizeof buffer);
        if (got > 0) {
          writer_seen = true;
          received.append(buffer, static_cast<std::size_t>(got));
        } else if (got == 0 && writer_seen) {
          break;  // the writer closed
        } else if (got == 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds{10});  // no writer yet
        } else if (errno != EAGAIN) {
          break;
        }
      }
      ::close(read_end);
    });
    const RunResult to_pipe = report({"--output", fifo.string()});
    reader.join();
    CHECK(to_pipe.exit_code == 0);
    CHECK(received.starts_with("{\"generated_at\":"));
    CHECK(std::filesystem::is_fifo(std::filesystem::symlink_status(fifo)));
    CHECK_FALSE(std::filesystem::exists(dir / "collector.json.tmp"));

    write_file(dir / "latest-target.md", "old");
    std::filesystem::create_symlink(dir / "latest-target.md", dir / "latest.md");
    CHECK(report({"--output", (dir / "latest.md").string()}).exit_code == 0);
    CHECK(std::filesystem::is_symlink(dir / "latest.md"));
    CHECK(file_bytes(dir / "latest-target.md").starts_with("# Retention report\n"));
    // A link whose target does not exist yet: the target is created.
    std::filesystem::create_symlink(dir / "first-target.md", dir / "first.md");
    CHECK(report({"--output", (dir / "first.md").string()}).exit_code == 0);
    CHECK(file_bytes(dir / "first-target.md").starts_with("# Retention report\n"));
  }
  SUBCASE("a write that fails (the disk full) keeps the previous report") {
    write_file(dir / "r.md", "previous report");
    // A file size limit of 1 KiB, its signal ignored, makes write() fail with EFBIG half-way
    // through the report, as a full disk would with ENOSPC.
    std::vector<std::string> args{"-c",
                                  "trap '' XFSZ; ulimit -f 1; exec \"$0\" \"$@\"",
                                  RETENTIOND_BINARY,
                                  "-c",
                                  config,
                                  "report",
                                  "--output",
                                  (dir / "r.md").string()};
    const RunResult run = run_program("/bin/sh", args);
    CHECK(run.exit_code == 1);
    CHECK(run.err ==
          "retentiond: error: cannot write " + (dir / "r.md").string() + ": File too large\n");
    CHECK(file_bytes(dir / "r.md") == "previous report");
    CHECK_FALSE(std::filesystem::exists(dir / "r.md.tmp"));
  }
  SUBCASE("unknown formats are usage errors") {
    RunResult run = report({"--format", "xml"});
    CHECK(run.exit_code == 2);
    CHECK(run.err ==
          "retentiond: error: --format 'xml': unknown report format; use html, json, md or csv\n");
    run = report({"--output", (dir / "r.txt").string()});
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("cannot tell the report format from the extension") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "r.txt"));
  }
}
