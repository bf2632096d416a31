#include "daemon/state_store.hpp"

#include "daemon/digest.hpp"
#include "daemon/json_writer.hpp"

#include <limits>
#include <utility>

namespace retentiond {

std::string pending_files_key(std::string_view rule) {
  return "pending_files:" + std::string{rule};
}

bool Hold::active_at(Instant now) const {
  if (released)
    return false;
  if (!until)
    return true;
  const auto end = parse_iso8601(*until);
  // An unreadable end keeps the hold active: a hold errs on the side of not deleting.
  if (!end)
    return true;
  return now < *end;
}

bool AuditFilter::admits_time(const AuditEntry& entry) const {
  if (!since)
    return true;
  // Compared as instants: the text form drops ".000", so strings do not sort by time.
  const auto time = parse_iso8601(entry.time);
  return !time || *time >= *since;
}

std::optional<std::int64_t> visit_audit_page(const std::vector<AuditEntry>& page,
                                             const AuditFilter& filter,
                                             const std::function<void(const AuditEntry&)>& visit) {
  for (const AuditEntry& entry : page)
    if (filter.admits_time(entry))
      visit(entry);
  if (page.size() < static_cast<std::size_t>(k_audit_page_entries) ||
      page.back().seq == std::numeric_limits<std::int64_t>::max())
    return std::nullopt;
  return page.back().seq + 1;
}

std::vector<AuditEntry> StateStore::audit_entries(const AuditFilter& filter) const {
  std::vector<AuditEntry> entries;
  for_each_audit_entry(filter, [&](const AuditEntry& entry) { entries.push_back(entry); });
  return entries;
}

std::string subject_digest(std::string_view subject, const std::optional<std::string>& audit_key) {
  return audit_key ? "hmac-sha256:" + hmac_sha256_hex(*audit_key, subject)
                   : "sha256:" + sha256_hex(subject);
}

std::string hold_added_detail(const Hold& hold, const std::optional<std::string>& audit_key) {
  JsonWriter detail;
  detail.begin_object();
  detail.field("hold", hold.id);
  detail.field("subject_digest", hold.subject
                                     ? std::optional{subject_digest(*hold.subject, audit_key)}
                                     : std::nullopt);
  detail.field("rule", hold.rule);
  detail.field("reason", hold.reason);
  detail.field("until", hold.until);
  detail.end_object();
  return detail.str();
}

std::string hold_released_detail(const Hold& hold) {
  JsonWriter detail;
  detail.begin_object();
  detail.field("hold", hold.id);
  detail.field("reason", hold.release_reason.value_or(""));
  detail.end_object();
  return detail.str();
}

}  // namespace retentiond
