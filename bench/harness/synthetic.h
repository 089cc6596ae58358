// Synthetic galleries for the scale benchmark: random unit vectors, plus clusters of
// near-duplicates that behave like several photos of one person. Template i is a pure
// function of (seed, i), so any range can be generated on any thread, in any order, and a
// 10 M gallery never has to exist in float32 all at once.
//
// Layout, repeated every 100 templates: positions 0–34 are 7 identities with 2, 3, 4, 5, 6,
// 7 and 8 photos each; positions 35–99 are single-photo identities. A photo of a clustered
// identity is normalise(centre + noise·g), g Gaussian of norm ≈ 1, so two photos of one
// identity have cosine ≈ 1/(1 + noise²) (0.58 at the default 0.85, close to LFW mated pairs).
//
// "Random" has two shapes. Isotropic (the default): uniform on the sphere — the worst case for
// any index, since no direction is preferred and the neighbours that fill a top-10 are noise.
// Face-shaped (a TemplateDistribution): Gaussian with the mean and covariance of real
// templates, then normalised. Real templates are far from isotropic: the 13,233 LFW templates
// of the default embedder span ~200 of 512 dimensions (participation ratio 91) and two
// strangers' cosine spreads 0.105 where isotropic vectors give 1/√512 = 0.044, so a
// face-shaped gallery is what an index meets in service.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::index {

// A Gaussian fitted to real templates: x = mean + L·z, z standard normal, Σ = L·Lᵀ.
class TemplateDistribution {
 public:
  // Fits mean and covariance to `templates` (n × dim, n > dim). The covariance of embeddings
  // is rank-deficient (they span a subspace), so a ridge of 1e-6·trace/dim keeps the
  // Cholesky factor defined without adding visible noise.
  static Result<std::shared_ptr<const TemplateDistribution>> fit(std::span<const float> templates, size_t dim);
  size_t dim() const { return mean_.size(); }
  // out = mean + L·z (not normalised); `centred` leaves the mean out (a photo's deviation).
  void draw(const float* z, float* out, bool centred = false) const;
  // Participation ratio of the covariance, (Σλ)²/Σλ²: how many dimensions the data fills.
  double effective_dim() const { return effective_dim_; }

 private:
  std::vector<float> mean_;
  std::vector<float> lt_;  // Lᵀ, row-major dim × dim (upper triangle used)
  double effective_dim_ = 0;
};

struct SyntheticSpec {
  size_t size = 100000;
  size_t dim = 512;
  float noise = 0.85f;
  uint64_t seed = 42;
  std::shared_ptr<const TemplateDistribution> shape;  // null: isotropic; else of dimension `dim`
};

class SyntheticGallery {
 public:
  explicit SyntheticGallery(SyntheticSpec spec) : spec_(std::move(spec)) {}
  const SyntheticSpec& spec() const { return spec_; }

  // Templates [begin, end) into out ((end − begin) × dim floats, L2-normalised).
  void generate(size_t begin, size_t end, float* out) const;
  // Query j: a new photo of a clustered identity present in the gallery; its mates (the
  // identity's gallery photos) are appended to `mates` when given.
  void query(size_t j, float* out, std::vector<size_t>* mates = nullptr) const;

 private:
  void member(uint64_t identity, uint64_t photo, float* out) const;
  void random_template(uint64_t key, float* out) const;  // normalised, isotropic or face-shaped
  SyntheticSpec spec_;
};

// Templates from `facevault embed` output (JSON lines: {"file", "faces":[{"template"}]}),
// central face (first face) of each image; identity = the image's parent folder (LFW layout).
struct TemplateSet {
  size_t dim = 0;
  std::string model;  // the model id of the first template ("" when the file does not say)
  std::vector<std::string> files, identity;
  std::vector<float> values;  // files.size() × dim
};
Result<TemplateSet> read_template_jsonl(const std::string& path);

}  // namespace fv::index
