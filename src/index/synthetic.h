// Synthetic galleries for the scale benchmark: random unit vectors, plus clusters of
// near-duplicates that behave like several photos of one person. Template i is a pure
// function of (seed, i), so any range can be generated on any thread, in any order, and a
// 10 M gallery never has to exist in float32 all at once.
//
// Layout, repeated every 100 templates: positions 0–34 are 7 identities with 2, 3, 4, 5, 6,
// 7 and 8 photos each; positions 35–99 are single-photo identities. A photo of a clustered
// identity is normalise(centre + noise·g), g Gaussian of norm ≈ 1, so two photos of one
// identity have cosine ≈ 1/(1 + noise²) (0.58 at the default 0.85, close to LFW mated pairs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace fv::index {

struct SyntheticSpec {
  size_t size = 100000;
  size_t dim = 512;
  float noise = 0.85f;
  uint64_t seed = 42;
};

class SyntheticGallery {
 public:
  explicit SyntheticGallery(SyntheticSpec spec) : spec_(spec) {}
  const SyntheticSpec& spec() const { return spec_; }

  // Templates [begin, end) into out ((end − begin) × dim floats, L2-normalised).
  void generate(size_t begin, size_t end, float* out) const;
  // Query j: a new photo of a clustered identity present in the gallery; its mates (the
  // identity's gallery photos) are appended to `mates` when given.
  void query(size_t j, float* out, std::vector<size_t>* mates = nullptr) const;

 private:
  void member(uint64_t identity, uint64_t photo, float* out) const;
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
