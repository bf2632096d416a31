#pragma once

#include <string>

namespace retentiond {

// Appends the process metrics Prometheus client libraries export, read from /proc/self at each
// scrape: process_cpu_seconds_total, process_open_fds, process_max_fds (the soft limit),
// process_virtual_memory_bytes, process_resident_memory_bytes and process_start_time_seconds
// (Unix time). Open descriptors matter here: linked files stay open until their batch commits.
// A value that cannot be read is left out, with its HELP and TYPE lines.
void append_process_metrics(std::string& text);

}  // namespace retentiond
