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

}  // namespace nodeagent::cli
