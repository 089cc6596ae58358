// Token buckets, one per caller (API key id, or client address for the public opt-out form).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace fv::server {

class RateLimiter {
 public:
  // rate: tokens per second; burst: bucket size. rate <= 0: unlimited.
  RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
  // true: allowed (a token taken). Otherwise retry_after_s says when one will be available.
  bool take(const std::string& who, double* retry_after_s = nullptr);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  double rate_, burst_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace fv::server
