#include "daemon/postgres_support.hpp"

#include <dlfcn.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <stdexcept>
#include <system_error>

namespace retentiond {

std::vector<std::filesystem::path> postgres_module_candidates() {
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  const auto program = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error)
    candidates.push_back(program.parent_path() / k_postgres_module_name);
#ifdef RETENTIOND_MODULE_DIR
  const std::filesystem::path installed =
      std::filesystem::path(RETENTIOND_MODULE_DIR) / k_postgres_module_name;
  if (candidates.empty() || candidates.front() != installed)
    candidates.push_back(installed);
#endif
  return candidates;
}

const PostgresSupport& load_postgres_support(const std::vector<std::filesystem::path>& candidates) {
  std::string tried;
  for (const auto& candidate : candidates) {
    if (!tried.empty())
      tried += "; ";
    // RTLD_NOW: a missing library or symbol shows here, not in the middle of a purge.
    void* module = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (module == nullptr) {
      const char* reason = dlerror();
      tried += reason != nullptr ? reason : candidate.string() + ": cannot be loaded";
      continue;
    }
    using Entry = const PostgresSupport* (*)(const char*, const char**);
    auto entry = reinterpret_cast<Entry>(dlsym(module, "retentiond_postgres_support"));
    if (entry == nullptr) {
      tried += candidate.string() + ": not a retentiond module (no retentiond_postgres_support)";
      dlclose(module);
      continue;
    }
    const char* module_version = "unknown";
    if (const PostgresSupport* support = entry(RETENTIOND_VERSION, &module_version)) {
      // Never unloaded: datastores and states it opened live until exit.
      spdlog::debug("PostgreSQL support loaded from {}", candidate.string());
      return *support;
    }
    tried += fmt::format("{}: built for retentiond {}, this is {}", candidate.string(),
                         module_version, RETENTIOND_VERSION);
    dlclose(module);
  }
  if (candidates.empty())
    tried = "no place to look for it";
  throw std::runtime_error(fmt::format(
      "PostgreSQL support is not available ({}); install {} of this retentiond version beside "
      "the program or in its module directory",
      tried, k_postgres_module_name));
}

const PostgresSupport& postgres_support() {
  static std::mutex mutex;
  static const PostgresSupport* loaded = nullptr;
  const std::lock_guard lock(mutex);
  if (loaded == nullptr)
    loaded = &load_postgres_support(postgres_module_candidates());
  return *loaded;
}

}  // namespace retentiond
