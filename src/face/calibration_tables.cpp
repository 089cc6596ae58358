// Measured calibration tables, one per embedder model. Regenerate with
// `facevault eval calibrate --root LFW_IMAGES` (docs/models.md).
#include "face/calibration.h"

namespace fv::face {

Result<Calibration> Calibration::builtin(const std::string& model_id) {
  return not_found("no calibration table for model " + model_id);
}

}  // namespace fv::face
