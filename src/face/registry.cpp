#include "face/registry.h"

namespace fv::face {
namespace {

template <class Base, class T>
Result<std::unique_ptr<Base>> upcast(Result<std::unique_ptr<T>> r) {
  if (!r.is_ok()) return r.status();
  return std::unique_ptr<Base>(std::move(r).value());
}

}  // namespace

Registry builtin_registry() {
  Registry r;
  r.detectors["ultralight-rfb320"] = [](const nn::ModelStore& s, const ComponentOptions& o) {
    return upcast<Detector>(UltraLightDetector::create(s, o.ultralight));
  };
  r.landmarkers["faceplugin-lm68"] = [](const nn::ModelStore& s) {
    return upcast<Landmarker>(FacepluginLandmarker::create(s));
  };
  r.embedders["faceplugin-mobilefacenet-512"] = [](const nn::ModelStore& s) {
    return upcast<Embedder>(MobileFaceNetEmbedder::create(s));
  };
  return r;
}

}  // namespace fv::face
