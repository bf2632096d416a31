#include "daemon/pending_files.hpp"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <charconv>

namespace retentiond {
namespace {

constexpr std::string_view k_hex_digits = "0123456789abcdef";

std::optional<int> hex_value(char c) {
  const std::size_t at = k_hex_digits.find(c);
  if (at == std::string_view::npos)
    return std::nullopt;
  return static_cast<int>(at);
}

template <typename Number> std::optional<Number> number_of(std::string_view text) {
  Number value{};
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

std::optional<PendingFiles> decode(std::string_view text) {
  PendingFiles pending;
  std::size_t line_end = text.find('\n');
  if (line_end == std::string_view::npos)
    return std::nullopt;
  pending.token = std::string{text.substr(0, line_end)};
  for (std::size_t begin = line_end + 1; begin < text.size(); begin = line_end + 1) {
    line_end = text.find('\n', begin);
    if (line_end == std::string_view::npos)
      return std::nullopt;
    std::string_view line = text.substr(begin, line_end - begin);
    // The three numbers, each followed by a space; the rest is the path.
    std::string_view numbers[3];
    for (std::string_view& number : numbers) {
      const std::size_t space = line.find(' ');
      if (space == std::string_view::npos)
        return std::nullopt;
      number = line.substr(0, space);
      line.remove_prefix(space + 1);
    }
    const auto device = number_of<std::uint64_t>(numbers[0]);
    const auto inode = number_of<std::uint64_t>(numbers[1]);
    const auto born = number_of<std::int64_t>(numbers[2]);
    const std::string_view hex = line;
    if (!device || !inode || !born || hex.size() % 2 != 0)
      return std::nullopt;
    PendingFile file{{}, *device, *inode, *born};
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      const auto high = hex_value(hex[i]);
      const auto low = hex_value(hex[i + 1]);
      if (!high || !low)
        return std::nullopt;
      file.path += static_cast<char>((*high << 4) | *low);
    }
    pending.files.push_back(std::move(file));
  }
  return pending;
}

}  // namespace

std::string encode_pending_files(const PendingFiles& pending) {
  std::string text = pending.token + '\n';
  for (const PendingFile& file : pending.files) {
    text += fmt::format("{} {} {} ", file.device, file.inode, file.born_ns);
    for (const char c : file.path) {
      const auto byte = static_cast<unsigned char>(c);
      text += k_hex_digits[byte >> 4];
      text += k_hex_digits[byte & 0x0f];
    }
    text += '\n';
  }
  return text;
}

std::optional<PendingFiles> decode_pending_files(std::string_view text, std::string_view rule) {
  auto pending = decode(text);
  if (!pending)
    spdlog::warn("rule {}: the state's record of the files its last batch was removing is "
                 "damaged; it is not used",
                 rule);
  return pending;
}

}  // namespace retentiond
