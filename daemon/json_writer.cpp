#include "daemon/json_writer.hpp"

#include <array>
#include <charconv>
#include <cmath>

namespace retentiond {

void JsonWriter::separate() {
  // A value right after its key belongs to that key: no comma.
  if (m_after_key) {
    m_after_key = false;
    return;
  }
  if (!m_first_in_scope.back())
    m_out += ',';
  m_first_in_scope.back() = false;
}

void JsonWriter::begin_object() {
  separate();
  m_out += '{';
  m_first_in_scope.push_back(true);
}

void JsonWriter::end_object() {
  // Keep the top-level scope even if the caller closes one scope too many.
  if (m_first_in_scope.size() > 1)
    m_first_in_scope.pop_back();
  m_out += '}';
}

void JsonWriter::begin_array() {
  separate();
  m_out += '[';
  m_first_in_scope.push_back(true);
}

void JsonWriter::end_array() {
  if (m_first_in_scope.size() > 1)
    m_first_in_scope.pop_back();
  m_out += ']';
}

void JsonWriter::key(std::string_view name) {
  separate();
  m_out += json_quote(name);
  m_out += ':';
  m_after_key = true;
}

void JsonWriter::value(std::string_view text) {
  separate();
  m_out += json_quote(text);
}

void JsonWriter::value(std::int64_t number) {
  separate();
  std::array<char, 24> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), number);
  m_out.append(buffer.data(), result.ptr);
}

void JsonWriter::value(double number) {
  // JSON has no NaN or infinity.
  if (!std::isfinite(number)) {
    null();
    return;
  }
  separate();
  // The shortest text that reads back as the same double ("0.5", "1e+21", "100").
  std::array<char, 32> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), number);
  m_out.append(buffer.data(), result.ptr);
}

void JsonWriter::value(bool flag) {
  separate();
  m_out += flag ? "true" : "false";
}

void JsonWriter::null() {
  separate();
  m_out += "null";
}

void JsonWriter::value(const std::optional<std::string>& text) {
  if (text)
    value(std::string_view{*text});
  else
    null();
}

void JsonWriter::raw(std::string_view json) {
  separate();
  m_out += json;
}

std::string json_quote(std::string_view text) {
  constexpr std::string_view k_hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char c : text) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default: {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20) {
        out += "\\u00";
        out += k_hex[byte >> 4];
        out += k_hex[byte & 0x0f];
      } else {
        out += c;  // UTF-8 sequences pass through untouched
      }
    }
    }
  }
  out += '"';
  return out;
}

}  // namespace retentiond
