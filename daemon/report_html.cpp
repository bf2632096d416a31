#include "daemon/report_html.hpp"

#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

namespace retentiond {
namespace {

using std::chrono::milliseconds;

constexpr std::string_view k_none = "—";

// Kept in the page so that the file stays self-contained: system fonts only, no url().
constexpr std::string_view k_style = R"css(
:root {
  --ink: #1d2433; --muted: #5b6577; --line: #d8dde6; --soft: #f4f6f9; --accent: #24508f;
  --ok-bg: #dff3e4; --ok-ink: #17612d; --due-bg: #fff0c2; --due-ink: #7a4d00;
  --bad-bg: #fbdcdc; --bad-ink: #9b1c1c; --keep-bg: #e7eaee; --keep-ink: #4a5361;
  --past: #c8412f; --kept: #3f7dc4;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
.page { max-width: 1240px; margin: 0 auto; padding: 28px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 19px; margin: 0 0 12px; }
h3 { font-size: 16px; margin: 0; }
h4 { font-size: 13px; margin: 18px 0 6px; text-transform: uppercase; letter-spacing: 0.04em; color: var(--muted); }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.hash { word-break: break-all; }
a { color: var(--accent); }
.lede { color: var(--muted); margin: 0 0 18px; max-width: 60em; }
.muted { color: var(--muted); }
.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0;
  padding: 14px 18px; background: var(--soft); border: 1px solid var(--line); border-radius: 6px; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; }
.chain { font-weight: 600; }
.chain.verified { color: var(--ok-ink); }
.chain.broken { color: var(--bad-ink); }
.alert { margin: 0 0 18px; padding: 14px 18px; border: 2px solid var(--bad-ink); border-radius: 6px;
  background: var(--bad-bg); color: var(--bad-ink); font-size: 15px; }
.alert strong { display: block; font-size: 18px; margin-bottom: 2px; }
section.summary { margin: 28px 0 8px; }
.totals { margin: 10px 0 0; color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: var(--soft); white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.zero { color: #9aa3b1; }
td.hot { font-weight: 700; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
table.summary th, table.summary td { padding: 5px 7px; }
table.summary { font-size: 12.5px; }
table.summary td { white-space: nowrap; }
table.summary td.last-run { font-size: 11.5px; line-height: 1.3; }
table.summary td.uncounted { text-align: center; font-style: italic; }
.table-scroll { overflow-x: auto; }
.status { display: inline-block; padding: 1px 9px; border-radius: 10px; font-size: 12px; font-weight: 600;
  white-space: nowrap; }
.st-ok { background: var(--ok-bg); color: var(--ok-ink); }
.st-due { background: var(--due-bg); color: var(--due-ink); }
.st-bad { background: var(--bad-bg); color: var(--bad-ink); }
.st-keep { background: var(--keep-bg); color: var(--keep-ink); }
td.status-cell.st-ok, td.status-cell.st-due, td.status-cell.st-bad, td.status-cell.st-keep { font-weight: 600; }
nav.clauses ol { margin: 6px 0 0; padding-left: 22px; }
section.policy { margin-top: 36px; padding-top: 16px; border-top: 3px solid var(--ink); }
.kicker { display: block; font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.06em;
  color: var(--muted); margin-bottom: 2px; }
.cites { color: var(--muted); margin: 0 0 8px; }
article.rule { margin: 18px 0 0; padding: 18px 20px 16px; border: 1px solid var(--line); border-radius: 8px; }
article.rule.bad { border-left: 5px solid var(--bad-ink); }
article.rule.due { border-left: 5px solid #d9a400; }
.rule-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; }
.description { margin: 6px 0 0; font-size: 15px; }
.message { margin: 10px 0 0; padding: 8px 12px; border-radius: 5px; }
.rule-grid { display: grid; grid-template-columns: minmax(260px, 330px) 1fr; gap: 18px 28px; margin-top: 14px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 14px; margin: 0; align-content: start; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; overflow-wrap: anywhere; }
.facts dd.num { font-variant-numeric: tabular-nums; }
.facts .sep { grid-column: 1 / -1; border-top: 1px solid var(--line); margin: 4px 0; }
figure.chart { margin: 0; min-width: 0; }
figure.chart svg { display: block; width: 100%; height: auto; }
figure.chart figcaption { font-size: 12px; color: var(--muted); margin-top: 2px; }
.note { margin: 0; padding: 14px 16px; background: var(--soft); border-radius: 6px; color: var(--muted); }
details.buckets { margin-top: 6px; font-size: 12px; }
details.buckets summary { cursor: pointer; color: var(--muted); }
details.buckets table { margin-top: 6px; }
table.runs { font-size: 12.5px; width: auto; min-width: 55%; }
footer { margin-top: 40px; padding-top: 12px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
svg text { font-family: system-ui, "Liberation Sans", "DejaVu Sans", Arial, sans-serif; }
svg .slotbg { fill: #eef1f5; }
svg .grid { stroke: #e3e7ee; stroke-width: 1; }
svg .axis { stroke: #8a93a3; stroke-width: 1; }
svg .past { fill: var(--past); }
svg .kept { fill: var(--kept); }
svg .cutoff { stroke: var(--ink); stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .tick { fill: var(--muted); font-size: 11px; }
svg .slot { fill: var(--muted); font-size: 11px; font-style: italic; }
svg .label { fill: var(--ink); font-size: 11.5px; font-weight: 600; }
svg .empty { fill: var(--muted); font-size: 13px; }
@media (max-width: 900px) {
  .rule-grid { grid-template-columns: 1fr; }
  .page { padding: 16px; }
}
@media print {
  /* Landscape: the summary table and the facts beside their chart fit the page as on screen. */
  @page { size: A4 landscape; margin: 10mm; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { font-size: 9pt; }
  .page { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  table.summary { font-size: 7.5pt; }
  th, td, table.summary th, table.summary td { padding: 2px 4px; }
  .status { font-size: 7pt; }
  table.summary td.last-run { font-size: 6.5pt; }
  .table-scroll { overflow: visible; }
  .rule-grid { grid-template-columns: minmax(240px, 300px) 1fr; }
  section.policy { break-before: page; border-top: none; margin-top: 0; }
  article.rule { break-inside: avoid-page; }
  h2, h3, h4, .rule-head { break-after: avoid; }
  tr, figure { break-inside: avoid; }
  details.buckets { display: none; }
}
)css";

std::string esc(std::string_view text) {
  return html_escape(text);
}

// 1234567 -> "1,234,567".
std::string grouped(std::int64_t number) {
  const std::string digits = std::to_string(number);
  const std::size_t sign = (!digits.empty() && digits.front() == '-') ? 1 : 0;
  std::string out = digits.substr(0, sign);
  const std::size_t length = digits.size() - sign;
  for (std::size_t i = 0; i < length; ++i) {
    if (i > 0 && (length - i) % 3 == 0)
      out += ',';
    out += digits[sign + i];
  }
  return out;
}

// Axis labels: 950, 1.2k, 25k, 3.5M.
std::string compact(double value) {
  if (value >= 1e6)
    return fmt::format("{:g}M", std::round(value / 1e5) / 10.0);
  if (value >= 1e4)
    return fmt::format("{:g}k", std::round(value / 1e2) / 10.0);
  return grouped(static_cast<std::int64_t>(std::llround(value)));
}

std::string instant_text(const std::optional<Instant>& instant) {
  return instant ? format_iso8601(*instant) : std::string{k_none};
}

// "2026-03-01 12:00" for the summary table, the full ISO 8601 text on hover.
std::string short_time(std::string_view iso8601) {
  if (iso8601.size() < 16 || iso8601[10] != 'T')
    return esc(iso8601);
  return fmt::format("<time datetime=\"{0}\" title=\"{0}\">{1} {2}</time>", esc(iso8601),
                     esc(iso8601.substr(0, 10)), esc(iso8601.substr(11, 5)));
}

std::string short_time(const std::optional<Instant>& instant) {
  return instant ? short_time(format_iso8601(*instant)) : std::string{k_none};
}

// The colour class of a rule status: ok green, due amber, stale/refused/error red, keep grey.
std::string_view status_class(std::string_view status) {
  if (status == "ok")
    return "st-ok";
  if (status == "due")
    return "st-due";
  if (status == "stale" || status == "refused" || status == "error")
    return "st-bad";
  return "st-keep";
}

// The colour class of a run result: ok green, partial amber, refused/error red, others grey.
std::string_view result_class(std::string_view result) {
  if (result == "ok")
    return "st-ok";
  if (result == "partial")
    return "st-due";
  if (result == "refused" || result == "error")
    return "st-bad";
  return "st-keep";
}

std::string badge(std::string_view status, std::string_view css_class) {
  return fmt::format("<span class=\"status {}\">{}</span>", css_class, esc(status));
}

// A right-aligned count cell; zeros are dimmed so that what matters stands out.
std::string count_cell(std::int64_t count) {
  return fmt::format("<td class=\"num{}\">{}</td>", count == 0 ? " zero" : "", grouped(count));
}

// The due count, bold when something is due.
std::string due_cell(std::int64_t count) {
  return count > 0 ? fmt::format("<td class=\"num hot\">{}</td>", grouped(count))
                   : count_cell(count);
}

// ---- the age chart --------------------------------------------------------------------------

struct AgeUnit {
  double ms;                 // one unit in milliseconds
  std::string_view suffix;   // "h", "d", "mo", "y"
  std::array<int, 7> steps;  // tick steps to choose from, ascending
};

// Hours for a chart spanning up to 3 days, days up to 4 months, months up to 40 months, then
// years; months and years are average calendar lengths (ticks only, the cutoff is exact).
AgeUnit age_unit(double span_ms) {
  constexpr double day = 86'400'000.0;
  if (span_ms <= 3 * day)
    return {3'600'000.0, "h", {1, 2, 3, 6, 12, 24, 48}};
  if (span_ms < 120 * day)
    return {day, "d", {1, 2, 5, 7, 10, 15, 30}};
  if (span_ms < 40 * 30.436875 * day)
    return {30.436875 * day, "mo", {1, 2, 3, 6, 12, 24, 36}};
  return {365.2425 * day, "y", {1, 2, 5, 10, 20, 50, 100}};
}

// The largest number of x-axis ticks before labels crowd each other.
constexpr double k_max_ticks = 8;

double tick_step(const AgeUnit& unit, double span_units) {
  for (const int step : unit.steps)
    if (std::floor(span_units / step) + 1 <= k_max_ticks)
      return step;
  return std::ceil(span_units / (k_max_ticks - 1));
}

// 1, 2 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double factor : {1.0, 2.0, 5.0, 10.0})
    if (factor * magnitude >= raw)
      return factor * magnitude;
  return 10.0 * magnitude;
}

double ms_of(milliseconds duration) {
  return static_cast<double>(duration.count());
}

// What one bar stands for, shown when hovering it.
std::string bucket_tooltip(const AgeBucket& bucket, Instant as_of) {
  std::string range;
  if (!bucket.max_age)
    range = fmt::format("anchors before {}", format_iso8601(as_of - *bucket.min_age));
  else if (!bucket.min_age)
    range =
        fmt::format("anchors after {} (in the future)", format_iso8601(as_of - *bucket.max_age));
  else
    range = fmt::format("anchors from {} to {}", format_iso8601(as_of - *bucket.max_age),
                        format_iso8601(as_of - *bucket.min_age));
  return fmt::format("{}: {} rows, {}", range, grouped(bucket.rows),
                     bucket.past_cutoff ? "past the cutoff" : "within retention");
}

// The exact numbers behind the chart, folded away (and not printed).
std::string bucket_table(const RuleReport& entry, Instant as_of) {
  std::string out = "<details class=\"buckets\"><summary>Rows per age bucket</summary><table>"
                    "<thead><tr><th>anchors from</th><th>to</th><th class=\"num\">rows</th>"
                    "<th>past the cutoff</th></tr></thead><tbody>";
  for (const AgeBucket& bucket : entry.ages) {
    out += fmt::format("<tr><td class=\"time\">{}</td><td class=\"time\">{}</td>{}<td>{}</td></tr>",
                       bucket.max_age ? format_iso8601(as_of - *bucket.max_age) : "(older)",
                       bucket.min_age ? format_iso8601(as_of - *bucket.min_age) : "(future)",
                       count_cell(bucket.rows), bucket.past_cutoff ? "yes" : "no");
  }
  out += "</tbody></table></details>";
  return out;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    case '\'': out += "&#39;"; break;
    default: out += c;
    }
  }
  return out;
}

std::string age_chart_svg(const RuleReport& entry, Instant as_of) {
  const AgeBucket* older = nullptr;
  const AgeBucket* future = nullptr;
  std::vector<const AgeBucket*> inner;
  for (const AgeBucket& bucket : entry.ages) {
    if (!bucket.max_age)
      older = &bucket;
    else if (!bucket.min_age)
      future = &bucket;
    else
      inner.push_back(&bucket);
  }
  if (inner.empty())
    return {};

  double age_max = 0, age_min = ms_of(*inner.front()->min_age);
  std::int64_t max_rows = 0;
  for (const AgeBucket* bucket : inner) {
    age_max = std::max(age_max, ms_of(*bucket->max_age));
    age_min = std::min(age_min, ms_of(*bucket->min_age));
  }
  for (const AgeBucket& bucket : entry.ages)
    max_rows = std::max(max_rows, bucket.rows);
  if (age_max <= age_min)
    return {};

  // Geometry, in SVG user units: plot area, one slot per bucket, the open-ended "older" and
  // "future" buckets set apart by a gap.
  constexpr double width = 720, height = 262, left = 62, right = 14, top = 30, bottom = 60;
  constexpr double plot_w = width - left - right, plot_h = height - top - bottom,
                   base = top + plot_h;
  constexpr double gap = 10;
  const double slot = (plot_w - 2 * gap) / static_cast<double>(inner.size() + 2);
  const double inner_x0 = left + slot + gap;
  const double inner_x1 = inner_x0 + slot * static_cast<double>(inner.size());
  const double future_x = inner_x1 + gap;
  const auto x_of_age = [&](double age) {
    return inner_x0 + (age_max - age) / (age_max - age_min) * (inner_x1 - inner_x0);
  };

  // Whole rows per grid line, about four lines.
  const double y_step =
      max_rows > 0 ? std::max(1.0, nice_step(static_cast<double>(max_rows) / 4.0)) : 1.0;
  const double y_max =
      max_rows > 0 ? y_step * std::ceil(static_cast<double>(max_rows) / y_step) : 4.0;
  const auto y_of = [&](double rows) { return base - rows / y_max * plot_h; };

  std::string out = fmt::format(
      "<svg viewBox=\"0 0 {} {}\" role=\"img\" aria-labelledby=\"chart-{}\">"
      "<title id=\"chart-{}\">Rows of rule {} by age of their anchor, against the cutoff</title>",
      width, height, esc(entry.rule->id), esc(entry.rule->id), esc(entry.rule->id));

  // The open-ended buckets sit on a tinted background of their own.
  for (const auto& [bucket, x] : {std::pair{older, left}, std::pair{future, future_x}})
    if (bucket)
      out += fmt::format(
          "<rect class=\"slotbg\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>",
          x, top, slot, plot_h);

  // Horizontal grid and row counts.
  for (double v = 0; v <= y_max + y_step / 2; v += y_step) {
    const double y = y_of(v);
    out += fmt::format(
        "<line class=\"grid\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", left, y,
        width - right, y);
    if (max_rows > 0 || v == 0)
      out += fmt::format(
          "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>", left - 8,
          y + 4, compact(v));
  }
  out += fmt::format("<text class=\"tick\" x=\"14\" y=\"{:.1f}\" text-anchor=\"middle\" "
                     "transform=\"rotate(-90 14 {:.1f})\">rows</text>",
                     top + plot_h / 2, top + plot_h / 2);

  // Bars.
  const auto bar = [&](const AgeBucket& bucket, double x0, double x1) {
    if (bucket.rows <= 0)
      return;
    const double h = std::max(1.0, base - y_of(static_cast<double>(bucket.rows)));
    out += fmt::format(
        "<rect class=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\">"
        "<title>{}</title></rect>",
        bucket.past_cutoff ? "past" : "kept", x0 + 1, base - h, std::max(1.0, x1 - x0 - 2), h,
        esc(bucket_tooltip(bucket, as_of)));
  };
  if (older)
    bar(*older, left, left + slot);
  for (const AgeBucket* bucket : inner)
    bar(*bucket, x_of_age(ms_of(*bucket->max_age)), x_of_age(ms_of(*bucket->min_age)));
  if (future)
    bar(*future, future_x, future_x + slot);
  out +=
      fmt::format("<line class=\"axis\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>",
                  left, base, width - right, base);
  if (max_rows == 0)
    out += fmt::format("<text class=\"empty\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">"
                       "no dated rows</text>",
                       left + plot_w / 2, top + plot_h / 2);

  // Age ticks, in the unit that suits the span; the right end of the inner buckets is now.
  const AgeUnit unit = age_unit(age_max);
  const double step = tick_step(unit, age_max / unit.ms);
  // Calendar years and months are not all of average length: a tick a little past the oldest
  // bucket edge still belongs on it.
  const double slack = 0.005 * (age_max - age_min);
  for (double k = std::ceil(age_min / unit.ms / step) * step; k * unit.ms <= age_max + slack;
       k += step) {
    const double x = std::max(inner_x0, x_of_age(k * unit.ms));
    out += fmt::format(
        "<line class=\"axis\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", x, base,
        x, base + 5);
    out += fmt::format(
        "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>", x,
        base + 18, k == 0 ? std::string{"now"} : fmt::format("{:g} {}", k, unit.suffix));
  }
  if (older)
    out += fmt::format(
        "<text class=\"slot\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"start\">older</text>", left,
        base + 34);
  if (future)
    out += fmt::format(
        "<text class=\"slot\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">future</text>",
        future_x + slot, base + 34);

  // The cutoff: records left of the line are past it.
  if (entry.cutoff) {
    const double cutoff_age = ms_of(as_of - *entry.cutoff);
    if (cutoff_age >= age_min && cutoff_age <= age_max) {
      const double x = x_of_age(cutoff_age);
      out += fmt::format(
          "<line class=\"cutoff\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>", x,
          top - 8, x, base);
      const std::string_view anchor =
          x > width - 140 ? "end" : (x < left + 140 ? "start" : "middle");
      const Retention& retain = entry.rule->retain;
      out += fmt::format(
          "<text class=\"label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">cutoff {} "
          "({})</text>",
          x, top - 13, anchor, esc(format_iso8601(*entry.cutoff)),
          retain.count == 0 ? std::string{"now: nothing is retained"}
                            : esc(retain.to_string()) + " ago");
    }
  }

  // Legend and axis title.
  const double legend_y = height - 8;
  out += fmt::format(
      "<rect class=\"past\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"11\" height=\"11\"/>"
      "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">past the cutoff (due, held or refused)</text>"
      "<rect class=\"kept\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"11\" height=\"11\"/>"
      "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\">within retention</text>",
      left, legend_y - 10, left + 16, legend_y, left + 238, legend_y - 10, left + 254, legend_y);
  out += fmt::format(
      "<text class=\"tick\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">age of the anchor "
      "on {}</text>",
      width - right, legend_y, esc(format_iso8601(as_of)));
  out += "</svg>";
  return out;
}

namespace {

void write_head(std::string& out, const Report& report) {
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
         "style-src 'unsafe-inline'; img-src data:\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += fmt::format("<meta name=\"generator\" content=\"retentiond {}\">\n", RETENTIOND_VERSION);
  out +=
      fmt::format("<title>Retention report, as of {}</title>\n", esc(format_iso8601(report.as_of)));
  out += "<style>";
  out += k_style;
  out += "</style>\n</head>\n<body>\n<div class=\"page\">\n";
}

void write_header(std::string& out, const Report& report) {
  const AuditVerification& audit = report.audit;
  out += "<header class=\"report-head\">\n<h1>Retention report</h1>\n";
  out +=
      "<p class=\"lede\">What each retention rule would delete or anonymize at the moment below, "
      "and what enforcement has done so far. Produced by <code>retentiond report</code>, a dry "
      "run: nothing was changed to produce it.</p>\n";
  if (!audit.ok) {
    out += "<div class=\"alert\" id=\"audit-broken\" role=\"alert\"><strong>Audit log chain is "
           "BROKEN</strong>";
    out += esc(audit.problem);
    if (audit.bad_seq)
      out += fmt::format(" (first failing entry: {})", *audit.bad_seq);
    out += ". The audit log has been altered or damaged: the enforcement history in this report "
           "cannot be trusted until this is explained.</div>\n";
  }
  out += "<dl class=\"meta\">\n";
  out += fmt::format("<dt>Generated</dt><dd>{}</dd>\n", esc(format_iso8601(report.generated_at)));
  out += fmt::format("<dt>Due as of</dt><dd>{}</dd>\n", esc(format_iso8601(report.as_of)));
  out += fmt::format("<dt>Config digest</dt><dd><code class=\"hash\">{}</code></dd>\n",
                     esc(report.config_digest));
  out += fmt::format("<dt>Audit head hash</dt><dd><code class=\"hash\">{}</code></dd>\n",
                     esc(audit.head_hash));
  out += fmt::format("<dt>Audit chain</dt><dd><span class=\"chain {}\">{}</span> "
                     "<span class=\"muted\">({} entries checked)</span></dd>\n",
                     audit.ok ? "verified" : "broken", audit.ok ? "verified" : "BROKEN",
                     grouped(audit.entries));
  out += "</dl>\n</header>\n";
}

void write_summary(std::string& out, const Report& report, const std::vector<PolicyGroup>& groups) {
  out += "<section class=\"summary\" id=\"summary\">\n<h2>Summary</h2>\n";
  out +=
      "<div class=\"table-scroll\"><table class=\"summary\" "
      "id=\"summary-table\">\n<thead><tr><th>Rule</th><th>Status</th>"
      "<th>Action</th><th>Retain</th><th>Cutoff (UTC)</th><th class=\"num\">Due</th>"
      "<th class=\"num\">Held</th><th class=\"num\">Undated</th><th class=\"num\">Unreadable</th>"
      "<th class=\"num\">Refused</th><th class=\"num\">Future</th><th class=\"num\">Total</th>"
      "<th title=\"how long the oldest due record is past the cutoff\">Overshoot</th><th>Last run "
      "(UTC)</th></tr></thead>\n<tbody>\n";
  std::map<std::string, int> by_status;
  for (const RuleReport& entry : report.rules) {
    const Rule& rule = *entry.rule;
    const adapters::RuleCounts& c = entry.counts;
    ++by_status[entry.status];
    std::string last_run{k_none};
    if (!entry.last_runs.empty()) {
      const RunRecord& run = entry.last_runs.front();
      last_run = fmt::format("{}<br><span class=\"muted\">{}</span>",
                             badge(run.result, result_class(run.result)), short_time(run.started));
    }
    out += fmt::format(
        "<tr><td><a href=\"#rule-{}\">{}</a></td>"
        "<td class=\"status-cell\"{}>{}</td><td>{}</td><td>{}</td><td class=\"time\">{}</td>",
        esc(rule.id), esc(rule.id),
        entry.message.empty() ? "" : fmt::format(" title=\"{}\"", esc(entry.message)),
        badge(entry.status, status_class(entry.status)), esc(to_string(rule.action)),
        esc(rule.retain.to_string()), short_time(entry.cutoff));
    // Keep rules and failed rules are not counted: say so rather than show misleading zeros.
    if (rule.action == Action::keep)
      out += "<td colspan=\"7\" class=\"muted uncounted\">not counted: kept forever</td>";
    else if (entry.status == "error")
      out += "<td colspan=\"7\" class=\"muted uncounted\">not counted: the rule failed</td>";
    else
      out += due_cell(c.due) + count_cell(c.held) + count_cell(c.undated) +
             count_cell(c.unreadable) + count_cell(refused_rows(c)) + count_cell(c.future) +
             count_cell(c.total);
    out += fmt::format("<td class=\"time\">{}</td><td class=\"time last-run\">{}</td></tr>\n",
                       entry.worst_overshoot ? esc(human_duration(*entry.worst_overshoot)) : k_none,
                       last_run);
  }
  out += "</tbody>\n</table></div>\n";
  std::vector<std::string> parts;
  for (const std::string_view status : {"ok", "due", "stale", "refused", "error", "keep"})
    if (const auto found = by_status.find(std::string{status}); found != by_status.end())
      parts.push_back(fmt::format("{} {}", found->second, status));
  out += fmt::format("<p class=\"totals\">{} rules: {}.</p>\n", report.rules.size(),
                     fmt::join(parts, ", "));
  out += "<nav class=\"clauses\"><h4>Policy clauses</h4><ol>\n";
  for (std::size_t i = 0; i < groups.size(); ++i)
    out += fmt::format(
        "<li><a href=\"#policy-{}\">{}</a> <span class=\"muted\">({} rule{})</span></li>\n", i + 1,
        groups[i].policy.empty() ? "No policy cited" : esc(groups[i].policy),
        groups[i].rules.size(), groups[i].rules.size() == 1 ? "" : "s");
  out += "</ol></nav>\n</section>\n";
}

void write_runs(std::string& out, const RuleReport& entry) {
  out += "<h4>Last runs</h4>\n";
  if (entry.last_runs.empty()) {
    out += "<p class=\"muted\">No run recorded.</p>\n";
    return;
  }
  out += "<table class=\"runs\"><thead><tr><th>Started</th><th>Finished</th><th>Result</th>"
         "<th class=\"num\">Rows</th><th>Message</th></tr></thead><tbody>\n";
  for (const RunRecord& run : entry.last_runs)
    out += fmt::format(
        "<tr><td class=\"time\">{}</td><td class=\"time\">{}</td><td>{}</td>{}<td>{}</td></tr>\n",
        esc(run.started), run.finished.empty() ? k_none : esc(run.finished),
        badge(run.result, result_class(run.result)), count_cell(run.rows), esc(run.message));
  out += "</tbody></table>\n";
}

void write_rule(std::string& out, const RuleReport& entry, Instant as_of) {
  const Rule& rule = *entry.rule;
  const adapters::RuleCounts& c = entry.counts;
  const std::string_view css = status_class(entry.status);
  out += fmt::format(
      "<article class=\"rule{}\" id=\"rule-{}\">\n<div class=\"rule-head\"><h3><code>{}</code>"
      "</h3>{}</div>\n",
      css == "st-bad" ? " bad" : (css == "st-due" ? " due" : ""), esc(rule.id), esc(rule.id),
      badge(entry.status, css));
  if (!rule.description.empty())
    out += fmt::format("<p class=\"description\">{}</p>\n", esc(rule.description));
  if (!entry.message.empty())
    out += fmt::format("<p class=\"message {}\">{}</p>\n", css, esc(entry.message));

  out += "<div class=\"rule-grid\">\n<dl class=\"facts\">\n";
  const auto fact = [&](std::string_view name, const std::string& html) {
    out += fmt::format("<dt>{}</dt><dd>{}</dd>\n", name, html);
  };
  const auto count_fact = [&](std::string_view name, std::int64_t count) {
    out += fmt::format("<dt>{}</dt><dd class=\"num\">{}</dd>\n", name, grouped(count));
  };
  fact("Datastore", fmt::format("<code>{}</code>", esc(rule.datastore)));
  fact("Target", fmt::format("<code>{}</code>", esc(report_target(rule))));
  fact("Action", esc(to_string(rule.action)));
  fact("Retain", esc(rule.retain.to_string()));
  fact("Schedule", esc(rule.schedule.text));
  fact("Cutoff", esc(instant_text(entry.cutoff)));
  if (rule.action != Action::keep && entry.status == "error") {
    out += "<div class=\"sep\"></div>\n";
    fact("Rows", "<span class=\"muted\">not counted: the rule failed</span>");
  } else if (rule.action != Action::keep) {
    out += "<div class=\"sep\"></div>\n";
    count_fact("Due", c.due);
    count_fact("Held", c.held);
    count_fact("Undated", c.undated);
    count_fact("Unreadable", c.unreadable);
    count_fact("Refused", refused_rows(c));
    count_fact("Future", c.future);
    count_fact("Total", c.total);
    fact("Oldest due", esc(instant_text(c.oldest_due)));
    fact("Worst overshoot",
         entry.worst_overshoot ? esc(human_duration(*entry.worst_overshoot)) : std::string{k_none});
  }
  out += "</dl>\n<figure class=\"chart\">";
  const std::string chart = age_chart_svg(entry, as_of);
  if (!chart.empty()) {
    out += chart;
    out += "<figcaption>Rows by the age of their anchor. Bars left of the cutoff line are past it; "
           "held rows are included.</figcaption>";
    out += bucket_table(entry, as_of);
  } else if (rule.action == Action::keep) {
    out += "<p class=\"note\">Kept without limit (retain forever): there is no cutoff and nothing "
           "is ever due.</p>";
  } else {
    out += "<p class=\"note\">No age chart: the rule's rows could not be counted.</p>";
  }
  out += "</figure>\n</div>\n";
  write_runs(out, entry);
  out += "</article>\n";
}

}  // namespace

std::string report_html(const Report& report) {
  const std::vector<PolicyGroup> groups = group_by_policy(report);
  std::string out;
  write_head(out, report);
  write_header(out, report);
  out += "<main>\n";
  write_summary(out, report, groups);
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const PolicyGroup& group = groups[i];
    out += fmt::format(
        "<section class=\"policy\" id=\"policy-{}\">\n<h2><span class=\"kicker\">Policy "
        "clause</span>{}</h2>\n",
        i + 1, group.policy.empty() ? "No policy cited" : esc(group.policy));
    std::vector<std::string> links;
    for (const RuleReport* entry : group.rules)
      links.push_back(fmt::format("<a href=\"#rule-{}\"><code>{}</code></a>", esc(entry->rule->id),
                                  esc(entry->rule->id)));
    out += fmt::format("<p class=\"cites\">Cited by {}.</p>\n", fmt::join(links, ", "));
    for (const RuleReport* entry : group.rules)
      write_rule(out, *entry, report.as_of);
    out += "</section>\n";
  }
  out += "</main>\n";
  out += fmt::format(
      "<footer>retentiond {} · generated {} · config digest <code class=\"hash\">{}</code>"
      "</footer>\n",
      RETENTIOND_VERSION, esc(format_iso8601(report.generated_at)), esc(report.config_digest));
  out += "</div>\n</body>\n</html>\n";
  return out;
}

}  // namespace retentiond
