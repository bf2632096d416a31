#pragma once

#include "daemon/audit_log.hpp"

#include <cstdint>
#include <string>

namespace retentiond::test {

// One INSERT into `audit` (either backend's table) of `count` entries chained after `head`
// (unkeyed): `batch` entries of rules "a" and "b" in turn, 1 row each. Run as one statement, a
// log longer than a page of for_each_audit_entry costs no transaction per entry.
std::string chained_entries_sql(const AuditEntry& head, std::int64_t count);

}  // namespace retentiond::test
