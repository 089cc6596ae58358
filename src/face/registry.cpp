#include "face/registry.h"

#include "face/dlib_resnet_embedder.h"

namespace fv::face {
namespace {

template <class Base, class T>
Result<std::unique_ptr<Base>> upcast(Result<std::unique_ptr<T>> r) {
  if (!r.is_ok()) return r.status();
  return std::unique_ptr<Base>(std::move(r).value());
}

// MobileFaceNet (mirror-averaged when `flip`) and the dlib ResNet in one template.
Result<std::unique_ptr<Embedder>> make_fusion(const nn::ModelStore& s, bool flip) {
  auto a = MobileFaceNetEmbedder::create(s);
  if (!a.is_ok()) return a.status();
  auto b = DlibResNetEmbedder::create(s);
  if (!b.is_ok()) return b.status();
  std::unique_ptr<Embedder> first = std::move(a).value();
  if (flip) first = std::make_unique<FlipAveragedEmbedder>(std::move(first));
  return std::unique_ptr<Embedder>(new FusionEmbedder(std::move(first), std::move(b).value(), kFusionWeight));
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
  r.embedders["faceplugin-mobilefacenet-512+flip"] = [](const nn::ModelStore& s) -> Result<std::unique_ptr<Embedder>> {
    auto m = MobileFaceNetEmbedder::create(s);
    if (!m.is_ok()) return m.status();
    return std::unique_ptr<Embedder>(new FlipAveragedEmbedder(std::move(m).value()));
  };
  r.embedders["faceapi-dlib-resnet-128"] = [](const nn::ModelStore& s) {
    return upcast<Embedder>(DlibResNetEmbedder::create(s));
  };
  r.embedders["fusion"] = [](const nn::ModelStore& s) { return make_fusion(s, false); };
  // The most accurate choice (LFW identification rank-1 99.05 %, docs/benchmarks.md), at three
  // network passes per face: mirror-averaged MobileFaceNet fused with the dlib ResNet.
  r.embedders["fusion+flip"] = [](const nn::ModelStore& s) { return make_fusion(s, true); };
  return r;
}

std::string builtin_embedder_model_id(const std::string& name) {
  const std::string mfn = "faceplugin-mobilefacenet-512", dlib = "faceapi-dlib-resnet-128";
  if (name == "fusion") return FusionEmbedder::id_for(mfn, dlib, kFusionWeight);
  if (name == "fusion+flip") return FusionEmbedder::id_for(FlipAveragedEmbedder::id_for(mfn), dlib, kFusionWeight);
  return name;
}

}  // namespace fv::face
