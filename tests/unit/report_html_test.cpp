// The HTML report without a browser: escaping, self-containment, structure and the age chart.
// tests/integration/report_html_test.cpp renders it in Chromium.
#include "daemon/report_csv.hpp"
#include "daemon/report_html.hpp"
#include "daemon/report_markdown.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

using namespace retentiond;

namespace {

Instant at(std::string_view text) {
  auto instant = parse_iso8601(text);
  REQUIRE(instant.has_value());
  return *instant;
}

std::size_t occurrences(std::string_view text, std::string_view what) {
  std::size_t count = 0;
  for (std::size_t at = text.find(what); at != std::string_view::npos;
       at = text.find(what, at + what.size()))
    ++count;
  return count;
}

// 30 days retained: 20 buckets of 3 days from 60 days old to now, plus older and future, the
// way build_report makes them.
std::vector<AgeBucket> thirty_day_buckets(Instant as_of, Instant cutoff) {
  using std::chrono::days;
  using std::chrono::milliseconds;
  std::vector<AgeBucket> buckets;
  buckets.push_back({milliseconds{days{60}}, std::nullopt, 5, true});
  for (int k = 20; k >= 1; --k) {
    const milliseconds min_age{days{3 * (k - 1)}}, max_age{days{3 * k}};
    buckets.push_back({min_age, max_age, 10 * k, as_of - min_age <= cutoff});
  }
  buckets.push_back({std::nullopt, milliseconds{0}, 2, false});
  return buckets;
}

struct HtmlSample {
  Rule logs, tickets;
  Report report;

  HtmlSample() {
    logs.id = "event_logs";
    logs.description = "Event logs <script>alert(1)</script> & \"more\"";
    logs.policy = "Policy <b>V</b> & 'notes'";
    logs.datastore = "app";
    logs.table = "event_logs";
    logs.retain = {false, 30, CalendarUnit::days};
    logs.schedule = {"daily", std::chrono::hours{24}, {}};
    tickets.id = "tickets";
    tickets.description = "Tickets are kept";
    tickets.policy = logs.policy;
    tickets.datastore = "app";
    tickets.table = "tickets";
    tickets.retain = {true, 0, CalendarUnit::days};
    tickets.action = Action::keep;

    report.generated_at = report.as_of = at("2026-03-01T12:00:00Z");
    report.config_digest = "abc123";
    report.audit = {true, 3, "feed", std::nullopt, ""};
    RuleReport entry;
    entry.rule = &logs;
    entry.status = "due";
    entry.cutoff = at("2026-01-30T12:00:00Z");
    entry.counts.due = 55;
    entry.counts.total = 1100;
    entry.ages = thirty_day_buckets(report.as_of, *entry.cutoff);
    entry.last_runs = {
        {1, "event_logs", "2026-02-28T00:00:00Z", "2026-02-28T00:00:01Z", "error", 0, "<oops>"}};
    RuleReport kept;
    kept.rule = &tickets;
    kept.status = "keep";
    report.rules = {entry, kept};
  }
};

}  // namespace

TEST_CASE("csv_field quotes only what RFC 4180 requires") {
  CHECK(csv_field("plain") == "plain");
  CHECK(csv_field("") == "");
  CHECK(csv_field("a,b") == "\"a,b\"");
  CHECK(csv_field("say \"hi\"") == "\"say \"\"hi\"\"\"");
  CHECK(csv_field("two\nlines") == "\"two\nlines\"");
  CHECK(csv_field("cr\r") == "\"cr\r\"");
}

TEST_CASE("csv_field keeps spreadsheets from running a cell as a formula") {
  CHECK(csv_field("=HYPERLINK(\"http://x\")") == "\"'=HYPERLINK(\"\"http://x\"\")\"");
  CHECK(csv_field("+1") == "'+1");
  CHECK(csv_field("-1") == "'-1");
  CHECK(csv_field("@SUM(A1)") == "'@SUM(A1)");
  CHECK(csv_field("\t=1") == "'\t=1");
  CHECK(csv_field("a=1") == "a=1");
  CHECK(csv_field("2025-11-23T00:00:00Z") == "2025-11-23T00:00:00Z");
  CHECK(csv_field(" padded") == "\" padded\"");
}

TEST_CASE("markdown_escape neutralises markup and line breaks") {
  CHECK(markdown_escape("plain text, 5.2") == "plain text, 5.2");
  CHECK(markdown_escape("a|b") == "a\\|b");
  CHECK(markdown_escape("*x* _y_ `z` [l](u) <b> #1 & !") ==
        "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u) \\<b\\> \\#1 \\& \\!");
  CHECK(markdown_escape("one\r\ntwo") == "one two");
  CHECK(markdown_escape("snake_case _lead trail_") == "snake_case \\_lead trail\\_");
}

TEST_CASE("html_escape") {
  CHECK(html_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
  CHECK(html_escape("plain") == "plain");
}

TEST_CASE("the html report escapes every text from config and data") {
  const HtmlSample sample;
  const std::string html = report_html(sample.report);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("<b>V</b>") == std::string::npos);
  CHECK(html.find("<oops>") == std::string::npos);
  CHECK(html.find("Event logs &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;more&quot;") !=
        std::string::npos);
  CHECK(html.find("Policy &lt;b&gt;V&lt;/b&gt; &amp; &#39;notes&#39;") != std::string::npos);
  CHECK(html.find("&lt;oops&gt;") != std::string::npos);
}

TEST_CASE("the html report is self-contained") {
  const HtmlSample sample;
  const std::string html = report_html(sample.report);
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(html.find("default-src 'none'") != std::string::npos);
  for (const std::string_view outside :
       {"http:", "https:", "src=", "<link", "@import", "url(", "<script"})
    CHECK_MESSAGE(html.find(outside) == std::string::npos, outside);
}

TEST_CASE("the html report has a summary, one section per clause and per rule") {
  const HtmlSample sample;
  const std::string html = report_html(sample.report);
  CHECK(occurrences(html, "id=\"summary-table\"") == 1);
  CHECK(occurrences(html, "<section class=\"policy\"") == 1);
  CHECK(occurrences(html, "id=\"rule-event_logs\"") == 1);
  CHECK(occurrences(html, "id=\"rule-tickets\"") == 1);
  CHECK(html.find("<span class=\"chain verified\">verified</span>") != std::string::npos);
  CHECK(html.find("id=\"audit-broken\"") == std::string::npos);
  CHECK(html.find("Kept without limit") != std::string::npos);
  CHECK(html.find("<span class=\"status st-due\">due</span>") != std::string::npos);
  CHECK(html.find("<span class=\"status st-keep\">keep</span>") != std::string::npos);
  CHECK(html.find("<span class=\"status st-bad\">error</span>") != std::string::npos);
}

TEST_CASE("the html report shows a broken audit chain first") {
  HtmlSample sample;
  sample.report.audit = {false, 9, "dead", 4, "entry 4: hash does not match its content"};
  const std::string html = report_html(sample.report);
  const std::size_t alert = html.find("id=\"audit-broken\"");
  REQUIRE(alert != std::string::npos);
  CHECK(alert < html.find("id=\"summary-table\""));
  CHECK(html.find("entry 4: hash does not match its content (first failing entry: 4)") !=
        std::string::npos);
  CHECK(html.find("<span class=\"chain broken\">BROKEN</span>") != std::string::npos);
}

TEST_CASE("the age chart draws each non-empty bucket, the cutoff and day ticks") {
  const HtmlSample sample;
  const RuleReport& entry = sample.report.rules.front();
  const std::string svg = age_chart_svg(entry, sample.report.as_of);
  REQUIRE(svg.starts_with("<svg"));
  CHECK(svg.ends_with("</svg>"));
  // Buckets up to 30 days old are within retention: 10 of the 20, plus the future one.
  CHECK(occurrences(svg, "<rect class=\"kept\" x=") == 11 + 1);  // + legend swatch
  CHECK(occurrences(svg, "<rect class=\"past\" x=") == 11 + 1);
  CHECK(occurrences(svg, "<line class=\"cutoff\"") == 1);
  CHECK(svg.find("cutoff 2026-01-30T12:00:00Z (30 days ago)") != std::string::npos);
  CHECK(svg.find(">60 d</text>") != std::string::npos);
  CHECK(svg.find(">30 d</text>") != std::string::npos);
  CHECK(svg.find(">now</text>") != std::string::npos);
  CHECK(svg.find(">older</text>") != std::string::npos);
  CHECK(svg.find(">future</text>") != std::string::npos);
}

TEST_CASE("the age chart is absent without buckets and says so when every bucket is empty") {
  HtmlSample sample;
  CHECK(age_chart_svg(sample.report.rules.back(), sample.report.as_of).empty());
  RuleReport& entry = sample.report.rules.front();
  for (AgeBucket& bucket : entry.ages)
    bucket.rows = 0;
  const std::string svg = age_chart_svg(entry, sample.report.as_of);
  CHECK(svg.find("no dated rows") != std::string::npos);
  CHECK(occurrences(svg, "<rect class=\"past\" x=") == 1);
}

TEST_CASE("the age chart labels long retention periods in months and years") {
  HtmlSample sample;
  RuleReport& entry = sample.report.rules.front();
  const auto month = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::months{1});
  const auto year = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::years{1});
  entry.cutoff = at("2025-03-01T12:00:00Z");
  entry.ages = {{24 * month, std::nullopt, 1, true},
                {12 * month, 24 * month, 1, true},
                {std::chrono::milliseconds{0}, 12 * month, 1, false}};
  std::string svg = age_chart_svg(entry, sample.report.as_of);
  CHECK(svg.find(">12 mo</text>") != std::string::npos);
  CHECK(svg.find(">24 mo</text>") != std::string::npos);
  entry.ages = {{10 * year, std::nullopt, 1, true},
                {5 * year, 10 * year, 1, true},
                {std::chrono::milliseconds{0}, 5 * year, 1, false}};
  svg = age_chart_svg(entry, sample.report.as_of);
  CHECK(svg.find(">10 y</text>") != std::string::npos);
  CHECK(svg.find(">4 y</text>") != std::string::npos);
}

TEST_CASE("the age chart's row axis counts whole rows") {
  HtmlSample sample;
  RuleReport& entry = sample.report.rules.front();
  for (AgeBucket& bucket : entry.ages)
    bucket.rows = 0;
  entry.ages[3].rows = 1;
  const std::string svg = age_chart_svg(entry, sample.report.as_of);
  CHECK(occurrences(svg, "<line class=\"grid\"") == 2);
  CHECK(svg.find("text-anchor=\"end\">1</text>") != std::string::npos);
}
