// Human-facing formatting shared by the CLI's listings: sizes and ages as Docker
// prints them (docker/go-units), and a simple aligned table.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace imagefs {

// 3 significant digits, decimal units: "4.26MB", "77.8kB", "0B".
std::string HumanSize(uint64_t bytes);
// "2 weeks ago", "About an hour ago", "Less than a second ago".
std::string HumanAge(int64_t seconds);

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace imagefs
