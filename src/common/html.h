// Escaping text for HTML: the one escaper of the reports that render a standalone page
// (the transparency report, the cohort report), so that no label or purpose becomes markup.
#pragma once

#include <string>
#include <string_view>

namespace fv {

inline std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace fv
