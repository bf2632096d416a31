// The report's JSON, CSV and Markdown forms, byte for byte, against files in tests/golden/.
//
// After an intended change of a format, rewrite the golden files and review the diff:
//   RETENTIOND_UPDATE_GOLDEN=1 build/retentiond_tests -tc='report golden*'
//   git diff tests/golden/
#include "daemon/report.hpp"
#include "daemon/report_csv.hpp"
#include "daemon/report_markdown.hpp"
#include "tests/support/files.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>

using namespace retentiond;
using retentiond::test::file_bytes;

namespace {

Instant at(std::string_view text) {
  auto instant = parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

// Ages are measured at as_of; `from`/`to` are ages in days.
AgeBucket bucket(std::optional<int> from_days, std::optional<int> to_days, std::int64_t rows,
                 bool past) {
  const auto days = [](std::optional<int> n) -> std::optional<std::chrono::milliseconds> {
    if (!n)
      return std::nullopt;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::days{*n});
  };
  return {days(from_days), days(to_days), rows, past};
}

// Three rules: a due delete rule and a failing rule citing the same clause, and a keep rule;
// descriptions, policies and messages hold commas, quotes, line breaks and markup.
struct SampleReport {
  Rule cookies, error_logs, tickets;
  Report report;

  SampleReport() {
    const std::string shared_policy =
        "Privacy Policy (January 2023), section V \"How long we retain\", note 5.2";

    cookies.id = "cookies";
    cookies.description = "Cookies are deleted 12 months after consent, \"rolling\"";
    cookies.policy = shared_policy;
    cookies.datastore = "app";
    cookies.table = "cookies";
    cookies.age_column = "consent_given_at";
    cookies.retain = {false, 12, CalendarUnit::months};
    cookies.action = Action::delete_rows;
    cookies.schedule = {"hourly", std::chrono::hours{1}, {}};

    error_logs.id = "error_logs";
    error_logs.description = "Error logs: 24 months <after> the error";
    error_logs.policy = shared_policy;
    error_logs.datastore = "app";
    error_logs.table = "error_logs";
    error_logs.age_column = "logged_at";
    error_logs.retain = {false, 24, CalendarUnit::months};
    error_logs.action = Action::delete_rows;
    error_logs.schedule = {"daily", std::chrono::hours{24}, {}};
    error_logs.age_from = ParentAnchor{"requests", "ended_at", "id", "request_id"};

    tickets.id = "support_tickets";
    tickets.description = "Support tickets are kept forever";
    tickets.policy = "Ticket Policy & Terms, 4.1";
    tickets.datastore = "app";
    tickets.table = "support_tickets";
    tickets.retain = {true, 0, CalendarUnit::days};
    tickets.action = Action::keep;
    tickets.schedule = {"daily", std::chrono::hours{24}, {}};

    report.generated_at = at("2026-03-01T12:00:05Z");
    report.as_of = at("2026-03-01T12:00:00Z");
    report.config_digest = "5f2c0e8a41d7b93c6e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7";
    report.audit = {true, 42, "9c1d7a3e5b2f4c6d8e0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e",
                    std::nullopt, ""};

    RuleReport due;
    due.rule = &cookies;
    due.status = "due";
    due.counts = {.table_rows = 1000,
                  .total = 950,
                  .due = 120,
                  .held = 3,
                  .undated = 7,
                  .unreadable = 2,
                  .future = 1,
                  .wrong_scale = 0,
                  .oldest_due = at("2025-01-15T08:30:00Z")};
    due.cutoff = at("2025-03-01T12:00:00Z");
    due.worst_overshoot = *due.cutoff - *due.counts.oldest_due;
    due.last_runs = {{2, "cookies", "2026-03-01T11:00:00Z", "2026-03-01T11:00:02Z", "ok", 17, ""},
                     {1, "cookies", "2026-03-01T10:00:00Z", "2026-03-01T10:00:09Z", "partial", 250,
                      "max_runtime reached"}};
    due.ages = {bucket(730, std::nullopt, 40, true), bucket(365, 730, 83, true),
                bucket(0, 365, 826, false), bucket(std::nullopt, 0, 1, false)};

    RuleReport failed;
    failed.rule = &error_logs;
    failed.status = "error";
    failed.message = "schema: no such table \"error_logs\"\nhint: <run check --connect>, then fix";
    failed.cutoff = at("2024-03-01T12:00:00Z");
    failed.last_runs = {
        {3, "error_logs", "2026-02-28T03:00:00Z", "", "error", 0, "disk I/O error"}};

    RuleReport kept;
    kept.rule = &tickets;
    kept.status = "keep";

    report.rules = {due, failed, kept};
  }
};

// The first line where `actual` and `expected` differ, for a readable failure.
std::string first_difference(const std::string& actual, const std::string& expected) {
  std::size_t line = 1, start = 0;
  for (std::size_t i = 0; i < std::min(actual.size(), expected.size()); ++i) {
    if (actual[i] != expected[i])
      break;
    if (actual[i] == '\n') {
      ++line;
      start = i + 1;
    }
  }
  const auto line_of = [&](const std::string& text) {
    if (start >= text.size())
      return std::string{"<end of text>"};
    return text.substr(start, text.find('\n', start) - start);
  };
  return "line " + std::to_string(line) + "\n  actual:   " + line_of(actual) +
         "\n  expected: " + line_of(expected);
}

// Compares `actual` with tests/golden/<name>; with RETENTIOND_UPDATE_GOLDEN=1, rewrites it.
void check_golden(const std::string& name, const std::string& actual) {
  const std::filesystem::path path =
      std::filesystem::path(RETENTIOND_SOURCE_DIR) / "tests" / "golden" / name;
  if (const char* update = std::getenv("RETENTIOND_UPDATE_GOLDEN");
      update != nullptr && std::string_view{update} == "1") {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << actual;
    REQUIRE(out.good());
    MESSAGE("rewrote " << path.string());
    return;
  }
  INFO("golden file " << path.string() << " (RETENTIOND_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(std::filesystem::exists(path));
  const std::string expected = file_bytes(path);
  INFO(first_difference(actual, expected));
  CHECK(actual == expected);
}

}  // namespace

TEST_CASE("report golden: json") {
  const SampleReport sample;
  check_golden("report.json", report_json(sample.report));
}

TEST_CASE("report golden: csv") {
  const SampleReport sample;
  check_golden("report.csv", report_csv(sample.report));
}

TEST_CASE("report golden: markdown") {
  const SampleReport sample;
  check_golden("report.md", report_markdown(sample.report));
}

TEST_CASE("render_report picks the renderer by format name") {
  const SampleReport sample;
  CHECK(render_report(sample.report, "json") == report_json(sample.report));
  CHECK(render_report(sample.report, "csv") == report_csv(sample.report));
  CHECK(render_report(sample.report, "md") == report_markdown(sample.report));
  CHECK(render_report(sample.report, "html").starts_with("<!DOCTYPE html>"));
  CHECK_THROWS_AS((void)render_report(sample.report, "xml"), std::invalid_argument);
}

TEST_CASE("group_by_policy keeps report order and groups identical clauses") {
  const SampleReport sample;
  const std::vector<PolicyGroup> groups = group_by_policy(sample.report);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].policy == sample.cookies.policy);
  REQUIRE(groups[0].rules.size() == 2);
  CHECK(groups[0].rules[0]->rule->id == "cookies");
  CHECK(groups[0].rules[1]->rule->id == "error_logs");
  CHECK(groups[1].policy == "Ticket Policy & Terms, 4.1");
  REQUIRE(groups[1].rules.size() == 1);
}

TEST_CASE("markdown and json state a broken audit chain") {
  SampleReport sample;
  sample.report.audit.ok = false;
  sample.report.audit.bad_seq = 7;
  sample.report.audit.problem = "entry 7: hash does not match its content";
  const std::string markdown = report_markdown(sample.report);
  CHECK(markdown.find("- Audit chain: **BROKEN** — entry 7: hash does not match its content\n") !=
        std::string::npos);
  CHECK(markdown.find("cannot be trusted") != std::string::npos);
  const std::string json = report_json(sample.report);
  CHECK(json.find("\"verified\":false") != std::string::npos);
  CHECK(json.find("\"problem\":\"entry 7: hash does not match its content\"") != std::string::npos);
}
