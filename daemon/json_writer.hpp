#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace retentiond {

// Builds compact JSON text in the order values are added (which makes it canonical when the
// caller always adds keys in the same order). Usage:
//   JsonWriter json; json.begin_object(); json.key("rows"); json.value(int64_t{3});
//   json.end_object();
// The writer does not validate nesting beyond inserting commas; callers pair begin/end.
class JsonWriter {
public:
  void begin_object();
  void end_object();
  void begin_array();
  void end_array();
  void key(std::string_view name);
  void value(std::string_view text);
  void value(const char* text) { value(std::string_view{text}); }
  void value(const std::string& text) { value(std::string_view{text}); }
  void value(std::int64_t number);
  void value(double number);
  void value(bool flag);
  void null();
  // An optional string: the text, or null when empty.
  void value(const std::optional<std::string>& text);
  // Inserts already-serialized JSON (e.g. a stored detail object) verbatim.
  void raw(std::string_view json);

  // Convenience: key + value.
  template <typename T> void field(std::string_view name, const T& v) {
    key(name);
    value(v);
  }

  const std::string& str() const { return m_out; }

private:
  void separate();

  std::string m_out;
  std::vector<bool> m_first_in_scope{true};
  bool m_after_key = false;
};

// `text` as a JSON string literal, quotes included. A byte that is not part of well-formed
// UTF-8 is written as the text \xff (JSON is UTF-8).
std::string json_quote(std::string_view text);

// The same, but every byte of `text` outside the escapes passes through as it is: for the
// audit chain's canonical form, which must tell apart every stored byte string (\xff written
// as text and the byte 0xff hash differently) and stay what it always was.
std::string json_quote_bytes(std::string_view text);

}  // namespace retentiond
