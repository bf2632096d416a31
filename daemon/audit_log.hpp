#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace retentiond {

// One entry of the hash-chained audit log. Entries hold counts, cutoffs and rule ids — never the
// values that were deleted.
struct AuditEntry {
  std::int64_t seq = 0;       // 1, 2, 3, ... without gaps
  std::string time;           // ISO 8601 UTC, e.g. "2026-11-23T19:00:00.250Z"
  std::string kind;           // run_start, batch, rule_done, refused, hold_add, hold_release,
                              // config, error, run_done
  std::string rule;           // rule id, or empty when the entry is not about one rule
  std::int64_t rows = 0;      // rows changed by this entry (cascade children and files included)
  std::string detail = "{}";  // a JSON object, serialized canonically by its writer
  std::string prev_hash;      // hash of the previous entry; 64 zeros for the first
  std::string hash;           // chain_hash(prev_hash, canonical_entry(*this), key)
};

// The hash of the entry before the first one.
inline constexpr std::string_view k_genesis_hash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// The exact bytes that are hashed for an entry: the JSON array
// [seq,"time","kind","rule",rows,"detail"] (detail as a JSON string), without prev_hash/hash.
std::string canonical_entry(const AuditEntry& entry);

// SHA-256(prev_hash || canonical), or HMAC-SHA-256 under `key` when an audit key is configured.
std::string chain_hash(std::string_view prev_hash, std::string_view canonical,
                       const std::optional<std::string>& key);

// The result of walking the whole chain.
struct AuditVerification {
  bool ok = true;
  std::int64_t entries = 0;             // entries checked
  std::string head_hash;                // hash of the last entry (k_genesis_hash when empty)
  std::optional<std::int64_t> bad_seq;  // first entry that fails, when !ok
  std::string problem;                  // e.g. "entry 7: hash does not match its content"
};

// The last entry of a chain: its seq and hash. nullopt for an empty log.
using ChainHead = std::optional<std::pair<std::int64_t, std::string>>;

// The entry that follows `head`, stamped now and hashed: every state backend appends through
// it. Throws std::runtime_error when `detail_json` is not a JSON object.
AuditEntry next_audit_entry(const ChainHead& head, std::string_view kind, std::string_view rule,
                            std::int64_t rows, std::string detail_json,
                            const std::optional<std::string>& key);

// Which audit key a chain is written with, without revealing it: an HMAC of a fixed text under
// the key, or "none". A state records it with its first entry.
std::string audit_key_fingerprint(const std::optional<std::string>& key);

// Why entries written under `key` would not verify in a chain whose state recorded the
// fingerprint `recorded` (e.g. "its audit chain is keyed, but state.audit_key_file is not
// set"); nullopt when the key is the chain's.
std::optional<std::string> audit_key_mismatch(std::string_view recorded,
                                              const std::optional<std::string>& key);

// Throws when entries under `key` would not chain onto a log whose first entry is `first`:
// for a log written before its key's fingerprint was recorded, the first entry tells which key
// it has.
void require_first_entry_under_key(const AuditEntry& first, const std::optional<std::string>& key);

// The verification of a chain that cannot be checked under the configured key, for the reason
// audit_key_mismatch gave: not ok, and no entry is named.
AuditVerification unverifiable_under_key(const std::string& mismatch);

// Checks a chain fed entry by entry in seq order: seq contiguous from 1, each prev_hash equal to
// the previous hash, each hash matching its content. Detects edited, deleted and reordered
// entries.
class ChainVerifier {
public:
  explicit ChainVerifier(std::optional<std::string> key);
  void add(const AuditEntry& entry);
  const AuditVerification& result() const { return m_result; }

private:
  std::optional<std::string> m_key;
  AuditVerification m_result;
  std::int64_t m_expected_seq = 1;
  std::string m_prev_hash;
};

// The digest a `config` entry records: the string value of the top-level key "digest" in its
// detail, or nullopt.
std::optional<std::string> config_digest_of(std::string_view detail_json);

// The entry as one JSON object line: {"seq":..,"time":..,"kind":..,"rule":..,"rows":..,
// "detail":{..},"prev_hash":..,"hash":..}. An empty rule is written as null.
std::string audit_entry_json(const AuditEntry& entry);

}  // namespace retentiond
