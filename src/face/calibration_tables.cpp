// Measured calibration tables, one per embedder model. Regenerate with
// `facevault eval calibrate --root LFW_IMAGES [--templates FILE]` (docs/models.md,
// docs/benchmarks.md).
//
// Every table: LFW deep-funneled, all 13,233 images (a face found in every one), the face
// nearest the centre of each; every pair of images of different people: 87,307,271 impostor
// pairs. Measured 2026-11-26. Points below 5e-6 are left out: LFW has mislabelled and
// duplicated identities, and the top ~100 "impostor" scores are mostly the same person under
// two names, so the tail would overstate the true FMR. Models score impostors very differently
// (median impostor cosine 0.006 for MobileFaceNet, 0.84 for the dlib ResNet): one table each.
#include <iterator>

#include "face/calibration.h"

namespace fv::face {
namespace {

// The false-match rates every table is measured at.
constexpr double kFmr[] = {5e-1, 1e-1, 5e-2, 1e-2, 5e-3, 1e-3, 5e-4, 1e-4, 5e-5, 1e-5, 5e-6};
constexpr size_t kPoints = std::size(kFmr);

struct Table {
  const char* model_id;
  double threshold[kPoints];  // the score at which kFmr[i] of impostor pairs score >= it
};

constexpr Table kTables[] = {
    {"faceplugin-mobilefacenet-512",
     {0.006499, 0.132572, 0.171016, 0.247938, 0.277622, 0.340521, 0.365091, 0.418242, 0.439519, 0.487078, 0.508548}},
    {"faceplugin-mobilefacenet-512+flip",
     {0.006517, 0.132769, 0.171349, 0.248532, 0.278338, 0.341244, 0.365957, 0.419804, 0.440619, 0.488581, 0.509108}},
    {"faceapi-dlib-resnet-128",
     {0.836660, 0.879117, 0.889590, 0.907546, 0.913708, 0.925983, 0.930682, 0.940697, 0.944541, 0.952664, 0.955668}},
    {"fusion(faceplugin-mobilefacenet-512+2*faceapi-dlib-resnet-128)",
     {0.557277, 0.620444, 0.640048, 0.677591, 0.691372, 0.719437, 0.730246, 0.752775, 0.761553, 0.781367, 0.789966}},
    {"fusion(faceplugin-mobilefacenet-512+flip+2*faceapi-dlib-resnet-128)",
     {0.557278, 0.620594, 0.640258, 0.677910, 0.691728, 0.719840, 0.730661, 0.753330, 0.762238, 0.782078, 0.790579}},
};

}  // namespace

Result<Calibration> Calibration::builtin(const std::string& model_id) {
  for (const Table& t : kTables) {
    if (model_id != t.model_id) continue;
    std::vector<CalibrationPoint> points;
    for (size_t i = 0; i < kPoints; ++i) points.push_back({kFmr[i], t.threshold[i]});
    return Calibration(std::move(points), "LFW, 87,307,271 impostor pairs", 87307271);
  }
  return not_found("no calibration table for model " + model_id);
}

}  // namespace fv::face
