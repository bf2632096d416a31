// A retentiond-postgres.so from another build, for the loader's tests: it has the entry point
// and refuses every program, as a real module of another build would.
namespace retentiond {
struct PostgresSupport;
}

extern "C" __attribute__((visibility("default"))) const retentiond::PostgresSupport*
retentiond_postgres_support(const char* /*program_build*/, const char** module_build) {
  *module_build = "0.0.0+0123456789ab";
  return nullptr;
}
