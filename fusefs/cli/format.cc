#include "fusefs/cli/format.h"

#include <cstdio>
#include <ostream>

namespace imagefs {

std::string HumanSize(uint64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1000.0 && unit + 1 < std::size(kUnits)) {
    size /= 1000.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", size, kUnits[unit]);
  return buf;
}

std::string HumanAge(int64_t seconds) {
  auto plural = [](int64_t n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
  };
  std::string s;
  int64_t minutes = seconds / 60, hours = seconds / 3600;
  if (seconds < 1)
    s = "Less than a second";
  else if (seconds < 60)
    s = plural(seconds, "second");
  else if (minutes == 1)
    s = "About a minute";
  else if (minutes < 60)
    s = plural(minutes, "minute");
  else if (hours == 1)
    s = "About an hour";
  else if (hours < 48)
    s = plural(hours, "hour");
  else if (hours < 24 * 7 * 2)
    s = plural(hours / 24, "day");
  else if (hours < 24 * 30 * 2)
    s = plural(hours / 24 / 7, "week");
  else if (hours < 24 * 365 * 2)
    s = plural(hours / 24 / 30, "month");
  else
    s = plural(hours / 24 / 365, "year");
  return s + " ago";
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width;
  for (const auto& row : rows_) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], row[i].size());
    }
  }
  for (const auto& row : rows_) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 3, ' ');
    }
    out << line << "\n";
  }
}

}  // namespace imagefs
