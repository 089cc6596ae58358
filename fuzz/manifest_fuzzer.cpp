// The batch-enrollment CSV manifest (`facevault enroll --manifest`): service::parse_manifest.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "service/service.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto rows = fv::service::parse_manifest(text, "/srv/batch/manifest.csv");
  if (!rows.is_ok()) {
    if (rows.status().message().empty()) { std::fprintf(stderr, "error without a message\n"); std::abort(); }
    return 0;
  }
  int last = 0;
  for (const auto& r : *rows) {
    // Rows are in file order and name the line they came from.
    if (r.line <= last) { std::fprintf(stderr, "manifest rows out of order\n"); std::abort(); }
    last = r.line;
  }
  return 0;
}
