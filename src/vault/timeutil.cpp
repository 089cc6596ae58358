#include "vault/timeutil.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace fv::vault {
namespace {
std::string format(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int milli = static_cast<int>(ms - static_cast<int64_t>(secs) * 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
  return buf;
}

bool to_ms(const std::string& ts, int64_t& ms) {
  int y, mo, d, h = 0, mi = 0, s = 0, milli = 0;
  if (std::sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &y, &mo, &d, &h, &mi, &s, &milli) < 3) return false;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  ms = static_cast<int64_t>(timegm(&tm)) * 1000 + milli;
  return true;
}
}  // namespace

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  return format(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
}

Result<std::string> parse_time(const std::string& text, bool end_of_day) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, milli = 0;
  char tail[8] = {0};
  const int n = std::sscanf(text.c_str(), "%4d-%2d-%2d%7s", &y, &mo, &d, tail);
  if (n < 3 || mo < 1 || mo > 12 || d < 1 || d > 31 || y < 1970 || y > 9999)
    return invalid_argument("not a date: '" + text + "' (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
  if (n == 3) {
    if (text.size() != 10) return invalid_argument("not a date: '" + text + "'");
    if (end_of_day) { h = 23; mi = 59; s = 59; milli = 999; }
  } else {
    const int m = std::sscanf(text.c_str() + 10, "T%2d:%2d:%2d.%3d", &h, &mi, &s, &milli);
    if (m < 2 || h > 23 || mi > 59 || s > 60)
      return invalid_argument("not a time: '" + text + "' (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)");
    if (text.find('+') != std::string::npos || text.find('-', 10) != std::string::npos)
      return invalid_argument("give times in UTC (ending in Z): '" + text + "'");
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, h, mi, s, milli);
  int64_t ms;
  if (!to_ms(buf, ms)) return invalid_argument("not a date: '" + text + "'");
  return format(ms);  // normalises e.g. 31 April
}

std::string add_days(const std::string& ts, double days) {
  int64_t ms = 0;
  if (!to_ms(ts, ms)) return ts;
  return format(ms + static_cast<int64_t>(days * 86400000.0));
}

}  // namespace fv::vault
