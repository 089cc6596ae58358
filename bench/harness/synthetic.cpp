#include "bench/harness/synthetic.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

namespace fv::index {
namespace {

constexpr size_t kBlock = 100;
constexpr size_t kClustered = 35;
constexpr size_t kStart[8] = {0, 2, 5, 9, 14, 20, 27, 35};  // cluster c: positions [kStart[c], kStart[c+1])

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Approximately standard normal values, cheaply: the sum of four 16-bit uniforms (Irwin–Hall)
// per 64-bit random number; 10 M × 512 values take seconds instead of minutes of Box–Muller,
// and the normalised vectors are isotropic to well within what a benchmark can see.
void gaussian(uint64_t key, float* out, size_t n) {
  uint64_t s = key;
  constexpr float kScale = 1.0f / 65536.0f, kStd = 1.7320508f;  // √(12/4)
  for (size_t i = 0; i < n; ++i) {
    const uint64_t r = splitmix(s);
    const float u = float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) + float(r >> 48);
    out[i] = (u * kScale - 2.0f) * kStd;
  }
}

void normalise(float* v, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(v[i]) * v[i];
  const float inv = s > 0 ? float(1.0 / std::sqrt(s)) : 0.0f;
  for (size_t i = 0; i < n; ++i) v[i] *= inv;
}

uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t s = a * 0x9E3779B97F4A7C15ULL ^ (b + 0x632BE59BD9B4E019ULL) ^ (c << 1);
  return splitmix(s);
}

}  // namespace

Result<std::shared_ptr<const TemplateDistribution>> TemplateDistribution::fit(std::span<const float> templates, size_t d) {
  if (d == 0 || templates.size() % d != 0) return invalid_argument("template distribution: rows are not of the dimension");
  const size_t n = templates.size() / d;
  if (n <= d) return invalid_argument("template distribution: needs more templates (" + std::to_string(n) + ") than dimensions");
  std::vector<double> mean(d, 0.0), cov(d * d, 0.0);
  for (size_t r = 0; r < n; ++r)
    for (size_t i = 0; i < d; ++i) mean[i] += templates[r * d + i];
  for (auto& m : mean) m /= double(n);
  std::vector<double> x(d);
  for (size_t r = 0; r < n; ++r) {
    for (size_t i = 0; i < d; ++i) x[i] = templates[r * d + i] - mean[i];
    for (size_t i = 0; i < d; ++i) {
      double* row = cov.data() + i * d;
      const double xi = x[i];
      for (size_t j = 0; j <= i; ++j) row[j] += xi * x[j];
    }
  }
  double trace = 0, frob = 0;
  for (size_t i = 0; i < d; ++i)
    for (size_t j = 0; j <= i; ++j) {
      double& c = cov[i * d + j];
      c /= double(n - 1);
      cov[j * d + i] = c;
      frob += (i == j ? 1.0 : 2.0) * c * c;
      if (i == j) trace += c;
    }
  if (!(trace > 0)) return invalid_argument("template distribution: the templates do not vary");
  const double ridge = 1e-6 * trace / double(d);
  for (size_t i = 0; i < d; ++i) cov[i * d + i] += ridge;
  // Cholesky, in place in the lower triangle.
  for (size_t j = 0; j < d; ++j) {
    double s = cov[j * d + j];
    for (size_t k = 0; k < j; ++k) s -= cov[j * d + k] * cov[j * d + k];
    if (!(s > 0)) return invalid_argument("template distribution: covariance is not positive definite");
    const double l = std::sqrt(s);
    cov[j * d + j] = l;
    for (size_t i = j + 1; i < d; ++i) {
      double t = cov[i * d + j];
      for (size_t k = 0; k < j; ++k) t -= cov[i * d + k] * cov[j * d + k];
      cov[i * d + j] = t / l;
    }
  }
  auto dist = std::make_shared<TemplateDistribution>();
  dist->mean_.assign(mean.begin(), mean.end());
  dist->lt_.assign(d * d, 0.0f);
  for (size_t i = 0; i < d; ++i)
    for (size_t j = 0; j <= i; ++j) dist->lt_[j * d + i] = float(cov[i * d + j]);
  dist->effective_dim_ = trace * trace / frob;
  return std::shared_ptr<const TemplateDistribution>(std::move(dist));
}

void TemplateDistribution::draw(const float* z, float* out, bool centred) const {
  const size_t d = mean_.size();
  if (centred) std::fill(out, out + d, 0.0f);
  else std::copy(mean_.begin(), mean_.end(), out);
  for (size_t k = 0; k < d; ++k) {  // out += z_k · (column k of L), which is row k of Lᵀ from k on
    const float zk = z[k];
    const float* col = lt_.data() + k * d;
    for (size_t i = k; i < d; ++i) out[i] += zk * col[i];
  }
}

void SyntheticGallery::random_template(uint64_t key, float* out) const {
  const size_t d = spec_.dim;
  if (!spec_.shape) {
    gaussian(key, out, d);
  } else {
    std::vector<float> z(d);
    gaussian(key, z.data(), d);
    spec_.shape->draw(z.data(), out);
  }
  normalise(out, d);
}

void SyntheticGallery::member(uint64_t identity, uint64_t photo, float* out) const {
  const size_t d = spec_.dim;
  std::vector<float> noise(d);
  random_template(mix(spec_.seed, identity, 0), out);
  gaussian(mix(spec_.seed, identity, photo + 1), noise.data(), d);
  float a = spec_.noise / std::sqrt(float(d));  // an isotropic Gaussian of norm ≈ √d
  if (spec_.shape) {  // a face-shaped deviation, of norm ≈ √trace(Σ) ≈ 1
    std::vector<float> z = noise;
    spec_.shape->draw(z.data(), noise.data(), /*centred=*/true);
    a = spec_.noise;
  }
  for (size_t i = 0; i < d; ++i) out[i] += a * noise[i];
  normalise(out, d);
}

void SyntheticGallery::generate(size_t begin, size_t end, float* out) const {
  const size_t d = spec_.dim;
  for (size_t i = begin; i < end; ++i, out += d) {
    const size_t block = i / kBlock, pos = i % kBlock;
    if (pos >= kClustered) {  // a single-photo identity
      random_template(mix(spec_.seed, ~uint64_t(i), 7), out);
      continue;
    }
    size_t c = 0;
    while (pos >= kStart[c + 1]) ++c;
    member(block * 7 + c, pos - kStart[c], out);
  }
}

void SyntheticGallery::query(size_t j, float* out, std::vector<size_t>* mates) const {
  // A clustered identity whose photos all lie inside the gallery.
  const size_t blocks = std::max<size_t>(1, spec_.size / kBlock);
  uint64_t s = mix(spec_.seed, j, 99);
  const size_t block = splitmix(s) % blocks;
  const size_t c = splitmix(s) % 7;
  member(block * 7 + c, 1000 + j, out);
  if (mates)
    for (size_t p = kStart[c]; p < kStart[c + 1]; ++p)
      if (block * kBlock + p < spec_.size) mates->push_back(block * kBlock + p);
}

Result<TemplateSet> read_template_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) return not_found("cannot open " + path);
  TemplateSet set;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return corrupt_data(path + ":" + std::to_string(line_no) + ": not JSON");
    if (!j.contains("faces") || !j["faces"].is_array() || j["faces"].empty()) continue;
    // The face nearest the image centre (the LFW convention).
    const double cx = j.value("width", 0.0) / 2, cy = j.value("height", 0.0) / 2;
    const nlohmann::json* best = nullptr;
    double bd = 1e30;
    for (const auto& f : j["faces"]) {
      if (!f.contains("template") || !f.contains("box")) continue;
      const auto& b = f["box"];
      const double dx = b[0].get<double>() + b[2].get<double>() / 2 - cx, dy = b[1].get<double>() + b[3].get<double>() / 2 - cy;
      if (dx * dx + dy * dy < bd) {
        bd = dx * dx + dy * dy;
        best = &f;
      }
    }
    if (!best) continue;
    const auto& t = (*best)["template"];
    if (set.dim == 0) {
      set.dim = t.size();
      if (best->contains("model") && (*best)["model"].is_string()) set.model = (*best)["model"].get<std::string>();
    }
    if (t.size() != set.dim || set.dim == 0) return corrupt_data(path + ":" + std::to_string(line_no) + ": template dimension differs");
    for (const auto& v : t) set.values.push_back(v.get<float>());
    const std::string file = j.value("file", "");
    set.files.push_back(file);
    set.identity.push_back(std::filesystem::path(file).parent_path().filename().string());
  }
  return set;
}

}  // namespace fv::index
