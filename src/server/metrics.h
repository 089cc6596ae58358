// Prometheus metrics kept by the server: requests by route, method and status; latency
// histograms by route; time of the use cases that analyze a photo; gauges and counters read at
// scrape time (gallery size, failed audit writes).
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace fv::server {

class Histogram {
 public:
  Histogram();
  void observe(double seconds);
  void write(std::string& out, const std::string& name, const std::string& labels) const;

 private:
  static const std::vector<double>& bounds();
  std::vector<uint64_t> counts_;  // cumulative at write time, per bucket here
  uint64_t n_ = 0;
  double sum_ = 0;
};

class Metrics {
 public:
  void request(const std::string& method, const std::string& route, int status, double seconds);
  void inference(const std::string& stage, double seconds);
  void rate_limited(const std::string& who_kind);
  void in_flight(int delta);
  // Prometheus text format 0.0.4; `gauges` and `counters` are (name, help, value) read at
  // scrape time from elsewhere (the service's stats).
  using Sample = std::tuple<std::string, std::string, double>;
  // A gauge with one sample per label set: (name, help, [(labels, value)]), labels already
  // formatted (`stream="fv-shard-00"`).
  using Family = std::tuple<std::string, std::string, std::vector<std::pair<std::string, double>>>;
  std::string render(const std::vector<Sample>& gauges, const std::vector<Sample>& counters = {},
                     const std::vector<Family>& labeled_gauges = {}) const;

 private:
  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::map<std::string, Histogram> inference_;
  std::map<std::string, uint64_t> limited_;
  int in_flight_ = 0;
};

}  // namespace fv::server
