#pragma once

#include <spdlog/common.h>

#include <string>
#include <string_view>

namespace retentiond {

// Log lines and error messages go to stderr. For a terminal or a file each log line carries its
// time (UTC) and level. When systemd connected stderr to its journal (a service, or the
// one-shot unit of a timer), every line instead starts with the sd-daemon(3) prefix of its
// priority ("<3>" for an error), every line of a message that has several: `journalctl -p
// warning` then finds warnings and errors, and the journal adds the time itself.

// Whether the stream open on `fd` is the one $JOURNAL_STREAM names: systemd sets that variable to
// the "DEVICE:INODE" of the stream it connected to the journal (systemd.exec(5)). A stream the
// process was redirected to since (`retentiond once 2>file` from a unit's script) does not match.
bool is_journal_stream(int fd, const char* journal_stream);

// The sd-daemon(3) prefix of `level`'s priority: "<2>" for critical, "<3>" for err, "<4>" for
// warn, "<6>" for info, "<7>" for debug and trace.
std::string_view journal_prefix(spdlog::level::level_enum level);

// Whether `c` is an ASCII control character (below 0x20, or DEL).
bool is_control(char c);

// `text` with each control character written as an escape: "\\n", "\\t", "\\r", "\\x1b".
// Every log line goes through it: a value in a message cannot start a line of its own.
std::string escape_controls(std::string_view text);

// Sets up the default logger on stderr at `level` ("trace" ... "error", or "off"); any other
// name is a UsageError.
void configure_logging(const std::string& level);

// Writes a message meant for whoever ran the command ("retentiond: error: ..."), one or more
// lines, to stderr: each line with `level`'s prefix when stderr is the journal.
void print_message(spdlog::level::level_enum level, std::string_view text);

}  // namespace retentiond
