#include "server/metrics.h"

#include <cstdio>

namespace fv::server {
namespace {

std::string num(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.9g", v);
  return b;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\' || c == '"') o += '\\';
    if (c == '\n') { o += "\\n"; continue; }
    o += c;
  }
  return o;
}

}  // namespace

Histogram::Histogram() : counts_(bounds().size(), 0) {}

const std::vector<double>& Histogram::bounds() {
  static const std::vector<double> b = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  return b;
}

void Histogram::observe(double s) {
  const auto& b = bounds();
  for (size_t i = 0; i < b.size(); ++i)
    if (s <= b[i]) { ++counts_[i]; break; }
  ++n_;
  sum_ += s;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& labels) const {
  const auto& b = bounds();
  uint64_t cum = 0;
  const std::string sep = labels.empty() ? "" : labels + ",";
  for (size_t i = 0; i < b.size(); ++i) {
    cum += counts_[i];
    out += name + "_bucket{" + sep + "le=\"" + num(b[i]) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(n_) + "\n";
  out += name + "_sum" + (labels.empty() ? "" : "{" + labels + "}") + " " + num(sum_) + "\n";
  out += name + "_count" + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(n_) + "\n";
}

void Metrics::request(const std::string& method, const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  ++requests_[{method, route, status}];
  latency_[route].observe(seconds);
}

void Metrics::inference(const std::string& stage, double seconds) {
  std::lock_guard<std::mutex> l(mu_);
  inference_[stage].observe(seconds);
}

void Metrics::rate_limited(const std::string& who_kind) {
  std::lock_guard<std::mutex> l(mu_);
  ++limited_[who_kind];
}

void Metrics::in_flight(int delta) {
  std::lock_guard<std::mutex> l(mu_);
  in_flight_ += delta;
}

std::string Metrics::render(const std::vector<Sample>& gauges, const std::vector<Sample>& counters,
                            const std::vector<Family>& labeled_gauges) const {
  std::lock_guard<std::mutex> l(mu_);
  std::string o;
  o += "# HELP facevault_http_requests_total HTTP requests by method, route template and status code.\n";
  o += "# TYPE facevault_http_requests_total counter\n";
  for (auto& [k, n] : requests_)
    o += "facevault_http_requests_total{method=\"" + esc(std::get<0>(k)) + "\",route=\"" + esc(std::get<1>(k)) +
         "\",code=\"" + std::to_string(std::get<2>(k)) + "\"} " + std::to_string(n) + "\n";
  o += "# HELP facevault_http_request_duration_seconds Time from routing to response, by route template.\n";
  o += "# TYPE facevault_http_request_duration_seconds histogram\n";
  for (auto& [route, h] : latency_) h.write(o, "facevault_http_request_duration_seconds", "route=\"" + esc(route) + "\"");
  o += "# HELP facevault_inference_seconds Time of the use cases that analyze photos (decode, detect, landmarks, align, "
       "embed, and the service's scan or commit), by use case.\n";
  o += "# TYPE facevault_inference_seconds histogram\n";
  for (auto& [stage, h] : inference_) h.write(o, "facevault_inference_seconds", "stage=\"" + esc(stage) + "\"");
  o += "# HELP facevault_http_rate_limited_total Requests refused with 429, by caller kind.\n";
  o += "# TYPE facevault_http_rate_limited_total counter\n";
  for (auto& [k, n] : limited_) o += "facevault_http_rate_limited_total{caller=\"" + esc(k) + "\"} " + std::to_string(n) + "\n";
  o += "# HELP facevault_http_in_flight Requests being handled now.\n# TYPE facevault_http_in_flight gauge\n";
  o += "facevault_http_in_flight " + std::to_string(in_flight_) + "\n";
  for (auto& [name, help, v] : gauges) {
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + num(v) + "\n";
  }
  for (auto& [name, help, samples] : labeled_gauges) {
    if (samples.empty()) continue;
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (auto& [labels, v] : samples) o += name + "{" + labels + "} " + num(v) + "\n";
  }
  for (auto& [name, help, v] : counters) {
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + num(v) + "\n";
  }
  return o;
}

}  // namespace fv::server
