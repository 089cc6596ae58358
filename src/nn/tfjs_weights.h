// TfjsWeights: the tensors of a TensorFlow.js "weights-only" model (a weights_manifest.json and
// its .bin shards), dequantised to float32. face-api.js ships its networks this way: the graph
// is code, the weights are data. Every size in the manifest is checked against the bytes.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "common/status.h"

namespace fv::nn {

struct TfjsTensor {
  std::vector<int> shape;  // TF order (e.g. conv filters HWIO)
  std::vector<float> values;
};

class TfjsWeights {
 public:
  // manifest: the JSON file; shards are read from the same folder.
  static Result<TfjsWeights> load(const std::filesystem::path& manifest);
  // Same, from bytes already in memory (shard name → bytes), for tests and fuzzing.
  static Result<TfjsWeights> parse(const std::string& manifest_json, const std::map<std::string, std::vector<uint8_t>>& shards);

  // The tensor `name` with exactly `rank` dimensions, or an error naming what is missing.
  Result<const TfjsTensor*> get(const std::string& name, size_t rank) const;
  size_t size() const { return tensors_.size(); }

 private:
  std::map<std::string, TfjsTensor> tensors_;
};

}  // namespace fv::nn
