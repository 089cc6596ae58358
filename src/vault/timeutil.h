// Timestamps in the vault: UTC, ISO 8601 with milliseconds ("2026-01-31T09:00:00.000Z"), so
// they sort as strings and compare in SQL.
#pragma once

#include <string>

#include "common/status.h"

namespace fv::vault {

std::string utc_now();
// Accepts "YYYY-MM-DD" (start of day, or end of day when end_of_day), "YYYY-MM-DDTHH:MM[:SS[.mmm]][Z]".
Result<std::string> parse_time(const std::string& text, bool end_of_day = false);
std::string add_days(const std::string& ts, double days);

}  // namespace fv::vault
