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

namespace {

// The length of the well-formed UTF-8 sequence at the start of `text` (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when it starts with a byte that begins
// none.
std::size_t utf8_sequence_length(std::string_view text) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xbf;
  if (lead < 0x80)
    return 1;
  if (lead >= 0xc2 && lead <= 0xdf)
    length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    low = lead == 0xe0 ? 0xa0 : 0x80;
    high = lead == 0xed ? 0x9f : 0xbf;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    low = lead == 0xf0 ? 0x90 : 0x80;
    high = lead == 0xf4 ? 0x8f : 0xbf;
  } else {
    return 0;
  }
  if (text.size() < length || byte(1) < low || byte(1) > high)
    return 0;
  for (std::size_t i = 2; i < length; ++i)
    if (byte(i) < 0x80 || byte(i) > 0xbf)
      return 0;
  return length;
}

// `text` as a JSON string literal; `utf8_only`: bytes that are not UTF-8 are written as \xff.
std::string quote(std::string_view text, bool utf8_only) {
  constexpr std::string_view k_hex = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  while (!text.empty()) {
    const char c = text.front();
    const auto byte = static_cast<unsigned char>(c);
    std::size_t used = 1;
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    case '\b': out += "\\b"; break;
    case '\f': out += "\\f"; break;
    default:
      if (byte < 0x20) {
        out += "\\u00";
        out += k_hex[byte >> 4];
        out += k_hex[byte & 0x0f];
      } else if (!utf8_only) {
        out += c;
      } else if (const std::size_t length = utf8_sequence_length(text); length > 0) {
        used = length;
        out += text.substr(0, length);
      } else {
        // JSON is UTF-8 (RFC 8259): a byte that is not (a file name, a value from the
        // datastore) is written as the text \xff, which names it and keeps the line valid.
        out += "\\\\x";
        out += k_hex[byte >> 4];
        out += k_hex[byte & 0x0f];
      }
    }
    text.remove_prefix(used);
  }
  out += '"';
  return out;
}

}  // namespace

std::string json_quote(std::string_view text) {
  return quote(text, true);
}

std::string json_quote_bytes(std::string_view text) {
  return quote(text, false);
}

}  // namespace retentiond
