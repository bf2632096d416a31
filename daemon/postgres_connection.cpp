#include "daemon/postgres_connection.hpp"

#include <libpq-fe.h>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace retentiond {
namespace {

struct ParsedDsn {
  std::vector<std::pair<std::string, std::string>> options;  // set keywords, in libpq's order
  std::string error;                                         // libpq's reason, when unparsable
};

// libpq's parse errors quote the text they stumbled on, which may be a password (`invalid
// percent-encoded token: "Pa%55w0rd%!"`): a quoted connection keyword is shown, anything else
// is withheld.
std::string without_quoted_values(std::string_view message) {
  std::set<std::string, std::less<>> keywords{"="};
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> defaults(PQconndefaults(),
                                                                        &PQconninfoFree);
  for (const PQconninfoOption* option = defaults.get(); option && option->keyword; ++option)
    keywords.insert(option->keyword);
  std::string out;
  std::size_t at = 0;
  while (true) {
    const std::size_t open = message.find('"', at);
    const std::size_t close = open == std::string_view::npos ? open : message.find('"', open + 1);
    if (close == std::string_view::npos)
      return out.append(message.substr(at));
    const std::string_view token = message.substr(open + 1, close - open - 1);
    if (!keywords.contains(token)) {
      // The value itself may hold quotes: withhold everything up to the message's last one.
      const std::size_t last = message.rfind('"');
      return out.append(message.substr(at, open - at))
          .append("\"...\"")
          .append(message.substr(last + 1))
          .append(" (the quoted text is withheld: it may be a password)");
    }
    out.append(message.substr(at, close + 1 - at));
    at = close + 1;
  }
}

ParsedDsn parse_dsn(std::string_view dsn) {
  ParsedDsn parsed;
  char* error = nullptr;
  const std::string text{dsn};
  std::unique_ptr<PQconninfoOption, decltype(&PQconninfoFree)> options(
      PQconninfoParse(text.c_str(), &error), &PQconninfoFree);
  if (!options) {
    std::string reason = error != nullptr ? error : "out of memory";
    PQfreemem(error);
    // libpq's messages end with a newline.
    while (!reason.empty() && reason.back() == '\n')
      reason.pop_back();
    parsed.error = without_quoted_values(reason);
    return parsed;
  }
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option)
    if (option->val != nullptr)
      parsed.options.emplace_back(option->keyword, option->val);
  return parsed;
}

// A keyword=value value, quoted as libpq reads it.
std::string conninfo_value(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "'";
}

}  // namespace

std::optional<std::string> dsn_problem(std::string_view dsn) {
  ParsedDsn parsed = parse_dsn(dsn);
  if (!parsed.error.empty())
    return parsed.error;
  return std::nullopt;
}

std::string connection_string(std::string_view dsn, const std::optional<std::string>& password,
                              std::string_view extra_options) {
  ParsedDsn parsed = parse_dsn(dsn);
  if (!parsed.error.empty())
    throw std::runtime_error(fmt::format("invalid dsn: {}", parsed.error));
  std::string text;
  bool merged = extra_options.empty();
  for (auto [keyword, value] : parsed.options) {
    if (keyword == "password" && password)
      continue;
    // A later -c of the same name overrides an earlier one: ours go last.
    if (keyword == "options" && !merged) {
      value = fmt::format("{}{}{}", value, value.empty() ? "" : " ", extra_options);
      merged = true;
    }
    text += fmt::format("{}{}={}", text.empty() ? "" : " ", keyword, conninfo_value(value));
  }
  if (!merged)
    text += fmt::format("{}options={}", text.empty() ? "" : " ", conninfo_value(extra_options));
  if (password)
    text += fmt::format("{}password={}", text.empty() ? "" : " ", conninfo_value(*password));
  return text;
}

std::string describe_dsn(std::string_view dsn) {
  ParsedDsn parsed = parse_dsn(dsn);
  if (!parsed.error.empty())
    return "(invalid dsn)";
  // Where, then who, as people write them; then the rest in libpq's order.
  constexpr std::array<std::string_view, 5> k_first{"host", "hostaddr", "port", "dbname", "user"};
  const auto rank = [&](const std::string& keyword) {
    return std::find(k_first.begin(), k_first.end(), keyword) - k_first.begin();
  };
  std::stable_sort(parsed.options.begin(), parsed.options.end(),
                   [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  std::string text;
  for (const auto& [keyword, value] : parsed.options) {
    if (keyword == "password" || keyword == "sslpassword")
      continue;
    text += fmt::format("{}{}={}", text.empty() ? "" : " ", keyword, value);
  }
  return text;
}

std::string read_password_file(const std::filesystem::path& file) {
  // A directory opens, and reads as nothing: not "is empty".
  std::error_code error;
  if (std::filesystem::is_directory(file, error))
    throw std::runtime_error(fmt::format(
        "cannot read password file {}: is a directory, not a file (name the file holding the "
        "password)",
        file.string()));
  std::ifstream in(file);
  if (!in)
    throw std::runtime_error(
        fmt::format("cannot read password file {}: {}", file.string(), std::strerror(errno)));
  std::string password;
  std::getline(in, password);
  if (!password.empty() && password.back() == '\r')
    password.pop_back();
  // An empty password would only fail later, as an authentication error that names no file.
  if (password.empty())
    throw std::runtime_error(fmt::format("password file {} is empty", file.string()));
  return password;
}

}  // namespace retentiond
