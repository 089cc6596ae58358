// Measured calibration tables, one per embedder model. Regenerate with
// `facevault eval calibrate --root LFW_IMAGES` (docs/models.md, docs/benchmarks.md).
#include "face/calibration.h"

namespace fv::face {

Result<Calibration> Calibration::builtin(const std::string& model_id) {
  if (model_id == "faceplugin-mobilefacenet-512") {
    // LFW deep-funneled, all 13,233 images (a face found in every one), the face nearest
    // the centre of each; every pair of images of different people: 87,307,271 impostor
    // pairs. Measured 2026-11-26. Points below 5e-6 are left out: LFW has mislabelled and
    // duplicated identities, and the top ~100 "impostor" scores (≥ 0.63) are mostly the same
    // person under two names, so the tail would overstate the true FMR.
    static const std::vector<CalibrationPoint> points = {
        {5e-1, 0.006499}, {1e-1, 0.132572}, {5e-2, 0.171016}, {1e-2, 0.247938}, {5e-3, 0.277622},
        {1e-3, 0.340521}, {5e-4, 0.365091}, {1e-4, 0.418242}, {5e-5, 0.439519}, {1e-5, 0.487078},
        {5e-6, 0.508548},
    };
    return Calibration(points, "LFW, 87,307,271 impostor pairs", 87307271);
  }
  if (model_id == "faceplugin-mobilefacenet-512+flip") {
    // As above, with each template the mean of the crop's and its mirror's. Measured 2026-11-26
    // (`facevault eval calibrate --templates`, the JSON lines of `facevault embed` over LFW).
    static const std::vector<CalibrationPoint> points = {
        {5e-1, 0.006517}, {1e-1, 0.132769}, {5e-2, 0.171349}, {1e-2, 0.248532}, {5e-3, 0.278338},
        {1e-3, 0.341244}, {5e-4, 0.365957}, {1e-4, 0.419804}, {5e-5, 0.440619}, {1e-5, 0.488581},
        {5e-6, 0.509108},
    };
    return Calibration(points, "LFW, 87,307,271 impostor pairs", 87307271);
  }
  if (model_id == "fusion(faceplugin-mobilefacenet-512+flip+2*faceapi-dlib-resnet-128)") {
    // The fusion+flip embedder, the same 13,233 images and pairs. Its scores sit higher than
    // MobileFaceNet's (the dlib half gives impostors cosines around 0.6), so its table is its own.
    static const std::vector<CalibrationPoint> points = {
        {5e-1, 0.557278}, {1e-1, 0.620594}, {5e-2, 0.640258}, {1e-2, 0.677910}, {5e-3, 0.691728},
        {1e-3, 0.719840}, {5e-4, 0.730661}, {1e-4, 0.753330}, {5e-5, 0.762238}, {1e-5, 0.782078},
        {5e-6, 0.790579},
    };
    return Calibration(points, "LFW, 87,307,271 impostor pairs", 87307271);
  }
  return not_found("no calibration table for model " + model_id);
}

}  // namespace fv::face
