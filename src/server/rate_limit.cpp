#include "server/rate_limit.h"

#include <algorithm>

namespace fv::server {

bool RateLimiter::take(const std::string& who, double* retry_after_s) {
  if (rate_ <= 0) return true;
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> l(mu_);
  if (buckets_.size() > 100000) buckets_.clear();  // bounded memory under a flood of callers
  auto [it, fresh] = buckets_.try_emplace(who);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = burst_;
  } else {
    const double dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst_, b.tokens + dt * rate_);
  }
  b.last = now;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return true;
  }
  if (retry_after_s) *retry_after_s = (1.0 - b.tokens) / rate_;
  return false;
}

}  // namespace fv::server
