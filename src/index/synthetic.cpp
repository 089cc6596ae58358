#include "index/synthetic.h"

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

void SyntheticGallery::member(uint64_t identity, uint64_t photo, float* out) const {
  const size_t d = spec_.dim;
  std::vector<float> noise(d);
  gaussian(mix(spec_.seed, identity, 0), out, d);
  normalise(out, d);
  gaussian(mix(spec_.seed, identity, photo + 1), noise.data(), d);
  const float a = spec_.noise / std::sqrt(float(d));
  for (size_t i = 0; i < d; ++i) out[i] += a * noise[i];
  normalise(out, d);
}

void SyntheticGallery::generate(size_t begin, size_t end, float* out) const {
  const size_t d = spec_.dim;
  for (size_t i = begin; i < end; ++i, out += d) {
    const size_t block = i / kBlock, pos = i % kBlock;
    if (pos >= kClustered) {  // a single-photo identity
      gaussian(mix(spec_.seed, ~uint64_t(i), 7), out, d);
      normalise(out, d);
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
