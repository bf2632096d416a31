#include "daemon/audit_log.hpp"

#include "daemon/digest.hpp"
#include "daemon/json_writer.hpp"

#include <string>

namespace retentiond {

std::string canonical_entry(const AuditEntry& entry) {
  // The order and shape are part of the chain format: changing them breaks every stored log.
  JsonWriter json;
  json.begin_array();
  json.value(entry.seq);
  json.value(entry.time);
  json.value(entry.kind);
  json.value(entry.rule);
  json.value(entry.rows);
  json.value(entry.detail);  // as a string, so the hash covers the exact stored bytes
  json.end_array();
  return json.str();
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

}  // namespace retentiond
