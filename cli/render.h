// Output for nodeagentctl: the same data as a table, JSON or YAML.
#pragma once

#include <string>

#include "common/json.h"

namespace nodeagent::cli {

enum class OutputFormat { kTable, kJson, kYaml };

// Renders a payload as a table. An object with "items" (a list of objects) becomes rows,
// with columns from "columns" when given, else the first item's keys; any other object
// becomes "key: value" lines (nested keys joined with dots).
std::string renderTable(const Json& payload);

std::string render(const Json& payload, OutputFormat format);

// Aligns rows of cells into columns separated by two spaces; the first row is the header.
std::string alignColumns(const std::vector<std::vector<std::string>>& rows);

// A cell's text: strings as they are, other scalars as JSON, containers compact.
std::string cellText(const Json& v);

// What the file system says about a control socket nodeagentctl cannot use (stat and
// access(2) of it and its directory), for the messages below.
struct SocketAccess {
  std::string path;        // the socket, or the directory that cannot be entered
  std::string user;        // who runs nodeagentctl
  std::string group;       // the path's group (a name, or the gid when /etc/group has none)
  unsigned mode = 0;       // the path's permission bits
  bool missing = false;    // no such socket
  bool denied = false;     // EACCES on it or on its directory
};
// The file system's view of `socket` (nothing set when it can be used).
SocketAccess inspectSocket(const std::string& socket);
// The error line for it; empty when the file system shows no reason.
std::string socketAccessMessage(const SocketAccess& a);

}  // namespace nodeagent::cli
