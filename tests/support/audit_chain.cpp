#include "tests/support/audit_chain.hpp"

#include <spdlog/fmt/fmt.h>

#include <optional>

namespace retentiond::test {

std::string chained_entries_sql(const AuditEntry& head, std::int64_t count) {
  std::string sql =
      "INSERT INTO audit(seq, time, kind, rule, rows, detail, prev_hash, hash) VALUES";
  ChainHead last{{head.seq, head.hash}};
  for (std::int64_t i = 0; i < count; ++i) {
    const AuditEntry entry =
        next_audit_entry(last, "batch", i % 2 == 0 ? "a" : "b", 1, "{}", std::nullopt);
    sql += fmt::format("{}({}, '{}', '{}', '{}', {}, '{}', '{}', '{}')", i == 0 ? " " : ", ",
                       entry.seq, entry.time, entry.kind, entry.rule, entry.rows, entry.detail,
                       entry.prev_hash, entry.hash);
    last.emplace(entry.seq, entry.hash);
  }
  return sql;
}

}  // namespace retentiond::test
