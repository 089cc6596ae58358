// The named detectors, landmarkers and embedders facevault can build. A registry object,
// not a global: callers build one with builtin_registry() and may add their own.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "face/detector.h"
#include "face/embedder.h"
#include "face/landmarker.h"
#include "face/ultralight_detector.h"
#include "nn/model_store.h"

namespace fv::face {

struct ComponentOptions {
  UltraLightOptions ultralight;
};

struct Registry {
  using DetectorFactory = std::function<Result<std::unique_ptr<Detector>>(const nn::ModelStore&, const ComponentOptions&)>;
  using LandmarkerFactory = std::function<Result<std::unique_ptr<Landmarker>>(const nn::ModelStore&)>;
  using EmbedderFactory = std::function<Result<std::unique_ptr<Embedder>>(const nn::ModelStore&)>;
  std::map<std::string, DetectorFactory> detectors;
  std::map<std::string, LandmarkerFactory> landmarkers;
  std::map<std::string, EmbedderFactory> embedders;
};

// Weight of the dlib ResNet in the "fusion" embedder (see FusionEmbedder).
inline constexpr double kFusionWeight = 2.0;  // fitted on LFW View-1 DevTrain (docs/benchmarks.md)

Registry builtin_registry();

// The model id the templates of a builtin embedder carry, from its registry name without
// loading it (a vault stores the name; calibration tables and opt-out records use the id).
// The two differ only for the composed embedders: "fusion" → "fusion(a+2*b)".
std::string builtin_embedder_model_id(const std::string& registry_name);

}  // namespace fv::face
