#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace retentiond {

// libpq connection strings as the configuration gives them (`dsn`, keyword=value or a
// postgresql:// URI) plus an optional `password_file`.

// `dsn` with the password added, in keyword=value form. `extra_options` (server settings in
// libpq's `options` form, "-c name=value ...") go after the dsn's own `options`, which are kept:
// where both set a name, `extra_options` wins. Throws std::runtime_error with libpq's reason
// when the dsn cannot be parsed.
std::string connection_string(std::string_view dsn, const std::optional<std::string>& password,
                              std::string_view extra_options = {});

// The dsn for messages: its keywords without any password ("host=db1 dbname=retention").
std::string describe_dsn(std::string_view dsn);

// libpq's reason when `dsn` cannot be parsed, nullopt when it can.
std::optional<std::string> dsn_problem(std::string_view dsn);

// The password in `file`: its first line, without the line end. Throws std::runtime_error
// naming the file when it cannot be read or that line is empty.
std::string read_password_file(const std::filesystem::path& file);

}  // namespace retentiond
