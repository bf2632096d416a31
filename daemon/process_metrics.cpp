#include "daemon/process_metrics.hpp"

#include "daemon/service_metrics.hpp"

#include <spdlog/fmt/fmt.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <sys/resource.h>
#include <system_error>
#include <unistd.h>
#include <vector>

namespace retentiond {
namespace {

// The fields of /proc/self/stat after the command name (which may hold spaces and parentheses):
// [0] is field 3 of proc(5), the state.
std::vector<std::string> stat_fields() {
  std::ifstream file("/proc/self/stat");
  const std::string line{std::istreambuf_iterator<char>(file), {}};
  const std::size_t name_end = line.rfind(')');
  std::vector<std::string> fields;
  if (name_end == std::string::npos)
    return fields;
  std::istringstream rest(line.substr(name_end + 1));
  for (std::string field; rest >> field;)
    fields.push_back(field);
  return fields;
}

std::optional<double> field_number(const std::vector<std::string>& fields, std::size_t proc_field) {
  const std::size_t index = proc_field - 3;
  if (index >= fields.size())
    return std::nullopt;
  const std::string& text = fields[index];
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc{} || end != text.data() + text.size())
    return std::nullopt;
  return value;
}

// When the system booted (Unix time): /proc/stat's btime.
std::optional<double> boot_time() {
  std::ifstream file("/proc/stat");
  for (std::string key; file >> key;) {
    if (key == "btime") {
      double seconds = 0;
      if (file >> seconds)
        return seconds;
      return std::nullopt;
    }
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<double> open_descriptors() {
  std::error_code error;
  double count = 0;
  for (std::filesystem::directory_iterator entry("/proc/self/fd", error), end;
       !error && entry != end; entry.increment(error))
    ++count;
  if (error)
    return std::nullopt;
  return count - 1;  // the descriptor that read the directory
}

void gauge_or_counter(std::string& text, std::string_view name, std::string_view type,
                      std::string_view help, std::optional<double> value) {
  if (!value)
    return;
  metric_family(text, name, type, help);
  text += fmt::format("{} {}\n", name, *value);
}

}  // namespace

void append_process_metrics(std::string& text) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  const std::vector<std::string> stat = stat_fields();
  const auto user = field_number(stat, 14);
  const auto system = field_number(stat, 15);
  const auto started = field_number(stat, 22);
  const auto boot = boot_time();
  const auto pages = field_number(stat, 24);

  gauge_or_counter(text, "process_cpu_seconds_total", "counter",
                   "Total user and system CPU time spent in seconds.",
                   user && system ? std::optional((*user + *system) / ticks) : std::nullopt);
  gauge_or_counter(text, "process_open_fds", "gauge", "Number of open file descriptors.",
                   open_descriptors());
  struct rlimit limit {};
  gauge_or_counter(text, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                   ::getrlimit(RLIMIT_NOFILE, &limit) == 0
                       ? std::optional(static_cast<double>(limit.rlim_cur))
                       : std::nullopt);
  gauge_or_counter(text, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                   field_number(stat, 23));
  gauge_or_counter(text, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                   pages ? std::optional(*pages * page) : std::nullopt);
  gauge_or_counter(text, "process_start_time_seconds", "gauge",
                   "Start time of the process since unix epoch in seconds.",
                   started && boot ? std::optional(*boot + *started / ticks) : std::nullopt);
}

}  // namespace retentiond
