// Small helpers the cluster benchmarks share: timing, percentiles, sizes on disk, synthetic
// templates, and stopping at the first failure with its Status.
#pragma once

#include <errno.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "face/types.h"

namespace fv::bench {

using Clock = std::chrono::steady_clock;

inline double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
inline double ms(Clock::time_point a, Clock::time_point b) { return secs(a, b) * 1e3; }

// A unit-norm 512-D Gaussian template, as the faceplugin MobileFaceNet produces.
inline face::FaceTemplate random_template(std::mt19937& rng) {
  std::normal_distribution<float> n(0.f, 1.f);
  face::FaceTemplate t{"faceplugin-mobilefacenet-512", 1, std::vector<float>(512)};
  double s = 0;
  for (auto& v : t.values) { v = n(rng); s += v * v; }
  for (auto& v : t.values) v = static_cast<float>(v / std::sqrt(s));
  return t;
}

// The p-quantile (nearest rank) of v.
inline double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t k = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  k = std::clamp<size_t>(k, 1, v.size());
  return v[k - 1];
}

inline uintmax_t tree_bytes(const std::filesystem::path& d) {
  uintmax_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(d, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec)) n += it->file_size(ec);
  return n;
}

[[noreturn]] inline void die(const std::string& what, const Status& st) {
  std::fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what.c_str(), st.to_string().c_str());
  std::exit(2);
}
template <class T>
T must(Result<T> r, const std::string& what) {
  if (!r.is_ok()) die(what, r.status());
  return std::move(r).value();
}
inline void must(const Status& st, const std::string& what) {
  if (!st.is_ok()) die(what, st);
}

}  // namespace fv::bench
