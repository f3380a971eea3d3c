#include "cli/render.h"

#include <algorithm>
#include <cctype>

namespace nodeagent::cli {

std::string cellText(const Json& v) {
  if (v.isString()) return v.asString();
  if (v.isNull()) return "-";
  if (v.isArray()) {
    std::string out;
    for (const auto& e : v.asArray()) out += (out.empty() ? "" : ",") + cellText(e);
    return out.empty() ? "-" : out;
  }
  return v.dump();
}

std::string alignColumns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

namespace {

std::string header(const std::string& key) {
  std::string h;
  for (char c : key) h.push_back(c == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return h;
}

void flatten(const Json& v, const std::string& prefix, std::vector<std::vector<std::string>>& rows) {
  if (v.isObject() && v.size() > 0) {
    for (const auto& [k, child] : v.asObject()) flatten(child, prefix.empty() ? k : prefix + "." + k, rows);
    return;
  }
  rows.push_back({prefix + ":", cellText(v)});
}

}  // namespace

std::string renderTable(const Json& payload) {
  if (payload.isObject() && payload.get("items").isArray()) {
    const auto& items = payload.get("items").asArray();
    std::vector<std::string> cols;
    for (const auto& c : payload.get("columns").asArray()) cols.push_back(c.asString());
    if (cols.empty() && !items.empty())
      for (const auto& [k, _] : items.front().asObject()) cols.push_back(k);
    std::string out;
    if (items.empty()) {
      out = "(none)\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      std::vector<std::string> head;
      for (const auto& c : cols) head.push_back(header(c));
      rows.push_back(head);
      for (const auto& item : items) {
        std::vector<std::string> row;
        for (const auto& c : cols) row.push_back(cellText(item.get(c)));
        rows.push_back(std::move(row));
      }
      out = alignColumns(rows);
    }
    // Anything else in the payload (totals, notes) follows the rows.
    std::vector<std::vector<std::string>> rest;
    for (const auto& [k, v] : payload.asObject())
      if (k != "items" && k != "columns") flatten(v, k, rest);
    if (!rest.empty()) out += "\n" + alignColumns(rest);
    return out;
  }
  if (payload.isObject()) {
    std::vector<std::vector<std::string>> rows;
    flatten(payload, "", rows);
    return alignColumns(rows);
  }
  if (payload.isArray()) {
    std::string out;
    for (const auto& e : payload.asArray()) out += cellText(e) + "\n";
    return out;
  }
  return cellText(payload) + "\n";
}

std::string render(const Json& payload, OutputFormat format) {
  switch (format) {
    case OutputFormat::kJson: return payload.dump(2) + "\n";
    case OutputFormat::kYaml: return payload.toYaml();
    case OutputFormat::kTable: return renderTable(payload);
  }
  return {};
}

}  // namespace nodeagent::cli
