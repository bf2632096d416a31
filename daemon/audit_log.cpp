#include "daemon/audit_log.hpp"

#include "daemon/digest.hpp"
#include "daemon/json_writer.hpp"

#include "daemon/timestamp.hpp"

#include <spdlog/fmt/fmt.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace retentiond {

namespace {

// The string value of the top-level key "digest" in a JSON object, or nullopt. A small scanner
// that tracks strings and nesting, so a "digest" inside a string or a nested object never matches.
std::optional<std::string> top_level_digest(std::string_view json) {
  constexpr std::string_view k_key = "digest";
  int depth = 0;
  std::size_t i = 0;
  // Reads the string starting at json[i] == '"'; leaves i after the closing quote.
  auto read_string = [&]() -> std::optional<std::string> {
    std::string out;
    for (++i; i < json.size(); ++i) {
      const char c = json[i];
      if (c == '"') {
        ++i;
        return out;
      }
      if (c == '\\') {
        if (++i >= json.size())
          return std::nullopt;
        // Digests are hex; only the simple escapes matter for skipping over other strings.
        out.push_back(json[i]);
        continue;
      }
      out.push_back(c);
    }
    return std::nullopt;
  };
  auto skip_space = [&]() {
    while (i < json.size() &&
           (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' || json[i] == '\r'))
      ++i;
  };
  bool expect_key = false;
  while (i < json.size()) {
    const char c = json[i];
    if (c == '"') {
      const bool is_key = depth == 1 && expect_key;
      auto text = read_string();
      if (!text)
        return std::nullopt;
      if (is_key) {
        skip_space();
        if (i >= json.size() || json[i] != ':')
          return std::nullopt;
        ++i;
        skip_space();
        if (*text == k_key)
          return (i < json.size() && json[i] == '"') ? read_string() : std::nullopt;
      }
      expect_key = false;
      continue;
    }
    if (c == '{' || c == '[') {
      ++depth;
      expect_key = c == '{' && depth == 1;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == ',') {
      expect_key = depth == 1;
    }
    ++i;
  }
  return std::nullopt;
}

}  // namespace

std::string canonical_entry(const AuditEntry& entry) {
  // The order and shape are part of the chain format: changing them breaks every stored log.
  // Byte-exact quoting, detail as a string: the hash covers the exact stored bytes.
  return fmt::format("[{},{},{},{},{},{}]", entry.seq, json_quote_bytes(entry.time),
                     json_quote_bytes(entry.kind), json_quote_bytes(entry.rule), entry.rows,
                     json_quote_bytes(entry.detail));
}

std::string chain_hash(std::string_view prev_hash, std::string_view canonical,
                       const std::optional<std::string>& key) {
  std::string data;
  data.reserve(prev_hash.size() + canonical.size());
  data.append(prev_hash);
  data.append(canonical);
  if (key)
    return hmac_sha256_hex(*key, data);
  return sha256_hex(data);
}

AuditEntry next_audit_entry(const ChainHead& head, std::string_view kind, std::string_view rule,
                            std::int64_t rows, std::string detail_json,
                            const std::optional<std::string>& key) {
  // The stored detail is hashed verbatim and later emitted raw inside a JSON line, so it must
  // at least look like an object; callers build it with JsonWriter.
  if (detail_json.size() < 2 || detail_json.front() != '{' || detail_json.back() != '}')
    throw std::runtime_error(
        fmt::format("audit detail must be a JSON object, got '{}'", detail_json));
  AuditEntry entry;
  entry.seq = head ? head->first + 1 : 1;
  entry.prev_hash = head ? head->second : std::string{k_genesis_hash};
  entry.time = format_iso8601(now_utc());
  entry.kind = std::string{kind};
  entry.rule = std::string{rule};
  entry.rows = rows;
  entry.detail = std::move(detail_json);
  entry.hash = chain_hash(entry.prev_hash, canonical_entry(entry), key);
  return entry;
}

ChainVerifier::ChainVerifier(std::optional<std::string> key)
    : m_key(std::move(key)), m_prev_hash(k_genesis_hash) {
  m_result.head_hash = std::string{k_genesis_hash};
}

void ChainVerifier::add(const AuditEntry& entry) {
  ++m_result.entries;
  auto fail = [&](std::string problem) {
    m_result.ok = false;
    m_result.bad_seq = entry.seq;
    m_result.problem = std::move(problem);
  };
  // Only the first problem is reported; the walk goes on to count entries and find the head.
  if (m_result.ok) {
    if (entry.seq != m_expected_seq)
      fail(fmt::format("entry {}: expected seq {}", entry.seq, m_expected_seq));
    else if (entry.prev_hash != m_prev_hash)
      fail(fmt::format("entry {}: prev_hash does not match the hash of entry {}", entry.seq,
                       entry.seq - 1));
    else if (chain_hash(entry.prev_hash, canonical_entry(entry), m_key) != entry.hash)
      fail(fmt::format("entry {}: hash does not match its content", entry.seq));
  }
  m_expected_seq = entry.seq + 1;
  m_prev_hash = entry.hash;
  m_result.head_hash = entry.hash;
}

std::optional<std::string> config_digest_of(std::string_view detail_json) {
  return top_level_digest(detail_json);
}

std::string audit_entry_json(const AuditEntry& entry) {
  JsonWriter json;
  json.begin_object();
  json.field("seq", entry.seq);
  json.field("time", entry.time);
  json.field("kind", entry.kind);
  json.key("rule");
  if (entry.rule.empty())
    json.null();
  else
    json.value(entry.rule);
  json.field("rows", entry.rows);
  json.key("detail");
  // An empty detail would make the line invalid JSON; the store never writes one.
  json.raw(entry.detail.empty() ? std::string_view{"{}"} : std::string_view{entry.detail});
  json.field("prev_hash", entry.prev_hash);
  json.field("hash", entry.hash);
  json.end_object();
  return json.str();
}

std::string audit_key_fingerprint(const std::optional<std::string>& key) {
  return key ? hmac_sha256_hex(*key, "retentiond audit key fingerprint") : std::string{"none"};
}

std::optional<std::string> audit_key_mismatch(std::string_view recorded,
                                              const std::optional<std::string>& key) {
  if (recorded == audit_key_fingerprint(key))
    return std::nullopt;
  if (recorded == "none")
    return "its audit chain has no key, but state.audit_key_file is set";
  if (key)
    return "its audit chain is keyed with another key than state.audit_key_file";
  return "its audit chain is keyed, but state.audit_key_file is not set";
}

void require_first_entry_under_key(const AuditEntry& first, const std::optional<std::string>& key) {
  if (chain_hash(first.prev_hash, canonical_entry(first), key) != first.hash)
    throw std::runtime_error(
        "its audit chain's first entry does not verify under state.audit_key_file (or its "
        "absence): set it as it was when the chain began, or see retentiond audit verify");
}

AuditVerification unverifiable_under_key(const std::string& mismatch) {
  AuditVerification result;
  result.ok = false;
  result.problem = mismatch + " (verify with the key the chain was written with)";
  return result;
}

}  // namespace retentiond
