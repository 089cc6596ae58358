// Runs fn(0) … fn(threads − 1) on `threads` threads (the caller's among them) and waits.
// Searches are short; a pool would save ~20 µs per extra thread, which the 1 M scan (tens of
// ms) does not notice, and plain threads keep the index free of global state.
#pragma once

#include <functional>
#include <thread>
#include <vector>

namespace fv::index {

inline void run_parallel(int threads, const std::function<void(int)>& fn) {
  if (threads <= 1) {
    fn(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
}

// [begin, end) of part t of n items split into `parts` nearly equal ranges.
inline std::pair<size_t, size_t> split_range(size_t n, int parts, int t) {
  const size_t b = n * static_cast<size_t>(t) / static_cast<size_t>(parts);
  const size_t e = n * static_cast<size_t>(t + 1) / static_cast<size_t>(parts);
  return {b, e};
}

}  // namespace fv::index
