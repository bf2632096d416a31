#include "daemon/postgres_support.hpp"

#include "build_id.hpp"

#include <dlfcn.h>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <system_error>

namespace retentiond {

std::vector<std::filesystem::path> postgres_module_candidates() {
  std::vector<std::filesystem::path> candidates;
  std::error_code error;
  const auto program = std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(program.parent_path() / k_postgres_module_name);
#ifdef RETENTIOND_MODULE_RELATIVE_DIR
    // An installed tree moved elsewhere: bin/retentiond and lib/.../retentiond/ side by side.
    candidates.push_back(program.parent_path().parent_path() / RETENTIOND_MODULE_RELATIVE_DIR /
                         k_postgres_module_name);
#endif
  }
#ifdef RETENTIOND_MODULE_DIR
  candidates.push_back(std::filesystem::path(RETENTIOND_MODULE_DIR) / k_postgres_module_name);
#endif
  // The same place reached twice (a program installed where it was configured to be).
  std::vector<std::filesystem::path> unique;
  for (const auto& candidate : candidates)
    if (std::find(unique.begin(), unique.end(), candidate.lexically_normal()) == unique.end())
      unique.push_back(candidate.lexically_normal());
  return unique;
}

const PostgresSupport& load_postgres_support(const std::vector<std::filesystem::path>& candidates) {
  std::string tried;
  for (const auto& candidate : candidates) {
    if (!tried.empty())
      tried += "; ";
    // RTLD_NOW: a missing library or symbol shows here, not in the middle of a purge.
    void* module = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (module == nullptr) {
      const char* error = dlerror();
      const std::string reason = error != nullptr ? error : "cannot be loaded";
      // When a library the module links is missing, the loader names only that library.
      tried += reason.starts_with(candidate.string()) ? reason : candidate.string() + ": " + reason;
      continue;
    }
    using Entry = const PostgresSupport* (*)(const char*, const char**);
    auto entry = reinterpret_cast<Entry>(dlsym(module, "retentiond_postgres_support"));
    if (entry == nullptr) {
      tried += candidate.string() + ": not a retentiond module (no retentiond_postgres_support)";
      dlclose(module);
      continue;
    }
    const char* module_build = "unknown";
    if (const PostgresSupport* support = entry(RETENTIOND_BUILD_ID, &module_build)) {
      // Never unloaded: datastores and states it opened live until exit.
      spdlog::debug("PostgreSQL support loaded from {}", candidate.string());
      return *support;
    }
    tried += fmt::format("{}: from another build of retentiond ({}; this program is {})",
                         candidate.string(), module_build, RETENTIOND_BUILD_ID);
    dlclose(module);
  }
  if (candidates.empty())
    tried = "no place to look for it";
  throw std::runtime_error(
      fmt::format("PostgreSQL support is not available ({}); install the {} built with this "
                  "program, beside it or in its module directory, and the libraries it links "
                  "(libpqxx, libpq)",
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
