#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace retentiond::test {

// How a run of the real binary ended and what it wrote.
struct RunResult {
  int exit_code = -1;  // the exit status; 128 + N when killed by signal N
  std::string out;     // everything written to stdout
  std::string err;     // everything written to stderr
};

// Runs the built retentiond (RETENTIOND_BINARY) with `args`, stdin from /dev/null, and waits for
// it. The child inherits this process's environment without RETENTIOND_CONFIG, so a test only
// sees the configuration it names; `env` adds or overrides variables. `cwd`, when not empty, is
// the child's working directory. Throws std::runtime_error when the child cannot be started.
RunResult run_retentiond(const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env = {},
                         const std::filesystem::path& cwd = {});

// The same with another build of retentiond: `program` (a copy of the binary elsewhere, say).
RunResult run_program(const std::filesystem::path& program, const std::vector<std::string>& args,
                      const std::map<std::string, std::string>& env = {},
                      const std::filesystem::path& cwd = {});

// A retentiond started in the background (the `run` service), its stdout and stderr going to
// files. Killed (SIGKILL) and reaped on destruction if still running.
class RunningRetentiond {
public:
  // Starts RETENTIOND_BINARY with `args`; environment and `cwd` as for run_retentiond.
  // stdout and stderr go to `output_dir`/out.txt and err.txt.
  RunningRetentiond(const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env,
                    const std::filesystem::path& output_dir);
  ~RunningRetentiond();
  RunningRetentiond(const RunningRetentiond&) = delete;
  RunningRetentiond& operator=(const RunningRetentiond&) = delete;

  pid_t pid() const { return m_pid; }
  void signal(int number) const;
  // Waits up to `timeout` for the process to exit; its exit code (128 + N when killed by
  // signal N), or -1 when it is still running.
  int wait(std::chrono::milliseconds timeout);
  bool running();
  std::string err() const;  // everything written to stderr so far

private:
  pid_t m_pid = -1;
  int m_exit_code = -1;
  std::filesystem::path m_err;
};

}  // namespace retentiond::test
